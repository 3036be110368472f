"""Accuracy thresholds, GeoGuessr score and error summaries."""

import math

import numpy as np
import pytest

from geoapp.geo import THRESHOLDS_KM, accuracy_at_thresholds, error_summary, geoguessr_score, haversine_km


def _truth_and_preds():
    true = np.array([[48.8566, 2.3522]] * 4)
    pred = np.array([[48.8566, 2.3522], [48.9, 2.4], [51.5074, -0.1278], [40.7128, -74.006]])
    return pred, true


def test_accuracy_percentages():
    pred, true = _truth_and_preds()
    acc = accuracy_at_thresholds(pred, true)
    assert list(acc) == [float(t) for t in THRESHOLDS_KM]
    # distances: 0, ~6 km, ~344 km, ~5840 km
    assert acc[1] == 25.0 and acc[25] == 50.0 and acc[200] == 50.0 and acc[750] == 75.0 and acc[2500] == 75.0
    assert accuracy_at_thresholds(pred, true, thresholds=(10000,)) == {10000.0: 100.0}


def test_geoguessr_score():
    assert float(geoguessr_score(0)) == 5000.0
    assert float(geoguessr_score(1492.7)) == pytest.approx(5000 / math.e)
    np.testing.assert_allclose(geoguessr_score([0, 1492.7 * 2]), [5000, 5000 * math.exp(-2)])


def test_error_summary():
    pred, true = _truth_and_preds()
    d = haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1])
    s = error_summary(pred, true)
    assert s["n"] == 4
    assert s["median_km"] == pytest.approx(np.median(d))
    assert s["mean_km"] == pytest.approx(np.mean(d))
    assert s["geoguessr_score"] == pytest.approx(np.mean(5000 * np.exp(-d / 1492.7)))
    assert s["accuracy"][750] == 75.0


def test_empty_and_mismatched_inputs():
    s = error_summary(np.zeros((0, 2)), np.zeros((0, 2)))
    assert s["n"] == 0 and math.isnan(s["median_km"]) and math.isnan(s["accuracy"][1])
    with pytest.raises(ValueError):
        accuracy_at_thresholds(np.zeros((2, 2)), np.zeros((3, 2)))
