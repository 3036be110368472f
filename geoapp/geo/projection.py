"""Equal Earth projection (Šavrič, Patterson & Jenny, 2018).

Equal Earth is an equal-area pseudocylindrical projection; on the unit sphere
the projected area of a region equals its area in steradians, which
``regions`` uses to measure areas.  GeoCLIP feeds the same projection, scaled,
into its location encoder, hence ``equal_earth_geoclip``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

A1 = 1.340264
A2 = -0.081106
A3 = 0.000893
A4 = 0.003796

# GeoCLIP scales the projected coordinates by this factor / 180.
GEOCLIP_SCALE = 66.50336

_M = np.sqrt(3.0) / 2.0


def equal_earth(lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Project degrees to Equal Earth (x, y) on the unit sphere.

    x is in [-2.7, 2.7] and y in [-1.32, 1.32] (roughly radians).
    """
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    theta = np.arcsin(np.clip(_M * np.sin(phi), -1.0, 1.0))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    x = 2.0 * np.sqrt(3.0) * lam * np.cos(theta) / (3.0 * (9.0 * A4 * t6 * t2 + 7.0 * A3 * t6 + 3.0 * A2 * t2 + A1))
    y = theta * (A4 * t6 * t2 + A3 * t6 + A2 * t2 + A1)
    return x, y


def equal_earth_geoclip(latlon: ArrayLike) -> np.ndarray:
    """[N,2] (lat, lon) degrees -> [N,2] float64 scaled like GeoCLIP's encoder input."""
    arr = np.asarray(latlon, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"latlon must have shape [N, 2] (lat, lon), got {arr.shape}.")
    x, y = equal_earth(arr[:, 0], arr[:, 1])
    return np.stack([x, y], axis=1) * GEOCLIP_SCALE / 180.0
