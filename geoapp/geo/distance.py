"""Great-circle distances and small spherical helpers (numpy, degrees in).

Everything works on the mean Earth sphere (IUGG mean radius), which is
accurate to ~0.5 % against the WGS84 ellipsoid - more than enough for
geolocation error metrics and candidate grids.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

EARTH_RADIUS_KM = 6371.0088
"""IUGG mean Earth radius in kilometres."""


class CoordinateError(ValueError):
    """A latitude/longitude value is NaN, infinite or out of range."""


def haversine_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Great-circle distance in km between points given in degrees.

    Inputs broadcast against each other like any numpy ufunc; all-scalar
    inputs give a numpy float.
    """
    phi1, lam1, phi2, lam2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((phi2 - phi1) / 2.0) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin((lam2 - lam1) / 2.0) ** 2
    # Rounding can push `a` a hair outside [0, 1] (antipodes), which would make arcsin NaN.
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def pairwise_haversine_km(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """All distances between rows of ``a`` [N,2] and ``b`` [M,2] (lat, lon degrees) -> [N,M] km."""
    a = _as_latlon_array(a, "a")
    b = _as_latlon_array(b, "b")
    return haversine_km(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1])


def destination_point(
    lat: ArrayLike, lon: ArrayLike, bearing_deg: ArrayLike, distance_km: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Point reached from (lat, lon) after ``distance_km`` along initial ``bearing_deg``.

    Bearing is clockwise from north.  Vectorised (inputs broadcast); returns
    (lat, lon) in degrees with lon normalised to [-180, 180).
    """
    phi1 = np.radians(np.asarray(lat, dtype=np.float64))
    lam1 = np.radians(np.asarray(lon, dtype=np.float64))
    theta = np.radians(np.asarray(bearing_deg, dtype=np.float64))
    delta = np.asarray(distance_km, dtype=np.float64) / EARTH_RADIUS_KM

    sin_phi2 = np.sin(phi1) * np.cos(delta) + np.cos(phi1) * np.sin(delta) * np.cos(theta)
    phi2 = np.arcsin(np.clip(sin_phi2, -1.0, 1.0))
    lam2 = lam1 + np.arctan2(
        np.sin(theta) * np.sin(delta) * np.cos(phi1),
        np.cos(delta) - np.sin(phi1) * sin_phi2,
    )
    return np.degrees(phi2), normalize_lon(np.degrees(lam2))


def normalize_lon(lon: ArrayLike) -> np.ndarray:
    """Wrap longitudes (degrees) into [-180, 180)."""
    lon = np.asarray(lon, dtype=np.float64)
    return np.mod(lon + 180.0, 360.0) - 180.0


def validate_latlon(lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check coordinates and return them as float64 arrays (broadcast together).

    Raises ``CoordinateError`` naming the first offending value when any value is
    NaN/inf, a latitude is outside [-90, 90] or a longitude outside [-180, 180].
    """
    try:
        lat_arr, lon_arr = np.broadcast_arrays(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise CoordinateError(f"Coordinates must be numbers or matching numeric arrays: {exc}") from exc

    for name, values, limit in (("latitude", lat_arr, 90.0), ("longitude", lon_arr, 180.0)):
        bad = ~np.isfinite(values) | (np.abs(values) > limit)
        if np.any(bad):
            first = float(values[bad].flat[0])
            count = int(np.count_nonzero(bad))
            more = f" ({count} invalid values in total)" if count > 1 else ""
            raise CoordinateError(f"Invalid {name} {first!r}: must be a finite number in [-{limit:g}, {limit:g}]{more}.")
    return lat_arr, lon_arr


def latlon_to_unit_xyz(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Degrees -> unit vectors [..., 3]; handy for KD-trees (no antimeridian seam)."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    cos_phi = np.cos(phi)
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=-1)


def _as_latlon_array(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]  # a single (lat, lon) pair
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise CoordinateError(f"{name} must have shape [N, 2] (lat, lon), got {arr.shape}.")
    return arr
