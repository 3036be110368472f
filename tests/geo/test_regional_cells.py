"""Cell builders for regional models: the invariants of each method (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.geo.regional_cells import METHODS, CellConfig, build_cells, cohesion

N_MIN = 60


@pytest.fixture(scope="module")
def points():
    """Two clusters (a "Sweden" and a "Switzerland") plus scattered points, and features that follow them."""
    rng = np.random.default_rng(3)
    lat = np.concatenate([rng.normal(59.0, 1.2, 700), rng.normal(46.8, 0.3, 500), rng.uniform(45, 68, 100)])
    lon = np.concatenate([rng.normal(16.0, 2.0, 700), rng.normal(8.2, 0.6, 500), rng.uniform(5, 24, 100)])
    features = np.concatenate([np.sin(lat[:, None] * np.arange(1, 9)), np.cos(lon[:, None] * np.arange(1, 9))], axis=1)
    return lat, lon, features + rng.normal(0, 0.1, features.shape)


def build(points, method, **kwargs):
    lat, lon, features = points
    return build_cells(lat, lon, CellConfig(method=method, min_images=N_MIN, **kwargs), features=features)


def test_top_down_cells_have_n_or_are_minimum_size_or_remainders(points):
    lat = points[0]
    cells = build(points, "top-down")
    counts = cells.counts
    assert (counts > 0).all() and counts.sum() == len(lat)
    for index in range(len(cells)):
        if counts[index] >= N_MIN:
            continue
        # A small cell is a quadrant left over by a split of a parent that held at least N_MIN images.
        assert cells.parents[index] >= N_MIN


@pytest.mark.parametrize(("min_size", "stopped_by_size"), [(0.01, 0), (2.0, 4)])
def test_top_down_cell_with_a_quadrant_of_n_is_at_the_minimum_size(points, min_size, stopped_by_size):
    lat, lon, _ = points
    cells = build(points, "top-down", min_size_deg=min_size)
    stopped = 0
    for south, west, north, east in cells.tiles:
        inside = (lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)
        mid_lat, mid_lon = (south + north) / 2, (west + east) / 2
        quadrants = [inside & ((lat >= mid_lat) == up) & ((lon >= mid_lon) == right)
                     for up in (False, True) for right in (False, True)]
        if max(q.sum() for q in quadrants) >= N_MIN:
            assert min(north - south, east - west) / 2 < min_size  # could not be split further
            stopped += 1
    assert stopped == stopped_by_size


def test_top_down_stops_only_at_the_minimum_size(points):
    coarse = build(points, "top-down", min_size_deg=5.0)
    fine = build(points, "top-down")
    assert len(coarse) < len(fine)
    # With a huge minimum size nothing is split at all.
    assert len(build(points, "top-down", min_size_deg=100.0)) == 1


def test_consolidation_leaves_no_cell_under_n(points):
    cells = build(points, "consolidated")
    assert cells.counts.min() >= N_MIN
    assert cells.counts.sum() == len(points[0])
    assert len(cells) < len(build(points, "top-down"))


@pytest.mark.parametrize("method", ["bottom-up", "heatmap", "coord-wcss"])
def test_bottom_up_claims_each_image_at_most_once_and_cells_have_n(points, method):
    cells = build(points, method)
    assert len(cells) > 1
    assert cells.claimed_counts.min() >= N_MIN  # every cell got at least n images when it was claimed
    assert (cells.assignment >= 0).all()  # leftovers go to the nearest cell, claimed once at most
    assert cells.claimed.sum() <= len(points[0])


def test_paper_bottom_up_cells_have_n_and_leave_the_unclaimed_out(points):
    cells = build(points, "bottom-up-paper")
    assert len(cells) > 1 and cells.counts.min() >= N_MIN
    assert ((cells.assignment < 0) == ~cells.claimed).all()  # unclaimed images belong to no cell
    assert cells.counts.sum() == cells.claimed.sum() <= len(points[0])


@pytest.mark.parametrize("method", METHODS)
def test_cell_coordinates_are_the_means_and_results_are_deterministic(points, method):
    lat, lon, _ = points
    cells = build(points, method)
    for index in range(len(cells)):
        members = cells.assignment == index
        np.testing.assert_allclose(cells.coords[index], [lat[members].mean(), lon[members].mean()])
        south, west, north, east = cells.boxes[index]
        assert south <= cells.coords[index, 0] <= north and west <= cells.coords[index, 1] <= east
    again = build(points, method)
    np.testing.assert_array_equal(cells.assignment, again.assignment)
    np.testing.assert_array_equal(cells.coords, again.coords)


def test_cohesion_criterion_changes_the_cells(points):
    features = build(points, "bottom-up")
    density = build(points, "heatmap")
    coords = build(points, "coord-wcss")
    assert not np.array_equal(features.assignment, density.assignment)
    assert not np.array_equal(features.assignment, coords.assignment)


def test_cohesion_is_size_independent_and_unit_free():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4000, 8))
    total = float(((values - values.mean(0)) ** 2).sum(1).mean())
    # Same spread, 10x the images: about the same score (raw WCSS would be 10x larger).
    assert cohesion(values[:400], total) == pytest.approx(cohesion(values, total), rel=0.1)
    assert cohesion(values * 3, total * 9) == pytest.approx(cohesion(values, total))
    assert cohesion(values[:400] * 0.1, total) < 0.05


def test_bad_configs_are_clear_errors(points):
    lat, lon, _ = points
    with pytest.raises(ValueError, match="unknown cell method"):
        build_cells(lat, lon, CellConfig(method="middle-out"))
    with pytest.raises(ValueError, match="features"):
        build_cells(lat, lon, CellConfig(method="bottom-up"))
    with pytest.raises(ValueError, match="min_images"):
        build_cells(lat, lon, CellConfig(min_images=0))
