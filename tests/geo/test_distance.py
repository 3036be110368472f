"""Distances, coordinate validation and the Equal Earth projection."""

import math

import numpy as np
import pytest

from geoapp.geo import (
    EARTH_RADIUS_KM,
    CoordinateError,
    destination_point,
    equal_earth,
    equal_earth_geoclip,
    haversine_km,
    normalize_lon,
    pairwise_haversine_km,
    validate_latlon,
)

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)


def test_paris_london():
    assert float(haversine_km(*PARIS, *LONDON)) == pytest.approx(343.5, abs=1.0)


def test_antipodes_and_zero_are_finite():
    half = math.pi * EARTH_RADIUS_KM
    assert float(haversine_km(0, 0, 0, 180)) == pytest.approx(half, rel=1e-9)
    assert float(haversine_km(90, 0, -90, 0)) == pytest.approx(20015.1, abs=0.5)
    # rounding around exact antipodes must not produce NaN
    d = haversine_km(37.123456789, -122.4, -37.123456789, 57.6)
    assert np.isfinite(d) and float(d) == pytest.approx(half, rel=1e-9)
    assert float(haversine_km(*PARIS, *PARIS)) == 0.0


def test_symmetry_and_broadcasting():
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-90, 90, (2, 50))
    lon1, lon2 = rng.uniform(-180, 180, (2, 50))
    np.testing.assert_allclose(haversine_km(lat1, lon1, lat2, lon2), haversine_km(lat2, lon2, lat1, lon1))
    grid = haversine_km(lat1[:, None], lon1[:, None], lat2[None, :], lon2[None, :])
    assert grid.shape == (50, 50)
    assert haversine_km(0.0, 0.0, lat2, lon2).shape == (50,)


def test_antimeridian_distance_is_short():
    assert float(haversine_km(0, 179.5, 0, -179.5)) == pytest.approx(111.19, abs=0.1)


def test_pairwise_matches_elementwise():
    a = np.array([PARIS, LONDON])
    b = np.array([LONDON, PARIS, (0.0, 0.0)])
    m = pairwise_haversine_km(a, b)
    assert m.shape == (2, 3)
    assert m[0, 0] == pytest.approx(float(haversine_km(*PARIS, *LONDON)))
    assert m[0, 1] == 0.0 and m[1, 0] == 0.0
    with pytest.raises(CoordinateError):
        pairwise_haversine_km(np.zeros((3, 3)), b)


def test_destination_point_round_trip():
    bearings = np.arange(0, 360, 15.0)
    lat, lon = destination_point(PARIS[0], PARIS[1], bearings, 500.0)
    np.testing.assert_allclose(haversine_km(PARIS[0], PARIS[1], lat, lon), 500.0, rtol=1e-9)
    # due north 1 degree of arc
    lat_n, lon_n = destination_point(0.0, 0.0, 0.0, EARTH_RADIUS_KM * math.radians(1))
    assert float(lat_n) == pytest.approx(1.0) and float(lon_n) == pytest.approx(0.0)
    # crossing the antimeridian eastwards wraps into [-180, 180)
    _, lon_e = destination_point(0.0, 179.9, 90.0, 50.0)
    assert -180.0 <= float(lon_e) < -179.0


def test_normalize_lon():
    np.testing.assert_allclose(normalize_lon([180, -180, 190, -190, 540, 0, 359.5]), [-180, -180, -170, 170, -180, 0, -0.5])


def test_validate_latlon():
    lat, lon = validate_latlon([10, 20], 30)
    assert lat.shape == lon.shape == (2,)
    for bad_lat, bad_lon, word in [(95, 0, "latitude"), (0, 181, "longitude"), (float("nan"), 0, "latitude"), (0, float("inf"), "longitude")]:
        with pytest.raises(CoordinateError, match=word):
            validate_latlon(bad_lat, bad_lon)
    assert issubclass(CoordinateError, ValueError)
    with pytest.raises(CoordinateError, match="95.0"):
        validate_latlon([0, 95], [0, 0])


def test_equal_earth_reference_values():
    # Values from the Equal Earth paper: x at (0, 180) and y at the pole.
    x, y = equal_earth(0.0, 180.0)
    assert float(x) == pytest.approx(2.7066297, abs=1e-6) and float(y) == 0.0
    x, y = equal_earth(90.0, 0.0)
    assert float(x) == 0.0 and float(y) == pytest.approx(1.3173627, abs=1e-6)
    # hand-computed mid-latitude point
    lat, lon = 45.0, 90.0
    theta = math.asin(math.sqrt(3) / 2 * math.sin(math.radians(lat)))
    a1, a2, a3, a4 = 1.340264, -0.081106, 0.000893, 0.003796
    x_ref = 2 * math.sqrt(3) * math.radians(lon) * math.cos(theta) / (3 * (9 * a4 * theta**8 + 7 * a3 * theta**6 + 3 * a2 * theta**2 + a1))
    y_ref = a4 * theta**9 + a3 * theta**7 + a2 * theta**3 + a1 * theta
    x, y = equal_earth(lat, lon)
    assert float(x) == pytest.approx(x_ref, rel=1e-12) and float(y) == pytest.approx(y_ref, rel=1e-12)
    # symmetric in both axes
    xs, ys = equal_earth(-lat, -lon)
    assert float(xs) == pytest.approx(-x_ref) and float(ys) == pytest.approx(-y_ref)


def test_equal_earth_geoclip_scaling():
    latlon = np.array([[45.0, 90.0], [0.0, 180.0], [-30.0, -60.0]])
    out = equal_earth_geoclip(latlon)
    x, y = equal_earth(latlon[:, 0], latlon[:, 1])
    assert out.shape == (3, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, np.stack([x, y], axis=1) * 66.50336 / 180.0)
    with pytest.raises(ValueError):
        equal_earth_geoclip(np.zeros(3))
