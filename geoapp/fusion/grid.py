"""An adaptive lat/lon quadtree over the globe with exact cell areas (the map every evidence lives on).

Why not H3: H3 children do not tile their parent exactly (aperture 7 with a rotation), so a grid that is
fine in one place and coarse elsewhere would have small gaps and overlaps where resolutions meet, and mass
would be lost or counted twice there. Here every cell is a latitude/longitude box; a cell splits into 2 x 2
children that tile it exactly, so a mixed-resolution grid is an exact partition of the sphere, and every
cell's area is exact: the WGS84 ellipsoid's area of a lat/lon box has a closed form (``box_area_km2``),
checked against a geodesic polygon area in the tests.

Level 0: rows of ``BASE_ROW_DEG`` = 2 degrees; each row has ``round(180 cos(latitude))`` columns (at least
3), so cells are about 220 km square at every latitude (10 312 cells over the globe). Level l halves
both sides l times: level 8 cells are 0.0078 degrees tall (about 0.9 km).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from geoapp.geo.distance import haversine_km, latlon_to_unit_xyz

BASE_ROW_DEG = 2.0
BASE_ROWS = int(round(180.0 / BASE_ROW_DEG))
MAX_LEVEL = 8
# WGS84 semi-major axis (km) and first eccentricity.
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_E = math.sqrt(WGS84_F * (2.0 - WGS84_F))
_LEVEL_SHIFT, _ROW_SHIFT = 58, 29  # key = level << 58 | row << 29 | col


def _base_columns() -> np.ndarray:
    centres = -90.0 + (np.arange(BASE_ROWS) + 0.5) * BASE_ROW_DEG
    return np.maximum(3, np.rint(180.0 * np.cos(np.radians(centres)))).astype(np.int64)


BASE_COLUMNS = _base_columns()


def _authalic_integral(lat_deg: np.ndarray) -> np.ndarray:
    """Area (km^2) between the equator and ``lat`` per radian of longitude on the WGS84 ellipsoid."""
    s = np.sin(np.radians(lat_deg))
    e = WGS84_E
    return (WGS84_A_KM ** 2 * (1.0 - e * e) / 2.0) * (
        s / (1.0 - e * e * s * s) + np.log((1.0 + e * s) / (1.0 - e * s)) / (2.0 * e))


def box_area_km2(south: np.ndarray, north: np.ndarray, west: np.ndarray, east: np.ndarray) -> np.ndarray:
    """Exact WGS84 area of latitude/longitude boxes (degrees; ``east > west``)."""
    return np.radians(np.asarray(east) - np.asarray(west)) * (_authalic_integral(north) - _authalic_integral(south))


EARTH_AREA_KM2 = float(box_area_km2(-90.0, 90.0, -180.0, 180.0))


def cell_keys(level: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    return (np.asarray(level, np.int64) << _LEVEL_SHIFT) | (np.asarray(row, np.int64) << _ROW_SHIFT) | \
        np.asarray(col, np.int64)


def _columns(level: np.ndarray, row: np.ndarray) -> np.ndarray:
    return BASE_COLUMNS[row >> level] << level


def point_cells(lat: np.ndarray, lon: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) at ``level`` of the cell holding each point (the north pole falls in the top row)."""
    rows_at = BASE_ROWS << level
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    row = np.clip(np.floor((lat + 90.0) / 180.0 * rows_at).astype(np.int64), 0, rows_at - 1)
    ncols = _columns(np.full_like(row, level), row)
    col = np.floor(((lon + 180.0) % 360.0) / 360.0 * ncols).astype(np.int64)
    return row, np.minimum(col, ncols - 1)


@dataclass(frozen=True)
class Grid:
    """Leaf cells of the quadtree: parallel arrays (level, row, col); an exact partition of the sphere."""

    level: np.ndarray  # int64 [N]
    row: np.ndarray  # int64 [N]: row at the cell's own level, from the south pole
    col: np.ndarray  # int64 [N]: column at the cell's own level, from longitude -180

    @classmethod
    def base(cls, level: int = 0) -> "Grid":
        """Every cell of one level (level 0: 10 312 cells of about 220 km)."""
        rows = np.arange(BASE_ROWS << level, dtype=np.int64)
        counts = _columns(np.full_like(rows, level), rows)
        row = np.repeat(rows, counts)
        starts = np.cumsum(counts) - counts
        col = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
        return cls(np.full_like(row, level), row, col)

    def __len__(self) -> int:
        return int(self.level.shape[0])

    def subset(self, index: np.ndarray) -> "Grid":
        return Grid(self.level[index], self.row[index], self.col[index])

    def children(self, index: np.ndarray | None = None) -> "Grid":
        """The 4 children of each chosen cell (all cells when ``index`` is None)."""
        g = self if index is None else self.subset(index)
        dr = np.array([0, 0, 1, 1], np.int64)
        dc = np.array([0, 1, 0, 1], np.int64)
        return Grid(np.repeat(g.level + 1, 4), (2 * g.row[:, None] + dr).ravel(), (2 * g.col[:, None] + dc).ravel())

    def refine(self, mask: np.ndarray) -> "Grid":
        """A new grid where the masked cells (below ``MAX_LEVEL``) are replaced by their children."""
        mask = np.asarray(mask, bool) & (self.level < MAX_LEVEL)
        if not mask.any():
            return self
        kept = self.subset(~mask)
        kids = self.children(np.flatnonzero(mask))
        return Grid(np.concatenate([kept.level, kids.level]), np.concatenate([kept.row, kids.row]),
                    np.concatenate([kept.col, kids.col]))

    @staticmethod
    def concat(grids: list["Grid"]) -> "Grid":
        return Grid(*(np.concatenate([getattr(g, name) for g in grids]) for name in ("level", "row", "col")))

    # Geometry ---------------------------------------------------------------------------------------
    @cached_property
    def south(self) -> np.ndarray:
        return -90.0 + self.row * (BASE_ROW_DEG / (1 << self.level))

    @cached_property
    def north(self) -> np.ndarray:
        return -90.0 + (self.row + 1) * (BASE_ROW_DEG / (1 << self.level))

    @cached_property
    def west(self) -> np.ndarray:
        return -180.0 + self.col * (360.0 / _columns(self.level, self.row))

    @cached_property
    def east(self) -> np.ndarray:
        return -180.0 + (self.col + 1) * (360.0 / _columns(self.level, self.row))

    @cached_property
    def lat(self) -> np.ndarray:
        """Latitude of the cell's area centre (the parallel halving its area, on the sphere)."""
        return np.degrees(np.arcsin((np.sin(np.radians(self.south)) + np.sin(np.radians(self.north))) / 2.0))

    @cached_property
    def lon(self) -> np.ndarray:
        return (self.west + self.east) / 2.0

    @cached_property
    def area_km2(self) -> np.ndarray:
        return box_area_km2(self.south, self.north, self.west, self.east)

    @cached_property
    def xyz(self) -> np.ndarray:
        return latlon_to_unit_xyz(self.lat, self.lon)

    @cached_property
    def radius_km(self) -> np.ndarray:
        """Great-circle distance from the centre to the farthest corner (bounds every point of the cell)."""
        corners = [haversine_km(self.lat, self.lon, lat, lon) for lat in (self.south, self.north)
                   for lon in (self.west, self.east)]
        return np.max(corners, axis=0)

    @cached_property
    def keys(self) -> np.ndarray:
        return cell_keys(self.level, self.row, self.col)

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.keys)
        return self.keys[order], order

    def locate(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Index of the leaf cell holding each point."""
        lat = np.atleast_1d(np.asarray(lat, np.float64))
        lon = np.atleast_1d(np.asarray(lon, np.float64))
        keys, order = self._sorted
        found = np.full(lat.shape, -1, np.int64)
        for level in np.unique(self.level):
            row, col = point_cells(lat, lon, int(level))
            probe = cell_keys(np.full_like(row, level), row, col)
            at = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
            hit = keys[at] == probe
            found[hit] = order[at[hit]]
        return found

    def boxes(self, index: np.ndarray | None = None) -> np.ndarray:
        """[K, 4] (west, south, east, north) degrees."""
        sel = slice(None) if index is None else index
        return np.stack([self.west[sel], self.south[sel], self.east[sel], self.north[sel]], axis=1)

    def to_dict(self) -> dict:
        return {"cells": len(self), "levels": {int(k): int(v) for k, v in zip(*np.unique(self.level, return_counts=True))},
                "area_km2": float(self.area_km2.sum())}


def level_for_km(km: float) -> int:
    """The coarsest level whose cells are at most ``km`` tall (capped at ``MAX_LEVEL``)."""
    cell_km = BASE_ROW_DEG * 111.2
    level = 0
    while level < MAX_LEVEL and cell_km / (1 << level) > km:
        level += 1
    return level
