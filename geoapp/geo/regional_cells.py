"""Cells for regional models ("Sweden or Switzerland", Engdahl & Heubi, §4.4): numpy only.

A cell model classifies a photo into one of a few hundred cells; the cell stands for the **mean
of its training locations** (§4.4.3). Builders (``CellConfig.method``):

* ``top-down``: start from the region's bounding box and split a box into its four quadrants
  while at least one quadrant keeps ``min_images`` images and the quadrants would not be smaller
  than ``min_size_deg``. The other quadrants become cells too, so a top-down cell may hold fewer
  than ``min_images`` images: it is then the remainder of a split whose parent held at least
  ``min_images`` (tested invariant). Empty quadrants are dropped.
* ``consolidated``: top-down, then every cell under ``min_images`` is merged back into its parent,
  whose "remainder cell" collects the images of its small children (its big children stay cells
  of their own, so a small cell may sit inside a big one); a remainder still under
  ``min_images`` moves up again. At the root, a remainder under ``min_images`` joins the nearest
  cell. No cell ends under ``min_images``.
* ``bottom-up-paper`` (the paper's algorithm, §4.4.2, as published): density heat maps at ever
  coarser resolution (``base_deg``, x2, x4 ...); the heat map's pixels (a grid anchored at the
  points' south-west corner, no overlap) holding at least ``min_images`` *unclaimed* images are
  the candidate spots; the candidate with the lowest **raw** WCSS of its images' features is
  picked, its images claimed, and the search repeats until no candidate is left, then the
  resolution coarsens. Images never claimed belong to no cell (they do not train the cell
  classifier). Because pixels do not overlap, claiming one never changes another's count: every
  candidate of a resolution becomes a cell and the WCSS only sets the order (the cell numbers).
* ``bottom-up`` (ours): the same search with three changes. Candidates are the windows of each
  resolution on a half-step lattice, so they overlap and compete (the cohesion then decides which
  cells exist); cohesion is size-normalised (below) instead of raw WCSS, which favours the smallest
  candidates; images never claimed (fewer than ``min_images`` left in every window) are assigned
  to the nearest cell for training. Each cell holds at least ``min_images`` claimed images and no
  image is claimed twice.
* ``heatmap``: ours, picking the densest candidate (ablation: no cohesion).
* ``coord-wcss``: ours with cohesion measured on coordinates instead of features (ablation).

**Cohesion** (ours) = normalised within-cluster sum of squares: the features are L2-normalised, then
``WCSS / (k * V)`` with ``k`` the candidate's image count and ``V`` the mean squared distance of
*all* images to the global mean. Raw WCSS grows with the number of images, so dividing by ``k``
(the mean squared distance to the candidate's centroid) makes spots of different sizes
comparable, and dividing by ``V`` makes the number unit-free (1.0 = as spread as the whole
collection). Coordinates are taken as local kilometres (lat, lon x cos(mean lat)).

Deterministic: ties are broken by a permutation drawn from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .distance import haversine_km

METHODS = ("top-down", "consolidated", "bottom-up-paper", "bottom-up", "heatmap", "coord-wcss")


@dataclass(frozen=True)
class CellConfig:
    """How to build cells (the paper uses ``min_images`` = 200 on ~100 k photos)."""

    method: str = "bottom-up"
    min_images: int = 200
    min_size_deg: float = 0.01  # top-down: quadrants are never smaller than this
    base_deg: float = 0.01  # bottom-up: finest heat-map resolution (window side, degrees)
    max_deg: float = 64.0  # bottom-up: coarsest resolution tried
    seed: int = 0

    def check(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown cell method {self.method!r}; choose one of {', '.join(METHODS)}")
        if int(self.min_images) < 1:
            raise ValueError(f"min_images must be at least 1; got {self.min_images}")
        if not (self.min_size_deg > 0 and self.base_deg > 0 and self.max_deg >= self.base_deg):
            raise ValueError("min_size_deg and base_deg must be positive, max_deg at least base_deg")


@dataclass
class Cells:
    """Cells and which training image belongs to which."""

    coords: np.ndarray  # [C, 2] float64 mean (lat, lon) of each cell's training locations
    boxes: np.ndarray  # [C, 4] south, west, north, east of each cell's training locations
    assignment: np.ndarray  # [N] int64 cell of every training image
    claimed: np.ndarray  # [N] bool: the builder put the image there (bottom-up leftovers: False)
    # (bottom-up-paper: an unclaimed image's assignment is -1, it belongs to no cell)
    method: str
    config: CellConfig
    parents: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # top-down: parent's image count
    tiles: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # [C, 4] quadtree box / heat-map window

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.assignment[self.assignment >= 0], minlength=len(self)).astype(np.int64)

    @property
    def claimed_counts(self) -> np.ndarray:
        return np.bincount(self.assignment[self.claimed], minlength=len(self)).astype(np.int64)

    def nearest(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Index of the cell whose coordinate is nearest to each point (labels for new locations)."""
        return nearest_index(np.asarray(lat, np.float64), np.asarray(lon, np.float64), self.coords)

    def to_dict(self) -> dict:
        counts = self.counts
        return {"method": self.method, "cells": len(self), "min_images": self.config.min_images,
                "smallest": int(counts.min()) if len(counts) else 0,
                "largest": int(counts.max()) if len(counts) else 0,
                "unassigned": int((self.assignment < 0).sum())}


def build_cells(lat: np.ndarray, lon: np.ndarray, config: CellConfig, features: np.ndarray | None = None,
                bounds: tuple[float, float, float, float] | None = None) -> Cells:
    """Cells for training locations (``features`` [N, D] are needed by ``bottom-up`` only).

    ``bounds`` (south, west, north, east): the region's box for the top-down root (default: the
    points' box). A region must not cross the antimeridian (regional models cover a few countries).
    """
    config.check()
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    if len(lat) == 0 or len(lat) != len(lon):
        raise ValueError("cells need at least one training location, and as many latitudes as longitudes")
    if config.method in ("top-down", "consolidated"):
        box = bounds or (float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max()))
        leaves = _quadtree(lat, lon, box, config)
        if config.method == "consolidated":
            leaves = _consolidate(leaves, lat, lon, config.min_images)
        groups = [leaf.members for leaf in leaves]
        parents = np.array([leaf.parent_count for leaf in leaves], dtype=np.int64)
        claimed = np.ones(len(lat), dtype=bool)
        return _finish(lat, lon, groups, claimed, config, parents, np.array([leaf.box for leaf in leaves]))
    if config.method in ("bottom-up", "bottom-up-paper") and features is None:
        raise ValueError("bottom-up cells pick spots by feature cohesion: pass the image features")
    if config.method == "bottom-up-paper":
        groups, claimed, windows = _bottom_up_paper(lat, lon, config, features)
        return _finish(lat, lon, groups, claimed, config, np.zeros(len(groups), np.int64), np.array(windows),
                       reassign=False)
    groups, claimed, windows = _bottom_up(lat, lon, config, features)
    return _finish(lat, lon, groups, claimed, config, np.zeros(len(groups), np.int64), np.array(windows))


# ---------------------------------------------------------------------------------------------- top-down
@dataclass
class _Leaf:
    members: np.ndarray  # indices of the images in the cell
    path: tuple[int, ...]  # quadrant path from the root (its ancestors are the prefixes)
    parent_count: int  # images in the parent box (root: its own count)
    box: tuple[float, float, float, float]  # south, west, north, east of the quadtree box


def _quadtree(lat: np.ndarray, lon: np.ndarray, box: tuple[float, float, float, float],
              config: CellConfig) -> list[_Leaf]:
    leaves: list[_Leaf] = []
    stack = [(np.arange(len(lat)), tuple(float(v) for v in box), (), len(lat))]
    while stack:
        members, (south, west, north, east), path, parent_count = stack.pop()
        mid_lat, mid_lon = (south + north) / 2, (west + east) / 2
        can_split = min(north - south, east - west) / 2 >= config.min_size_deg
        quadrants = []
        if can_split:
            upper, right = lat[members] >= mid_lat, lon[members] >= mid_lon
            for q, (mask, qbox) in enumerate((
                    (~upper & ~right, (south, west, mid_lat, mid_lon)), (~upper & right, (south, mid_lon, mid_lat, east)),
                    (upper & ~right, (mid_lat, west, north, mid_lon)), (upper & right, (mid_lat, mid_lon, north, east)))):
                quadrants.append((members[mask], qbox, (*path, q)))
        if can_split and any(len(m) >= config.min_images for m, _, _ in quadrants):
            # Reverse so that the stack pops quadrant 0 first (stable, readable cell order).
            stack.extend((m, b, p, len(members)) for m, b, p in reversed(quadrants) if len(m))
        elif len(members):
            leaves.append(_Leaf(members, path, parent_count, (south, west, north, east)))
    return leaves


def _consolidate(leaves: list[_Leaf], lat: np.ndarray, lon: np.ndarray, min_images: int) -> list[_Leaf]:
    """Merge cells under ``min_images`` into their parent's remainder cell, deepest first."""
    kept = [leaf for leaf in leaves if len(leaf.members) >= min_images]
    pools: dict[tuple[int, ...], list[np.ndarray]] = {}
    boxes: dict[tuple[int, ...], tuple[float, float, float, float]] = {}
    for leaf in leaves:
        if len(leaf.members) < min_images:
            pools.setdefault(leaf.path[:-1], []).append(leaf.members)
            boxes[leaf.path] = leaf.box
    # A remainder cell's tile is its parent's box: the union of its children's boxes.
    def parent_box(path: tuple[int, ...]) -> tuple[float, float, float, float]:
        children = [b for p, b in boxes.items() if p[:len(path)] == path]
        return (min(b[0] for b in children), min(b[1] for b in children), max(b[2] for b in children),
                max(b[3] for b in children))

    while pools:
        deepest = max(pools, key=lambda p: (len(p), p))
        members = np.concatenate(pools.pop(deepest))
        if len(members) >= min_images or not deepest and not kept:
            kept.append(_Leaf(np.sort(members), deepest, len(members), parent_box(deepest)))
        elif deepest:
            pools.setdefault(deepest[:-1], []).append(members)
        else:  # the root's remainder is too small: each image joins the nearest cell
            means = np.array([[lat[k.members].mean(), lon[k.members].mean()] for k in kept])
            nearest = nearest_index(lat[members], lon[members], means)
            for cell in np.unique(nearest):
                kept[cell].members = np.sort(np.concatenate([kept[cell].members, members[nearest == cell]]))
    return sorted(kept, key=lambda leaf: leaf.path)


# ---------------------------------------------------------------------------------------------- bottom-up
def cohesion(values: np.ndarray, total_variance: float) -> float:
    """Normalised WCSS of ``values`` [k, D]: mean squared distance to their centroid / ``total_variance``."""
    if len(values) == 0:
        return float("inf")
    centred = values - values.mean(axis=0, keepdims=True)
    return float((centred ** 2).sum() / (len(values) * max(total_variance, 1e-12)))


def _cohesion_space(lat: np.ndarray, lon: np.ndarray, config: CellConfig,
                    features: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    if config.method == "heatmap":
        return None, 1.0
    if config.method == "coord-wcss":
        scale = np.cos(np.radians(lat.mean()))
        values = np.stack([lat * 111.32, lon * 111.32 * scale], axis=1)
    else:
        values = np.asarray(features, dtype=np.float64)
        if values.ndim != 2 or len(values) != len(lat):
            raise ValueError(f"features must be [N, D] with N = {len(lat)}; got {values.shape}")
        values = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    total = float(((values - values.mean(axis=0)) ** 2).sum(axis=1).mean())
    return values, total


def _bottom_up(lat: np.ndarray, lon: np.ndarray, config: CellConfig,
               features: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray]:
    values, total = _cohesion_space(lat, lon, config, features)
    rng = np.random.default_rng(config.seed)
    tiebreak = rng.permutation(1 << 20).astype(np.float64) / (1 << 20)  # tiny, seeded tie-breaker per spot
    claimed, groups, windows, (south, west, extent) = _empty_search(lat, lon)
    resolution = config.base_deg
    while resolution <= config.max_deg and not claimed.all():
        step = resolution / 2
        # Window (i, j) covers rows i, i+1 and columns j, j+1 of the half-step lattice.
        row = np.floor((lat - south) / step).astype(np.int64)
        col = np.floor((lon - west) / step).astype(np.int64)
        while True:
            free = np.flatnonzero(~claimed)
            if len(free) < config.min_images:
                break
            keys, counts = _window_counts(row[free], col[free])
            candidates = np.flatnonzero(counts >= config.min_images)
            if len(candidates) == 0:
                break
            scores = []
            for c in candidates:
                members = free[_in_window(row[free], col[free], keys[c])]
                score = -len(members) if values is None else cohesion(values[members], total)
                scores.append(score + 1e-9 * tiebreak[int(keys[c][0] * 7919 + keys[c][1]) % len(tiebreak)])
            best = candidates[int(np.argmin(scores))]
            members = free[_in_window(row[free], col[free], keys[best])]
            claimed[members] = True
            groups.append(np.sort(members))
            s0, w0 = south + keys[best][0] * step, west + keys[best][1] * step
            windows.append((s0, w0, s0 + resolution, w0 + resolution))
        if resolution > 2 * extent:
            break
        resolution *= 2
    return _one_cell_if_none(lat, lon, groups, claimed, windows)


def _empty_search(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, list, list, tuple[float, float, float]]:
    """Nothing claimed, no cell, no window yet; the heat maps' anchor (south, west) and the points' extent."""
    south, west = float(lat.min()), float(lon.min())
    return (np.zeros(len(lat), dtype=bool), [], [],
            (south, west, max(float(lat.max()) - south, float(lon.max()) - west)))


def _one_cell_if_none(lat: np.ndarray, lon: np.ndarray, groups: list, claimed: np.ndarray, windows: list
                      ) -> tuple[list[np.ndarray], np.ndarray, list]:
    """Fewer than ``min_images`` in every spot: one cell for everything (a model needs a class)."""
    if groups:
        return groups, claimed, windows
    box = (float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max()))
    return [np.arange(len(lat))], np.ones(len(lat), dtype=bool), [box]


def _window_counts(row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unclaimed images per 2x2-lattice window, for every window that holds any."""
    anchors = np.concatenate([np.stack([row - dr, col - dc], axis=1) for dr in (0, 1) for dc in (0, 1)])
    keys, counts = np.unique(anchors, axis=0, return_counts=True)
    return keys, counts


def _in_window(row: np.ndarray, col: np.ndarray, key: np.ndarray) -> np.ndarray:
    return (row >= key[0]) & (row <= key[0] + 1) & (col >= key[1]) & (col <= key[1] + 1)


def wcss(values: np.ndarray) -> float:
    """Raw within-cluster sum of squares of ``values`` [k, D] (the paper's cohesion; grows with k)."""
    return float(((values - values.mean(axis=0, keepdims=True)) ** 2).sum())


def _bottom_up_paper(lat: np.ndarray, lon: np.ndarray, config: CellConfig, features: np.ndarray
                     ) -> tuple[list[np.ndarray], np.ndarray, list[tuple[float, float, float, float]]]:
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2 or len(values) != len(lat):
        raise ValueError(f"features must be [N, D] with N = {len(lat)}; got {values.shape}")
    claimed, groups, windows, (south, west, extent) = _empty_search(lat, lon)
    resolution = config.base_deg
    while resolution <= config.max_deg:
        free = np.flatnonzero(~claimed)
        if len(free) < config.min_images:
            break
        pixel = np.stack([np.floor((lat[free] - south) / resolution), np.floor((lon[free] - west) / resolution)],
                         axis=1).astype(np.int64)
        keys, inverse, counts = np.unique(pixel, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        candidates = np.flatnonzero(counts >= config.min_images)
        # "Pick the most cohesive candidate, claim it, repeat": pixels do not overlap, so a claim leaves the other
        # candidates as they were and the repeated pick is the candidates in order of WCSS (stable on ties).
        scores = [wcss(values[free[inverse == c]]) for c in candidates]
        for c in candidates[np.argsort(scores, kind="stable")]:
            members = free[inverse == c]
            claimed[members] = True
            groups.append(np.sort(members))
            s0, w0 = south + keys[c][0] * resolution, west + keys[c][1] * resolution
            windows.append((s0, w0, s0 + resolution, w0 + resolution))
        if resolution > extent:  # one pixel already held every point
            break
        resolution *= 2
    return _one_cell_if_none(lat, lon, groups, claimed, windows)


# ---------------------------------------------------------------------------------------------- shared
def nearest_index(lat: np.ndarray, lon: np.ndarray, coords: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Index of the nearest of ``coords`` [C, 2] (great-circle) for each point."""
    out = np.empty(len(lat), dtype=np.int64)
    for start in range(0, len(lat), chunk):
        d = haversine_km(lat[start:start + chunk, None], lon[start:start + chunk, None],
                         coords[None, :, 0], coords[None, :, 1])
        out[start:start + chunk] = np.argmin(d, axis=1)
    return out


def _finish(lat: np.ndarray, lon: np.ndarray, groups: list[np.ndarray], claimed: np.ndarray, config: CellConfig,
            parents: np.ndarray, tiles: np.ndarray, reassign: bool = True) -> Cells:
    assignment = np.full(len(lat), -1, dtype=np.int64)
    for index, members in enumerate(groups):
        assignment[members] = index
    coords = np.array([[lat[m].mean(), lon[m].mean()] for m in groups], dtype=np.float64)
    leftover = np.flatnonzero(assignment < 0)
    if len(leftover) and reassign:
        assignment[leftover] = nearest_index(lat[leftover], lon[leftover], coords)
        # Cell coordinates are the means of *all* their training locations, leftovers included.
        groups = [np.flatnonzero(assignment == index) for index in range(len(groups))]
        coords = np.array([[lat[m].mean(), lon[m].mean()] for m in groups], dtype=np.float64)
    boxes = np.array([[lat[m].min(), lon[m].min(), lat[m].max(), lon[m].max()] for m in groups], dtype=np.float64)
    return Cells(coords=coords, boxes=boxes, assignment=assignment, claimed=claimed, method=config.method,
                 config=config, parents=parents, tiles=np.asarray(tiles, dtype=np.float64).reshape(-1, 4))
