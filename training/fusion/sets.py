"""Write the held-out images of SatWorld and of the map-tile demo as files + ``path,lat,lon`` CSVs.

``python -m training.fusion.sets --out runs/fusion-sets`` renders, for each model, its validation and test
splits (none used in training; calibrated on validation and checked on test they give the cross-region
coverage of ``training.fusion.coverage``), with exactly the splits and renderings the models were trained and evaluated with:

- SatWorld: ``training.satworld.splits`` with the default ``SplitConfig`` (seed 0), the random *land*
  locations of its val / test cells (1 000 each, seeded; gallery locations are left out because they are
  SatWorld's own candidates), Blue Marble crops, 600 km, north up, 64 px (as
  ``training.satworld.train.eval_images``);
- map tiles: ``training.maptiles.data.splits`` with the shipped checkpoint's training config (12 000
  gallery + 8 000 land points, seed 0, 1 000 test, 500 val locations), shaded-relief renderings,
  1 500 km, 32 px; and ``extra``: every other pool point of the held-out cells (outside the split's 200 km
  buffer from training points), so the random halves are larger than val + test alone.

PNG files are lossless, so the app reads the very pixels the evaluation rendered.

Then, per model, the held-out images of both splits (none used in training) are pooled and split at random
(``--halves-seed``, default 0) into ``heldout-calibrate.csv`` and ``heldout-check.csv``: calibration and
check images drawn from one pool are exchangeable, which the validation (calibration) and test (check)
splits, different 10° cells of the globe, are not. ``--halves-only`` makes the halves from sets already
rendered.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

ASSETS = Path(__file__).resolve().parents[2] / "assets"
LAND_SIZE = 1000  # SatWorld held-out land locations per split


def _write(folder: Path, name: str, coords: np.ndarray, pixels: np.ndarray) -> Path:
    images = folder / name
    images.mkdir(parents=True, exist_ok=True)
    table = folder / f"{name}.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "lat", "lon"])
        for row, ((lat, lon), image) in enumerate(zip(coords, pixels)):
            path = images / f"{row:05d}.png"
            Image.fromarray(image).save(path)
            writer.writerow([f"{name}/{path.name}", f"{float(lat):.6f}", f"{float(lon):.6f}"])
    return table


def satworld_sets(out: Path) -> list[Path]:
    from geoapp.galleries.gallery import Gallery
    from training.satworld.render import render_batch
    from training.satworld.splits import SplitConfig, make_splits
    from training.satworld.train import TrainConfig

    config = TrainConfig()
    gallery = Gallery.default().coords
    splits = make_splits(gallery, SplitConfig())
    # Held-out *land* points only: the gallery points are SatWorld's own candidates, so a held-out gallery
    # location would be found exactly (a kernel fitted on those collapses to zero width).
    rng = np.random.default_rng([SplitConfig().seed, 24])
    land = np.arange(len(splits.pool)) >= len(gallery)
    folder = out / "satworld"
    tables = []
    for split, name in ((1, "val"), (2, "test")):
        members = np.flatnonzero(land & (splits.pool_split == split))
        coords = splits.pool[np.sort(rng.choice(members, min(LAND_SIZE, len(members)), replace=False))]
        pixels = render_batch(coords[:, 0], coords[:, 1], config.window_km, config.model.image_size)
        tables.append(_write(folder, name, coords, pixels))
    return tables


def maptiles_sets(out: Path) -> list[Path]:
    from geoapp.galleries.gallery import Gallery
    from training.maptiles.data import render_queries, splits

    config = json.loads((ASSETS / "maptiles" / "manifest.json").read_text())["config"]
    from geoapp.families.maptiles.model import PRESETS  # the shipped preset's input size

    size = PRESETS[config["preset"]].image_size
    made = splits(Gallery.default().coords, config["gallery_points"], config["land_points"], config["seed"],
                  config["test_size"])
    folder = out / "maptiles"
    tables = []
    for name, coords in (("val", made.val), ("test", made.test), ("extra", heldout_rest(made))):
        tables.append(_write(folder, name, coords, render_queries(coords, config["window_km"], size, config["raster"])))
    return tables


def heldout_rest(made) -> np.ndarray:
    """The held-out pool points (validation or test cells, outside the 200 km buffer) that the val and test
    splits did not draw: more images of the same kind, never used in training, for a larger calibration."""
    held = made.pool[np.isin(made.pool_split, (1, 2))]
    drawn = {(float(a), float(b)) for a, b in np.concatenate([made.val, made.test])}
    return held[[(float(a), float(b)) not in drawn for a, b in held]].reshape(-1, 2)


def heldout_halves(folder: Path, seed: int = 0) -> list[Path]:
    """Pool ``val.csv``, ``test.csv`` (and ``extra.csv`` where rendered) of one model and write a random half
    each to calibrate and to check."""
    rows = []
    for name in ("val", "test", "extra"):
        if name == "extra" and not (folder / "extra.csv").is_file():
            continue
        with (folder / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    order = np.random.default_rng(seed).permutation(len(rows))
    tables = []
    for name, part in (("heldout-calibrate", order[: len(rows) // 2]), ("heldout-check", order[len(rows) // 2:])):
        table = folder / f"{name}.csv"
        with table.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "lat", "lon"])
            writer.writeheader()
            writer.writerows(rows[i] for i in np.sort(part))
        tables.append(table)
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/fusion-sets"))
    parser.add_argument("--only", choices=("satworld", "maptiles"), default=None)
    parser.add_argument("--halves-seed", type=int, default=0, help="seed of the random calibrate/check halves")
    parser.add_argument("--halves-only", action="store_true", help="only (re)make the halves of rendered sets")
    args = parser.parse_args(argv)
    for name, make in (("satworld", satworld_sets), ("maptiles", maptiles_sets)):
        if args.only in (None, name):
            tables = [] if args.halves_only else make(args.out)
            for table in tables + heldout_halves(args.out / name, args.halves_seed):
                print(f"{name}: {table} ({sum(1 for _ in table.open()) - 1} images)")


if __name__ == "__main__":
    main()
