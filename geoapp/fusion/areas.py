"""Highest-density credible areas on the grid, as polygons with their area in km^2 and number of parts.

``mass_above(density, mass, tiebreak)`` gives, for every cell, the probability held by the cells ahead of it:
strictly denser, or as dense and with a smaller ``tiebreak`` (the distance to the nearest predicted point, so
the equal-density cells of the uniform floor, beyond the kernel's reach, are taken nearest first, as an
untruncated kernel would rank them). The plain area at level L is the set of cells with ``mass_above < L``
(cells taken in that order until they hold L: the smallest area holding L, up to the last cell); a calibrated
area at conformal threshold ``q`` is the set with ``mass_above <= q`` (``geoapp.fusion.calibration``).
Cells equal in both keys (clue-only maps: a uniform zone) form one group and are taken or left together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import shapely

from geoapp.fusion.grid import Grid

LEVELS = (0.5, 0.8, 0.9, 0.95)
NOT_CALIBRATED = "not calibrated"


def rank_mass(density: np.ndarray, mass: np.ndarray, tiebreak: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: (mass of the cells ahead of it, mass of its own group of cells equal in both keys)."""
    keys = (density,) if tiebreak is None else (density, tiebreak)
    order = np.lexsort(tuple(reversed([-keys[0], *keys[1:]])))  # lexsort: last key first
    change = np.zeros(len(order), bool)
    change[0:1] = True
    for key in keys:
        k = key[order]
        change[1:] |= k[1:] != k[:-1]
    exclusive = np.cumsum(mass[order]) - mass[order]
    starts = np.flatnonzero(change)
    group = np.cumsum(change) - 1
    group_mass = np.add.reduceat(mass[order], starts) if len(starts) else np.zeros(0)
    above, own = np.empty_like(exclusive), np.empty_like(exclusive)
    above[order] = exclusive[starts][group]
    own[order] = group_mass[group]
    return above, own


def mass_above(density: np.ndarray, mass: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Per cell: total mass of the cells ahead of it (denser; equally dense with a smaller ``tiebreak``)."""
    return rank_mass(density, mass, tiebreak)[0]


def cells_to_geometry(grid: Grid, index: np.ndarray) -> tuple[dict, int]:
    """GeoJSON (Multi)Polygon of the union of cells, and its number of separate parts.

    Parts that meet across the antimeridian count as one.
    """
    if len(index) == 0:
        return {"type": "MultiPolygon", "coordinates": []}, 0
    west, south, east, north = grid.west[index], grid.south[index], grid.east[index], grid.north[index]
    # Cells of one row and level that touch are merged first: fewer boxes for the union.
    order = np.lexsort((west, grid.level[index], south))
    west, south, east, north = west[order], south[order], east[order], north[order]
    new_run = np.concatenate([[True], (south[1:] != south[:-1]) | (north[1:] != north[:-1])
                              | ~np.isclose(west[1:], east[:-1])])
    run = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.concatenate([starts[1:], [len(run)]]) - 1
    boxes = shapely.box(west[starts], south[starts], east[ends], north[ends])
    union = shapely.union_all(boxes, grid_size=1e-9)
    polygons = [g for g in getattr(union, "geoms", [union]) if not g.is_empty]
    return json.loads(shapely.to_geojson(shapely.MultiPolygon(polygons))), _parts(polygons)


def _parts(polygons: list) -> int:
    """Connected parts, joining polygons that share a stretch of the antimeridian."""
    parent = list(range(len(polygons)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def edge(polygon, lon: float) -> list[tuple[float, float]]:
        coords = np.asarray(polygon.exterior.coords)
        on = np.isclose(coords[:, 0], lon)
        pairs = on[:-1] & on[1:]
        return [tuple(sorted((coords[i, 1], coords[i + 1, 1]))) for i in np.flatnonzero(pairs)]

    west = [(i, s) for i, p in enumerate(polygons) for s in edge(p, -180.0)]
    east = [(j, s) for j, p in enumerate(polygons) for s in edge(p, 180.0)]
    for i, (a0, a1) in west:
        for j, (b0, b1) in east:
            if min(a1, b1) - max(a0, b0) > 1e-9:
                parent[find(i)] = find(j)
    return len({find(i) for i in range(len(polygons))})


@dataclass
class CredibleArea:
    """One credible area: where the location lies with probability ``level`` (calibrated or not)."""

    source: str  # the input(s) it belongs to
    level: float
    mass: float  # the posterior mass it actually holds
    area_km2: float
    parts: int
    calibrated: bool
    calibration: str  # "calibrated on N solved images of ..." or "not calibrated (...)"
    clues: list[str] = field(default_factory=list)
    cells: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    geometry: dict = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """ "90 %: 38 000 km2 in 2 parts (calibrated on ...)" """
        parts = "1 part" if self.parts == 1 else f"{self.parts} parts"
        return f"{self.level * 100:g} %: {self.area_km2:,.0f} km² in {parts} ({self.calibration})"

    def properties(self) -> dict:
        return {"kind": "credible_area", "source": self.source, "level": self.level, "mass": round(self.mass, 6),
                "area_km2": round(self.area_km2, 1), "parts": self.parts, "calibrated": self.calibrated,
                "calibration": self.calibration, "clues": list(self.clues)}

    def to_feature(self) -> dict:
        return {"type": "Feature", "geometry": self.geometry, "properties": self.properties()}

    def to_dict(self) -> dict:
        return {**self.properties(), "summary": self.summary()}


def build_area(grid: Grid, mass: np.ndarray, chosen: np.ndarray, *, source: str, level: float, calibrated: bool,
               calibration: str, clues: list[str]) -> CredibleArea:
    index = np.flatnonzero(chosen)
    geometry, parts = cells_to_geometry(grid, index)
    return CredibleArea(source=source, level=level, mass=float(mass[index].sum()),
                        area_km2=float(grid.area_km2[index].sum()), parts=parts, calibrated=calibrated,
                        calibration=calibration, clues=clues, cells=index, geometry=geometry)
