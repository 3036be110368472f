"""Web-Mercator tile math against mercantile (the reference), on random points and on the edges."""

from __future__ import annotations

import math

import mercantile
import numpy as np
import pytest

from geoapp.geo import tiles as T
from geoapp.geo.distance import CoordinateError
from geoapp.geo.regions import parse_region

RNG_SEED = 14


@pytest.fixture(scope="module")
def random_points():
    rng = np.random.default_rng(RNG_SEED)
    n = 12_000
    lat = rng.uniform(-T.MAX_LAT, T.MAX_LAT, n)
    lon = rng.uniform(-180.0, 180.0, n)
    z = rng.integers(0, 23, n)
    return lat, lon, z


def _random_tiles(z: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random existing tile at each zoom of ``z``."""
    rng = np.random.default_rng(seed)
    x = (rng.random(z.size) * (2**z)).astype(np.int64)
    y = (rng.random(z.size) * (2**z)).astype(np.int64)
    return z, x, y


def test_max_lat_value():
    assert T.MAX_LAT == pytest.approx(85.0511287798066, abs=1e-12)


def test_latlon_to_tile_matches_mercantile_on_random_points(random_points):
    lat, lon, z = random_points
    x, y = T.latlon_to_tile(lat, lon, z)
    expected = np.array([mercantile.tile(lo, la, int(zz))[:2] for la, lo, zz in zip(lat, lon, z)])
    np.testing.assert_array_equal(np.stack([x, y], axis=1), expected)


def _edge_points():
    lats = [T.MAX_LAT, -T.MAX_LAT, 85.0511, -85.0511, 0.0, 45.0, -45.0, 66.5]
    lons = [-180.0, 180.0, 0.0, -0.0, 179.999999999, -179.999999999, 90.0]
    return [(la, lo) for la in lats for lo in lons]


@pytest.mark.parametrize("z", [0, 1, 2, 5, 12, 20])
def test_edges_match_mercantile(z):
    for lat, lon in _edge_points():
        x, y = T.latlon_to_tile(lat, lon, z)
        assert (int(x), int(y)) == tuple(mercantile.tile(lon, lat, z)[:2]), (lat, lon, z)


def test_tile_corners_round_trip_and_match_mercantile(random_points):
    """The NW corner of every tile maps back to that tile, as in mercantile."""
    z, x, y = _random_tiles(random_points[2], seed=1)
    bounds = T.tile_bounds(z, x, y)
    west, north = bounds[:, 0], bounds[:, 3]
    tx, ty = T.latlon_to_tile(north, west, z)
    np.testing.assert_array_equal(tx, x)
    np.testing.assert_array_equal(ty, y)
    for i in range(0, z.size, 7):
        assert tuple(mercantile.tile(west[i], north[i], int(z[i]))[:2]) == (x[i], y[i])


def test_bounds_and_center_match_mercantile(random_points):
    z, x, y = _random_tiles(random_points[2], seed=2)
    ours = T.tile_bounds(z, x, y)
    theirs = np.array([tuple(mercantile.bounds(int(a), int(b), int(c))) for a, b, c in zip(x, y, z)])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    lat, lon = T.tile_center(z, x, y)
    assert np.all((lat < ours[:, 3]) & (lat > ours[:, 1]) & (lon > ours[:, 0]) & (lon < ours[:, 2]))
    cx, cy = T.latlon_to_tile(lat, lon, z)
    np.testing.assert_array_equal(cx, x)
    np.testing.assert_array_equal(cy, y)


def test_world_tile_bounds():
    np.testing.assert_allclose(T.tile_bounds(0, 0, 0), [-180, -T.MAX_LAT, 180, T.MAX_LAT])


def test_poles_are_clamped_not_errors():
    _x, y = T.latlon_to_tile([90.0, -90.0, 89.0], [0.0, 0.0, 0.0], 4)
    assert list(y) == [0, 15, 0]
    with pytest.raises(CoordinateError):
        T.latlon_to_tile(91.0, 0.0, 3)
    with pytest.raises(CoordinateError):
        T.latlon_to_tile(0.0, 181.0, 3)
    with pytest.raises(CoordinateError):
        T.latlon_to_tile(float("nan"), 0.0, 3)


def test_bad_tiles_and_zooms_are_clear_errors():
    with pytest.raises(T.TileError, match="does not exist"):
        T.tile_bounds(2, 4, 0)
    with pytest.raises(T.TileError, match="zoom"):
        T.latlon_to_tile(0, 0, 31)
    with pytest.raises(T.TileError, match="zoom"):
        T.latlon_to_tile(0, 0, 1.5)
    with pytest.raises(T.TileError):
        T.Tile(1, -1, 0)


def test_children_and_parent_match_mercantile():
    z, x, y = 5, 17, 11
    cz, cx, cy = T.children(z, x, y, 2)
    assert cx.shape == (4, 4)
    assert np.all(cz == 7)
    ours = {(int(a), int(b), int(c)) for a, b, c in zip(cx.ravel(), cy.ravel(), cz.ravel())}
    theirs = {tuple(t) for t in mercantile.children(x, y, z, zoom=7)}
    assert ours == theirs
    # rows north -> south, columns west -> east
    assert cy[0, 0] < cy[1, 0] and cx[0, 0] < cx[0, 1]
    pz, px, py = T.parent(cz, cx, cy, 2)
    assert np.all(pz == z) and np.all(px == x) and np.all(py == y)
    _, px1, py1 = T.parent(7, cx[2, 3], cy[2, 3])
    assert tuple(mercantile.parent(int(cx[2, 3]), int(cy[2, 3]), 7)) == (int(px1), int(py1), 6)
    with pytest.raises(T.TileError):
        T.parent(0, 0, 0)


def test_quadkeys_match_mercantile(random_points):
    z, x, y = _random_tiles(random_points[2], seed=3)
    keys = T.quadkey(z, x, y)
    for i in range(0, z.size, 5):
        assert keys[i] == mercantile.quadkey(int(x[i]), int(y[i]), int(z[i]))
        tile = T.quadkey_to_tile(keys[i])
        assert (tile.z, tile.x, tile.y) == (z[i], x[i], y[i])
    assert T.quadkey(0, 0, 0) == ""
    with pytest.raises(T.TileError):
        T.quadkey_to_tile("0124")


def test_flip_y_is_tms():
    assert int(T.flip_y(3, 0)) == 7
    assert int(T.flip_y(3, T.flip_y(3, 5))) == 5


@pytest.mark.parametrize("box", [(40.0, -5.0, 52.0, 10.0), (-60.0, 170.0, -30.0, -170.0), (-89.0, -180.0, 89.0, 180.0),
                                 (10.0, 179.5, 11.0, -179.5)])
@pytest.mark.parametrize("z", [0, 3, 6])
def test_tiles_in_bbox_match_mercantile(box, z):
    south, west, north, east = box
    ours = {tuple(t) for t in T.tiles_in_bbox(south, west, north, east, z)}
    theirs = {(t.z, t.x, t.y) for t in mercantile.tiles(west, south, east, north, [z])}
    assert ours == theirs


def test_tiles_in_bbox_of_a_tile_is_that_tile():
    west, south, east, north = T.tile_bounds(6, 33, 21)
    assert [tuple(t) for t in T.tiles_in_bbox(south, west, north, east, 6)] == [(6, 33, 21)]


def test_tiles_covering_country_is_inside_bbox_and_has_paris():
    france = parse_region("FR")
    tiles = T.tiles_covering(france, 6)
    px, py = T.latlon_to_tile(48.8566, 2.3522, 6)
    assert (6, int(px), int(py)) in {tuple(t) for t in tiles}
    south, west, north, east = france.bounds
    in_box = {tuple(t) for t in T.tiles_in_bbox(south, west, north, east, 6)}
    assert {tuple(t) for t in tiles} <= in_box
    assert len(tiles) < len(in_box)  # the overseas departments make the box huge


def test_tiles_covering_antimeridian_and_circle():
    box = parse_region("bbox:-20,175,-10,-175")
    tiles = T.tiles_covering(box, 5)
    assert {tuple(t) for t in tiles} == {tuple(t) for t in T.tiles_in_bbox(-20, 175, -10, -175, 5)}
    assert {int(t[1]) for t in tiles} >= {0, 31}
    circle = parse_region("circle:48.85,2.35,30")
    tiles = T.tiles_covering(circle, 10)
    assert 1 <= len(tiles) <= 9
    lat, lon = T.tile_center(tiles[:, 0], tiles[:, 1], tiles[:, 2])
    assert np.all(np.abs(lat - 48.85) < 1.0) and np.all(np.abs(lon - 2.35) < 1.0)


def test_tiles_covering_continent_and_polygon_and_limit():
    europe = T.tiles_covering(parse_region("Europe"), 3)
    px, py = T.latlon_to_tile(48.8566, 2.3522, 3)
    assert (3, int(px), int(py)) in {tuple(t) for t in europe}
    polygon = parse_region({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]})
    assert len(T.tiles_covering(polygon, 4)) >= 1
    with pytest.raises(T.TileError, match="lower zoom"):
        T.tiles_covering(parse_region("Europe"), 12, max_tiles=1000)


def test_vectorised_speed_sanity():
    lat = np.linspace(-80, 80, 200_000)
    lon = np.linspace(-179, 179, 200_000)
    x, _y = T.latlon_to_tile(lat, lon, 14)
    assert x.dtype == np.int64 and x.shape == lat.shape
    assert math.isclose(float(T.tile_lon(x[0], 14)), -179.0, abs_tol=360 / 2**14)
