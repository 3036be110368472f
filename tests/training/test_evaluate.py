"""The evaluation harness: end to end with the tiny backbone, the prior-region protocol, and exact metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from geoapp.geo.metrics import THRESHOLDS_KM
from geoapp.results.prediction import Candidate, Prediction

from training.data import DatasetSpec, read_records
from training.evaluate import main, predict_all, summarise
from training.tables import published_for, reference_rows

from .conftest import CORRUPT_NAME, MISSING_NAME, make_image_folder

TINY = ["--model", "geoclip", "--backbone", "tiny-test", "--backbone-weights", "random", "--quiet", "--device", "cpu"]


def test_evaluate_three_images_end_to_end(tmp_path, capsys, dev_dir, dev_truth, small_gallery_csv):
    csv = make_image_folder(tmp_path / "src", dev_dir, dev_truth, n=3)  # + corrupt + missing
    out = tmp_path / "eval"
    # A 400-point gallery keeps this fast (the 100K one costs ~20 s of encoding on 2 CPU cores).
    assert main(["--csv", str(csv), "--images", str(tmp_path / "src" / "images"), "--tencrop", "--out", str(out),
                 "--gallery", str(small_gallery_csv), *TINY]) == 0
    captured = capsys.readouterr()
    assert "RANDOM WEIGHTS" in captured.out and "MEANINGLESS" in captured.out and "RANDOM WEIGHTS" in captured.err
    assert "| 14.11 | 34.47 | 50.65 | 69.67 | 83.82 |" in captured.out  # published GeoCLIP next to ours
    assert "| 11.80 | 31.10 | 46.70 | 58.90 | 80.10 |" in captured.out  # TransLocator
    assert "orientation only" in captured.out  # this CSV is not named like a benchmark with published numbers

    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert len(predictions) == 5
    failed = predictions[predictions["error"] != ""]
    assert set(failed["id"]) == {CORRUPT_NAME, MISSING_NAME}
    good = predictions[predictions["error"] == ""]
    assert good["error_km"].astype(float).between(0, 20_016).all()
    assert good["geoguessr"].astype(float).between(0, 5000).all()
    assert list(good["true_country"]) == ["UA", "CH", "NZ"]  # the first three dev photos (Odesa, Valais, NZ)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and summary["failed"] == 2 and summary["random_weights"] and summary["tencrop"]
    assert set(summary["accuracy"]) == {f"{t:g}" for t in THRESHOLDS_KM}
    assert summary["model"]["gallery_points"] == 400
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 3 and "RANDOM WEIGHTS" in table["note"][0]
    assert (out / "results.md").read_text().startswith("| method |")


def test_prior_region_protocol_stays_inside_the_radius(tmp_path, capsys, dev_dir, small_gallery_csv):
    out = tmp_path / "eval"
    assert main(["--csv", str(dev_dir / "ground_truth.csv"), "--images", str(dev_dir), "--limit", "2",
                 "--prior-km", "25", "--prior-extra-points", "500", "--gallery", str(small_gallery_csv),
                 "--out", str(out), *TINY]) == 0
    assert "Table 5" in capsys.readouterr().out
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert len(predictions) == 2 and (predictions["error"] == "").all()
    assert (predictions["error_km"] <= 25.0 + 1e-6).all()

    # The paper's protocol scores gallery points only. The fixture gallery has points near each truth...
    gallery_only = tmp_path / "gallery-only"
    assert main(["--csv", str(dev_dir / "ground_truth.csv"), "--images", str(dev_dir), "--limit", "2",
                 "--prior-km", "25", "--gallery", str(small_gallery_csv), "--out", str(gallery_only), *TINY]) == 0
    rows = pd.read_csv(gallery_only / "predictions.csv", keep_default_na=False)
    assert (rows["error"] == "").all() and (rows["error_km"] <= 25.0 + 1e-6).all()
    # ...a sparse one (no point within 25 km) gets a clear per-image error, not a point outside the circle.
    sparse_csv = tmp_path / "sparse.csv"
    sparse_csv.write_text("LAT,LON\n-75.0,0.0\n-75.0,90.0\n")
    sparse = tmp_path / "sparse"
    assert main(["--csv", str(dev_dir / "ground_truth.csv"), "--images", str(dev_dir), "--limit", "2",
                 "--prior-km", "25", "--gallery", str(sparse_csv), "--out", str(sparse), *TINY]) == 0
    rows = pd.read_csv(sparse / "predictions.csv", keep_default_na=False)
    assert len(rows) == 2 and rows["error"].str.contains("no gallery point").all()


class StubLocator:
    """Answers fixed coordinates: lets the metrics be checked exactly."""

    def __init__(self, answers: list[tuple[float, float] | None]) -> None:
        self.answers = answers

    def predict_batch(self, images, **kwargs):
        out = []
        for image, answer in zip(images, self.answers):
            if answer is None:
                out.append(Prediction(source=image, error="unreadable"))
            else:
                out.append(Prediction(source=image, candidates=[Candidate(1, answer[0], answer[1], 0.5, 0.0, 1)]))
        return out


def test_metrics_are_exact(tmp_path):
    csv = tmp_path / "truth.csv"
    csv.write_text("IMG_ID,LAT,LON\n"
                   "paris.jpg,48.8566,2.3522\n"     # predicted 0 km away
                   "lyon.jpg,45.7640,4.8357\n"      # predicted at Paris: ~392 km, same country
                   "berlin.jpg,52.5200,13.4050\n"   # predicted at Paris: ~878 km, other country
                   "sea.jpg,30.0,-40.0\n"           # truth at sea: no country
                   "broken.jpg,1.0,1.0\n")
    records = read_records(DatasetSpec(csv, tmp_path))
    paris = (48.8566, 2.3522)
    raw = predict_all(StubLocator([paris, paris, paris, (30.1, -40.0), None]), records, tencrop=False,
                      prior_km=None, batch_size=4)
    frame, row = summarise(records, raw, "stub", "")
    assert row.n == 4 and row.extra["failed"] == 1
    errors = frame["error_km"].to_numpy()
    assert errors[0] == pytest.approx(0, abs=1e-6)
    assert errors[1] == pytest.approx(392, abs=3) and errors[2] == pytest.approx(878, abs=3)
    assert errors[3] == pytest.approx(11.1, abs=0.1) and np.isnan(errors[4])
    assert row.accuracy[1.0] == 25.0 and row.accuracy[25.0] == 50.0 and row.accuracy[750.0] == 75.0
    assert row.accuracy[2500.0] == 100.0
    assert row.median_km == pytest.approx(np.median(errors[:4]))
    assert list(frame["true_country"][:4]) == ["FR", "FR", "DE", ""]
    assert row.country_accuracy == pytest.approx(200 / 3)  # 2 of the 3 images whose truth is in a country
    assert row.geoguessr == pytest.approx(np.mean(5000 * np.exp(-errors[:4] / 1492.7)))
    assert "1 image(s) unreadable" in row.note


def test_published_numbers_are_matched_by_dataset_name():
    assert len(published_for("../shared/data/benchmarks/im2gps3k_places365.csv")) == 2
    assert len(published_for("/x/im2gps3k-dev/ground_truth.csv")) == 2
    assert published_for("yfcc4k_coordinates.csv") == []
    rows, same = reference_rows("yfcc4k_coordinates.csv")
    assert not same and rows[0].dataset.startswith("Im2GPS3k")
