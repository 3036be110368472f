"""The refinement decision: paired comparison, McNemar test, the verdict, and evaluate --compare-refinement."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from geoapp.families import registry
from geoapp.families.retrieval.evidence import RefinementEvidence
from geoapp.geo.distance import haversine_km
from geoapp.results.prediction import Candidate, Prediction

from training.evaluate import main
from training.refinement import compare, gallery_answer

from .test_evaluate import TINY


def _north(lat: np.ndarray, lon: np.ndarray, km: float) -> np.ndarray:
    return np.stack([lat + km / 111.195, lon], axis=1)


def test_comparison_counts_gains_and_losses_per_threshold():
    lat, lon = np.linspace(-40, 40, 100), np.linspace(-100, 100, 100)
    truth = np.stack([lat, lon], axis=1)
    without = _north(lat, lon, 3.0)  # every gallery answer 3 km off
    with_refinement = without.copy()
    with_refinement[:30] = _north(lat[:30], lon[:30], 0.4)  # refinement brings 30 inside 1 km ...
    with_refinement[30:32] = _north(lat[30:32], lon[30:32], 30.0)  # ... and pushes 2 out of 25 km
    result = compare(truth, without, with_refinement, radius_km=15)
    by_km = {t.km: t for t in result.thresholds}
    assert (by_km[1.0].gained, by_km[1.0].lost) == (30, 0)
    assert (by_km[25.0].gained, by_km[25.0].lost) == (0, 2)
    assert by_km[1.0].change_points == pytest.approx(30.0) and by_km[25.0].change_points == pytest.approx(-2.0)
    assert by_km[1.0].p_value == pytest.approx(2 * 0.5 ** 30)  # exact McNemar: 30 of 30 discordant one way
    assert by_km[25.0].p_value == pytest.approx(0.5)  # 2 of 2: not significant
    assert by_km[200.0].p_value == 1.0
    assert result.moved == 32 and result.helps and not result.hurts
    assert "measurably helps" in result.verdict()
    expected_change = np.mean(haversine_km(*with_refinement.T, *truth.T) - haversine_km(*without.T, *truth.T))
    assert result.mean_error_change_km == pytest.approx(expected_change)
    assert "| 1 km | 30 | 0 | +30.00 |" in result.markdown()


def test_no_significant_change_keeps_refinement_off_and_a_significant_loss_hurts():
    lat, lon = np.linspace(-40, 40, 60), np.zeros(60)
    truth = np.stack([lat, lon], axis=1)
    without = _north(lat, lon, 3.0)
    mixed = without.copy()
    mixed[:3] = _north(lat[:3], lon[:3], 0.5)  # 3 gained, 2 lost at 1 km: noise
    mixed[3:5] = _north(lat[3:5], lon[3:5], 0.2)
    without[3:5] = _north(lat[3:5], lon[3:5], 0.9)
    mixed[3:5] = _north(lat[3:5], lon[3:5], 1.5)
    result = compare(truth, without, mixed, radius_km=15)
    assert not result.helps and not result.hurts and "stays off by default" in result.verdict()
    worse = _north(lat, lon, 40.0)  # every answer pushed out of 25 km
    hurt = compare(truth, without, worse, radius_km=15)
    assert hurt.hurts and not hurt.helps and "hurts" in hurt.verdict()
    # unreadable images (NaN) are left out of the pairs
    without[0] = np.nan
    assert compare(truth, without, mixed, radius_km=15).n == 59
    assert "nothing measured" in compare(truth[:0], without[:0], mixed[:0], radius_km=15).verdict()


def test_gallery_answer_is_where_the_top_place_started():
    top = Candidate(1, 47.3769, 8.5417, 0.6, 0.0, 1)
    moved = Prediction(source="x", candidates=[top, Candidate(2, 10.0, 10.0, 0.4, 100.0, 1)])
    moved.evidence.append(RefinementEvidence([(1, (47.43, 8.54), (47.3769, 8.5417)), (2, (10.0, 10.0), (10.0, 10.0))],
                                             15.0, 0.5))
    assert gallery_answer(moved) == (47.43, 8.54)
    plain = Prediction(source="y", candidates=[top])
    assert gallery_answer(plain) == (47.3769, 8.5417)


def test_refinement_defaults_per_family():
    """Off where no accuracy measurement shows a gain (GeoCLIP: none possible here; SatWorld: measured, none)."""
    for key in ("geoclip", "satworld"):
        defaults = {o.name: o.default for o in registry.get(key).options}
        assert defaults["refine_km"] == 0.0, key


def test_evaluate_compares_refinement_from_one_run(tmp_path, capsys, dev_dir, small_gallery_csv):
    out = tmp_path / "eval"
    assert main(["--csv", str(dev_dir / "ground_truth.csv"), "--images", str(dev_dir), "--limit", "3",
                 "--gallery", str(small_gallery_csv), "--compare-refinement", "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "refinement 15 km)" in text and "gallery answer: refinement off)" in text
    assert "Refinement at 15 km vs the gallery answer, same 3 images" in text and "Verdict:" in text
    assert "RANDOM WEIGHTS: this comparison says nothing" in text
    rows = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert {"gallery_lat", "gallery_lon", "gallery_error_km"} <= set(rows.columns)
    gallery = pd.read_csv(small_gallery_csv)[["LAT", "LON"]].to_numpy()
    for lat, lon in rows[["gallery_lat", "gallery_lon"]].to_numpy():  # unrefined answers are gallery points
        assert np.min(haversine_km(lat, lon, gallery[:, 0], gallery[:, 1])) < 1e-3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refinement"]["n"] == 3 and summary["refinement"]["radius_km"] == 15
    assert len(pd.read_csv(out / "results.csv")) == 4  # refined, gallery answer, two published rows


def test_refinement_flags_are_refused_for_a_family_without_it(tmp_path, dev_dir):
    with pytest.raises(SystemExit, match="has no fine refinement"):
        main(["--csv", str(dev_dir / "ground_truth.csv"), "--images", str(dev_dir), "--limit", "1", "--model",
              "translocator", "--backbone-weights", "random", "--quiet", "--device", "cpu", "--compare-refinement"])
