"""``python -m training.regional``: build from a folder of geotagged photos, the registry picks the variant
up, it predicts with reference matches; a tiny Sweden-or-Switzerland run beats the most-common baseline."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from geoapp.families import registry
from tests.conftest import shared_path
from tests.families.regional.conftest import _one_thread  # noqa: F401  (autouse: one torch thread)
from training.regional.build import main
from training.regional.fit import TrainConfig
from training.regional.reproduce import ReproConfig, ReproOptions, quick_config, reproduce

# Italian places for generated photos (the real EXIF samples with GPS are in Tuscany).
PLACES = [(41.90, 12.50), (45.46, 9.19), (41.13, 14.78), (43.77, 11.25), (44.49, 11.34), (37.57, 14.28)]


def _dms(value: float) -> tuple:
    value = abs(value)
    degrees, minutes = int(value), int((value - int(value)) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(int(seconds * 1000), 1000)


def write_photo(path, lat: float | None, lon: float | None, colour: tuple[int, int, int], rng) -> None:
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (96, 128, 3)), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    if lat is not None:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = ("N" if lat >= 0 else "S"), _dms(lat), ("E" if lon >= 0 else "W"), _dms(lon)
    Image.fromarray(pixels).save(path, exif=exif)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Real EXIF-GPS photos from ../shared (Tuscany; one in Kenya) + generated photos around Italian cities."""
    folder = tmp_path_factory.mktemp("collection")
    for source in sorted(shared_path("exif-samples", "jpg", "gps").glob("*.jpg")):
        shutil.copy(source, folder / source.name)
    shutil.copy(shared_path("exif-samples", "jpg", "Kodak_CX7530.jpg"), folder / "kenya.jpg")  # outside Italy
    shutil.copy(shared_path("exif-samples", "jpg", "Canon_40D.jpg"), folder / "no-gps.jpg")  # no GPS
    rng = np.random.default_rng(0)
    for index in range(36):
        place = index % len(PLACES)
        lat, lon = np.array(PLACES[place]) + rng.normal(0, 0.02, 2)
        colour = tuple(int(c) for c in (40 * place, 255 - 40 * place, 128))
        write_photo(folder / f"gen_{index:02d}.jpg", float(lat), float(lon), colour, rng)
    return folder


@pytest.fixture
def variants(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    return tmp_path / "variants"


def test_build_from_a_folder_registers_a_variant_that_predicts_with_reference_matches(collection, variants, capsys):
    assert main(["build", str(collection), "--countries", "IT", "--method", "cells-up", "--name", "tuscany",
                 "--epochs", "15"]) == 0
    out = capsys.readouterr().out
    assert "1 without GPS (skipped): no-gps.jpg" in out
    assert "1 outside the chosen countries (skipped): kenya.jpg (-0.3713, 36.0564: KE)" in out
    # No CLIP weights here: the automatic backbone is SatWorld's, and the log says what that means.
    assert "backbone: satworld (automatic: no CLIP ViT-L/14 weights on this machine)" in out
    assert "warning: SatWorld's encoder was trained on satellite imagery" in out
    assert "split: 37 training, 4 validation (early stopping), 4 test photos" in out
    manifest = json.loads((variants / "tuscany" / "manifest.json").read_text())
    assert manifest["family"] == "regional" and manifest["method"] == "cells-up" and manifest["countries"] == ["IT"]
    assert (manifest["training_images"], manifest["validation_images"], manifest["heldout_images"]) == (37, 4, 4)
    assert manifest["metrics"]["images"] == 4  # the metrics come from the test part only
    assert 1 <= manifest["best_epoch"] <= manifest["epochs_run"] <= 15
    assert manifest["backbone"]["name"] == "satworld"

    spec = registry.get("regional:tuscany")
    assert "regional:tuscany" in set(registry.keys())
    family = spec.load(registry.LoadOptions(device="cpu"))
    prediction = family.predict(collection / "DSCN0010.jpg", top_k=3)
    assert prediction.ok and prediction.top.country_code == "IT"
    assert any("SatWorld" in w for w in prediction.warnings)  # satworld features on ground photos: said so
    matches = prediction.evidence[0]
    assert matches.key == "reference_matches" and len(matches.matches) == 5
    assert matches.matches[0].name == "DSCN0010.jpg" and matches.matches[0].similarity == pytest.approx(1, abs=1e-2)
    assert matches.images() and "<img" in matches.html()
    assert prediction.to_dict()["model"]["family"] == "regional:tuscany"

    # Another method on the same photos: every feature comes from the cache.
    assert main(["build", str(collection), "--countries", "IT", "--method", "retrieval-rff", "--name", "tuscany-rff",
                 "--epochs", "5"]) == 0
    assert "(45 features from the cache)" in capsys.readouterr().out
    assert registry.get("regional:tuscany-rff").load(registry.LoadOptions(device="cpu")).predict(
        collection / "gen_00.jpg", region="IT").ok


def test_build_from_csv_and_clear_errors(collection, variants, tmp_path, capsys):
    table = tmp_path / "photos.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "lat", "lon"])
        for index in range(12):
            writer.writerow([str(collection / f"gen_{index:02d}.jpg"), *PLACES[index % len(PLACES)]])
        writer.writerow(["missing.jpg", 41.9, 12.5])
    assert main(["build", str(table), "--countries", "Italy", "--method", "offset", "--name", "csv-model",
                 "--epochs", "3"]) == 0
    assert "unreadable (skipped): missing.jpg" in capsys.readouterr().out
    assert main(["build", str(table), "--countries", "IT", "--method", "offset", "--name", "csv-model"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["build", str(table), "--countries", "Atlantis", "--name", "x"]) == 2
    assert "unknown country" in capsys.readouterr().err


def test_tiny_sweden_or_switzerland_run_beats_the_most_common_baseline(tmp_path):
    options = ReproOptions(methods=("classifier", "cells-up-paper", "cells-up"))
    summary = reproduce(tmp_path / "repro", quick_config(ReproConfig()), options, TrainConfig(cell_min=30, epochs=10))
    run = summary["runs"][0]
    rows = run["rows"]
    assert run["split"] == "blocks" and run["sizes"]["test"] >= 40
    baseline = rows["most-common"]
    for name in options.methods:
        assert rows[name]["country_accuracy"] > baseline["country_accuracy"] + 10
    for name in ("cells-up-paper", "cells-up"):
        assert rows[name]["within_km"]["200"] > baseline["within_km"]["200"]
    table = (tmp_path / "repro" / "table.md").read_text()
    assert "| Cells, bottom-up (paper) | blocks | 1 |" in table and "| Cells, bottom-up (ours) | blocks | 1 |" in table
    assert "theirs" not in table


def test_photos_just_off_the_coast_count_and_open_sea_is_reported():
    from pathlib import Path

    from training.regional.sources import Record, SourceReport, _in_countries

    records = [Record(Path("harbour.jpg"), 55.60, 12.95),  # Malmö harbour, 0.7 km off the 1:10m coastline
               Record(Path("strait.jpg"), 55.58, 12.90),  # 3 km out in the Øresund
               Record(Path("bern.jpg"), 46.95, 7.45)]
    report = SourceReport()
    kept = _in_countries(records, ["SE", "CH"], report)
    assert [(r.path.name, r.country) for r in kept] == [("harbour.jpg", 0), ("bern.jpg", 1)]
    assert report.outside == ["strait.jpg (55.5800, 12.9000: sea)"]
