import numpy as np
import pytest
from pyproj import Geod

from geoapp.fusion.grid import EARTH_AREA_KM2, MAX_LEVEL, Grid, box_area_km2


def _geodesic_area_km2(south, north, west, east, steps=2000):
    """WGS84 area of a lat/lon box: its parallels densified so geodesic edges follow them."""
    lons = np.linspace(west, east, steps)
    ring_lon = np.concatenate([lons, lons[::-1]])
    ring_lat = np.concatenate([np.full(steps, south), np.full(steps, north)])
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(ring_lon, ring_lat)
    return abs(area) / 1e6


@pytest.mark.parametrize("level", [0, 3, 8])
def test_cell_areas_agree_with_a_geodesic_computation(level):
    grid = Grid.base(0)
    rng = np.random.default_rng(level)
    for index in rng.choice(len(grid), 6, replace=False):
        cell = grid.subset(np.array([index]))
        for _ in range(level):
            cell = cell.children().subset(np.array([rng.integers(4)]))
        exact = float(cell.area_km2[0])
        geodesic = _geodesic_area_km2(cell.south[0], cell.north[0], cell.west[0], cell.east[0])
        assert exact == pytest.approx(geodesic, rel=2e-4), (level, cell.south[0], cell.west[0])


def test_the_base_grid_tiles_the_ellipsoid_and_refining_keeps_the_area():
    grid = Grid.base()
    assert grid.area_km2.sum() == pytest.approx(EARTH_AREA_KM2, rel=1e-12)
    assert EARTH_AREA_KM2 == pytest.approx(510_065_622, rel=1e-6)  # WGS84 surface area
    refined = grid.refine(np.arange(len(grid)) % 7 == 0)
    refined = refined.refine(np.arange(len(refined)) % 5 == 0)
    assert refined.area_km2.sum() == pytest.approx(EARTH_AREA_KM2, rel=1e-12)
    kids = grid.children(np.array([123]))
    assert kids.area_km2.sum() == pytest.approx(grid.area_km2[123], rel=1e-12)
    assert kids.west.min() == grid.west[123] and kids.north.max() == grid.north[123]


def test_every_point_lies_in_exactly_the_cell_locate_names():
    grid = Grid.base().refine(np.arange(10312) < 4000)
    grid = grid.refine(grid.level == 1)
    rng = np.random.default_rng(0)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
    lon = rng.uniform(-180, 180, 20000)
    cell = grid.locate(lat, lon)
    assert (cell >= 0).all()
    assert np.all((grid.south[cell] <= lat) & (lat <= grid.north[cell]) & (grid.west[cell] <= lon) & (lon <= grid.east[cell]))
    # The boxes do not overlap: the cell areas of the points' cells never exceed the whole.
    assert len(np.unique(grid.keys)) == len(grid)


def test_refining_stops_at_the_finest_level():
    cell = Grid(np.array([MAX_LEVEL]), np.array([0]), np.array([0]))
    assert len(cell.refine(np.array([True]))) == 1
    assert len(Grid(np.array([MAX_LEVEL - 1]), np.array([0]), np.array([0])).refine(np.array([True]))) == 4
    assert box_area_km2(-90.0, 90.0, -180.0, 180.0) == pytest.approx(EARTH_AREA_KM2)
