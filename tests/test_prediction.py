"""Candidate merging and prediction summaries (torch-free)."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.results.prediction import build_prediction, merge_candidates


def test_near_duplicates_merge_and_probabilities_sum():
    # Three points in Paris (within ~5 km), one in Lyon, one in Berlin.
    lat = np.array([48.8566, 48.86, 48.83, 45.764, 52.52])
    lon = np.array([2.3522, 2.36, 2.30, 4.8357, 13.405])
    prob = np.array([0.3, 0.2, 0.1, 0.25, 0.15])
    merged = merge_candidates(lat, lon, prob, top_k=5, merge_km=25)
    assert len(merged) == 3
    (p_lat, p_lon, p_prob, p_count), (l_lat, _, l_prob, _), (b_lat, _, b_prob, _) = merged
    assert (p_lat, p_lon) == (48.8566, 2.3522)  # kept on its most probable point
    assert p_prob == pytest.approx(0.6) and p_count == 3
    assert l_prob == pytest.approx(0.25) and b_prob == pytest.approx(0.15)


def test_merge_radius_zero_keeps_every_point_and_order():
    lat = np.array([0.0, 0.001, 10.0])
    lon = np.array([0.0, 0.0, 10.0])
    prob = np.array([0.2, 0.5, 0.3])
    merged = merge_candidates(lat, lon, prob, top_k=3, merge_km=0)
    assert [m[2] for m in merged] == [0.5, 0.3, 0.2]


def test_merged_sum_can_reorder_candidates():
    # One strong isolated point versus a cluster of weaker ones whose sum is larger.
    lat = np.array([10.0, 40.0, 40.01, 40.02])
    lon = np.array([10.0, 0.0, 0.0, 0.0])
    prob = np.array([0.4, 0.2, 0.2, 0.2])
    merged = merge_candidates(lat, lon, prob, top_k=2, merge_km=25)
    assert merged[0][0] == 40.0 and merged[0][2] == pytest.approx(0.6)


def test_build_prediction_distances_mass_and_surface():
    lat = np.array([48.8566, 48.9, 45.764, -33.87])
    lon = np.array([2.3522, 2.35, 4.8357, 151.21])
    prob = np.array([0.5, 0.2, 0.2, 0.1])
    pred = build_prediction("x.jpg", lat, lon, prob, top_k=3, merge_km=10, place_names=False)
    assert pred.ok and len(pred.candidates) == 3
    top = pred.candidates[0]
    assert top.rank == 1 and top.distance_to_top_km == 0
    assert top.probability == pytest.approx(0.7)
    assert pred.candidates[1].distance_to_top_km == pytest.approx(392, abs=5)  # Paris - Lyon
    assert pred.mass_within_km[25] == pytest.approx(0.7)
    assert pred.mass_within_km[750] == pytest.approx(0.9)
    assert len(pred.surface) == 4
    data = pred.to_dict(include_surface=True)
    assert data["surface"]["returned"] <= 4 and data["candidates"][0]["rank"] == 1


def test_surface_top_keeps_most_probable_mass():
    from geoapp.results.prediction import ProbabilitySurface

    prob = np.array([0.001] * 100 + [0.9])
    prob = prob / prob.sum()
    surface = ProbabilitySurface(np.zeros(101), np.zeros(101), prob)
    top = surface.top(max_points=10, mass=0.5)
    assert len(top) == 1 and top.probability[0] == prob.max()


def test_empty_probabilities():
    pred = build_prediction("x", np.array([]), np.array([]), np.array([]), top_k=5, merge_km=25, place_names=False)
    assert pred.candidates == [] and pred.mass_within_km == {}
