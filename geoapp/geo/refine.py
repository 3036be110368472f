"""Fine refinement past the gallery: score local grids around the top candidates (torch-free).

A retrieval model answers with one of its gallery points, so its error is at least the distance
to the nearest gallery point (only ~64 % of Im2GPS3k locations have one within 1 km of GeoCLIP's
100K gallery). GeoCLIP's location encoder is continuous, so any point can be scored: around each
of the top ``top_n`` distinct places we search a disc of ``radius_km`` down to ``step_km``
spacing and move the place to its best-scoring point.

A full grid at 0.5 km over a 15 km disc is ~2 800 points per place (45 000 per photo). We search
coarse to fine instead: a lattice over the disc at 4.5 km, then 3×3 lattices at a third of the
previous spacing around the best point so far (1.5 km, then 0.5 km): ~55 points a place. For a scorer that peaks at the true location (the ceiling's perfect model) this
finds the same point as the full grid; a real model could hide a narrow peak between coarse
points, which is why the first stage is already 4-5 km fine. Every stage keeps its centre, so a
place's score never decreases and an unrefined place is never made worse by its own scorer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from geoapp.geo.distance import EARTH_RADIUS_KM, haversine_km


@dataclass(frozen=True)
class RefineSpec:
    """Where and how finely to refine. ``radius_km == 0`` turns refinement off."""

    radius_km: float = 15.0
    step_km: float = 0.5
    top_n: int = 16
    ratio: float = 3.5  # first stage: about this many lattice steps from the centre to the edge

    def __post_init__(self) -> None:
        if not (math.isfinite(self.radius_km) and 0 <= self.radius_km <= 200):
            raise ValueError(f"refinement radius must be between 0 and 200 km; got {self.radius_km}")
        if not (math.isfinite(self.step_km) and 0.01 <= self.step_km):
            raise ValueError(f"refinement spacing must be at least 0.01 km; got {self.step_km}")
        if self.radius_km and self.step_km > self.radius_km:
            raise ValueError(f"refinement spacing ({self.step_km} km) is larger than its radius ({self.radius_km} km)")
        if not 1 <= int(self.top_n) <= 100:
            raise ValueError(f"refinement top_n must be between 1 and 100; got {self.top_n}")
        if not self.ratio >= 1.5:
            raise ValueError(f"refinement ratio must be at least 1.5; got {self.ratio}")

    @property
    def enabled(self) -> bool:
        return self.radius_km > 0

    def stages(self) -> list[tuple[float, float]]:
        """(radius km, spacing km) of each stage, coarse to fine; the last spacing is ``step_km``.

        The first stage covers the whole disc at ``step_km · 3^k`` (about ``ratio`` points from
        centre to edge); each later stage is the 3×3 lattice at a third of the previous spacing
        around the best point so far, which tiles exactly the previous point's lattice cell (the
        truth is nearest to that point, so it lies in its cell). Nine points a stage.
        """
        if not self.enabled:
            return []
        k = max(0, round(math.log(self.radius_km / (self.step_km * self.ratio), 3)))
        step = self.step_km * 3 ** k
        result = [(self.radius_km, step)]
        for _ in range(k):
            # radius √2·(step/3) reaches the corners of the 3×3 lattice, and no farther lattice point
            result.append((math.sqrt(2) * step / 3 * (1 + 1e-9), step / 3))
            step /= 3
        return result

    def points_per_place(self) -> int:
        """Points scored per refined place (all stages)."""
        return sum(len(disc_offsets(radius, step)) for radius, step in self.stages())

    def to_dict(self) -> dict:
        return {"radius_km": self.radius_km, "step_km": self.step_km, "top_n": self.top_n,
                "stages": [[round(r, 3), round(s, 3)] for r, s in self.stages()]}


def disc_offsets(radius_km: float, step_km: float) -> np.ndarray:
    """(east, north) km offsets [M, 2] of a square lattice of ``step_km`` inside the disc; (0, 0) first."""
    n = int(math.floor(radius_km / step_km + 1e-9))
    axis = np.arange(-n, n + 1, dtype=np.float64) * step_km
    east, north = np.meshgrid(axis, axis)
    offsets = np.stack([east.ravel(), north.ravel()], axis=1)
    offsets = offsets[np.hypot(offsets[:, 0], offsets[:, 1]) <= radius_km + 1e-9]
    order = np.argsort(np.hypot(offsets[:, 0], offsets[:, 1]), kind="stable")
    return offsets[order]


def offset_points(lat: float, lon: float, offsets_km: np.ndarray) -> np.ndarray:
    """Points [M, 2] (lat, lon) at the given (east, north) km offsets from (lat, lon).

    Offsets are read as an azimuthal equidistant projection around the centre (distance and
    bearing on the sphere), so this stays correct near the poles and across the antimeridian.
    """
    offsets = np.asarray(offsets_km, dtype=np.float64).reshape(-1, 2)
    distance = np.hypot(offsets[:, 0], offsets[:, 1]) / EARTH_RADIUS_KM
    bearing = np.arctan2(offsets[:, 0], offsets[:, 1])
    phi1, lam1 = math.radians(lat), math.radians(lon)
    sin_phi2 = np.sin(phi1) * np.cos(distance) + np.cos(phi1) * np.sin(distance) * np.cos(bearing)
    phi2 = np.arcsin(np.clip(sin_phi2, -1.0, 1.0))
    lam2 = lam1 + np.arctan2(np.sin(bearing) * np.sin(distance) * np.cos(phi1),
                             np.cos(distance) - np.sin(phi1) * sin_phi2)
    lon2 = (np.degrees(lam2) + 180.0) % 360.0 - 180.0
    points = np.stack([np.degrees(phi2), lon2], axis=1)
    points[distance == 0] = (lat, lon)  # the centre exactly (no round trip through trigonometry)
    return points


# score(points of each image) -> scores of each image's points; one call per stage for a whole batch,
# so a family can encode every image's points in one forward.
BatchScorer = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]


@dataclass
class Refined:
    """One image's refined places: new positions, their scores and how far each moved."""

    points: np.ndarray  # [T, 2] (lat, lon)
    scores: np.ndarray  # [T]
    moved_km: np.ndarray  # [T]
    points_scored: int


def refine_places(places: Sequence[np.ndarray], score: BatchScorer, spec: RefineSpec,
                  inside: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Refined]:
    """Coarse-to-fine search around each image's places ([T_i, 2] lat/lon each).

    ``inside(points) -> bool mask`` keeps the search inside a region; the centre of each stage is
    always kept (it is a candidate already), so no place ever leaves the region or loses score.
    """
    current = [np.asarray(p, dtype=np.float64).reshape(-1, 2).copy() for p in places]
    best = [np.full(len(p), -np.inf) for p in current]
    scored = [0] * len(current)
    for radius, step in spec.stages():
        offsets = disc_offsets(radius, step)
        grids: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        for points in current:
            per_place = [offset_points(lat, lon, offsets) for lat, lon in points]
            if inside is not None:
                # the centre (row 0) stays even if the region test is strict on its border
                per_place = [g[np.concatenate([[True], np.asarray(inside(g[1:]), dtype=bool)])] for g in per_place]
            grids.append(np.concatenate(per_place) if per_place else np.zeros((0, 2)))
            owners.append(np.repeat(np.arange(len(per_place)), [len(g) for g in per_place]))
        scores = score(grids)
        for i, (grid, owner, values) in enumerate(zip(grids, owners, scores)):
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            scored[i] += len(grid)
            for place in range(len(current[i])):
                mine = np.flatnonzero(owner == place)
                top = mine[int(np.argmax(values[mine]))]
                if values[top] >= best[i][place]:
                    best[i][place] = values[top]
                    current[i][place] = grid[top]
    result = []
    for start, points, values, count in zip(places, current, best, scored):
        start = np.asarray(start, dtype=np.float64).reshape(-1, 2)
        result.append(Refined(points, values, _haversine_rows(start, points), count))
    return result


def _haversine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0:
        return np.zeros(0)
    return np.asarray(haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1]), dtype=np.float64).reshape(-1)
