"""The SatWorld location pool and its seeded train/val/test split.

Pool: the MP-16 gallery (GeoCLIP's 100K photo locations: where people photograph) plus
uniformly random land points (so deserts, tundra and ice are covered too).

Split: the globe is cut into ``cell_deg`` x ``cell_deg`` lat/lon cells and whole cells go to
train, val or test (seeded). Val/test points closer than ``buffer_km`` to any train point
(i.e. near a cell border) are then dropped, so every test location is at least ``buffer_km``
from every training location.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoapp.geo.distance import latlon_to_unit_xyz

from .render import EARTH_RADIUS_KM


@dataclass(frozen=True)
class SplitConfig:
    seed: int = 0
    gallery_points: int | None = None  # None = the whole MP-16 gallery; fewer for tests
    land_points: int = 30_000
    cell_deg: float = 10.0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test (of cells)
    buffer_km: float = 200.0
    val_size: int = 1000
    test_size: int = 2000


@dataclass
class Splits:
    """Coordinates [N, 2] float32 (lat, lon) per split, and where each came from."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    pool: np.ndarray  # every pool point (gallery first, then land points)
    pool_split: np.ndarray  # [N] 0 = train, 1 = val, 2 = test, -1 = dropped by the buffer
    config: SplitConfig


def random_land_points(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points uniform on the sphere's land (rejection sampling with the Natural Earth land mask)."""
    from geoapp.geo.countries import get_country_index

    index = get_country_index()
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        # ~29 % of the sphere is land: draw 4x to need few rounds.
        lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 4 * count)))
        lon = rng.uniform(-180.0, 180.0, 4 * count)
        land = np.asarray(index.is_land(lat, lon), dtype=bool)
        chosen = np.stack([lat[land], lon[land]], axis=1)
        found.append(chosen)
        total += len(chosen)
    return np.concatenate(found)[:count].astype(np.float32)


def cell_ids(coords: np.ndarray, cell_deg: float) -> np.ndarray:
    """Integer id of each point's lat/lon cell."""
    rows = np.clip(np.floor((coords[:, 0] + 90.0) / cell_deg), 0, np.ceil(180 / cell_deg) - 1).astype(np.int64)
    cols = np.floor((coords[:, 1] + 180.0) / cell_deg).astype(np.int64) % int(np.ceil(360 / cell_deg))
    return rows * 1000 + cols


def nearest_distance_km(points: np.ndarray, reference: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Great-circle distance from each point to its nearest reference point (chunked dot products)."""
    import torch

    if len(reference) == 0:
        return np.full(len(points), np.inf)
    # float32 is ample here: at 200 km the rounding of a cosine moves the distance by ~10 m.
    ref = torch.from_numpy(latlon_to_unit_xyz(reference[:, 0], reference[:, 1]).astype(np.float32))
    out = np.empty(len(points))
    xyz = latlon_to_unit_xyz(points[:, 0], points[:, 1]).astype(np.float32)
    for start in range(0, len(points), chunk):
        block = torch.from_numpy(xyz[start:start + chunk])
        cos = (block @ ref.T).max(dim=1).values.clamp(-1.0, 1.0).double().numpy()
        out[start:start + chunk] = np.arccos(cos) * EARTH_RADIUS_KM
    return out


def make_splits(gallery_coords: np.ndarray, config: SplitConfig = SplitConfig()) -> Splits:
    """Seeded pool and split (identical for identical inputs and config)."""
    rng = np.random.default_rng(config.seed)
    gallery = np.asarray(gallery_coords, dtype=np.float32)
    if config.gallery_points is not None and config.gallery_points < len(gallery):
        gallery = gallery[np.sort(rng.choice(len(gallery), config.gallery_points, replace=False))]
    land = random_land_points(config.land_points, rng) if config.land_points else np.zeros((0, 2), np.float32)
    pool = np.concatenate([gallery, land]).astype(np.float32)

    cells = cell_ids(pool, config.cell_deg)
    unique_cells = np.unique(cells)
    order = rng.permutation(len(unique_cells))
    n_train = int(round(config.fractions[0] * len(unique_cells)))
    n_val = int(round(config.fractions[1] * len(unique_cells)))
    cell_split = np.empty(len(unique_cells), dtype=np.int64)
    cell_split[order[:n_train]] = 0
    cell_split[order[n_train:n_train + n_val]] = 1
    cell_split[order[n_train + n_val:]] = 2
    pool_split = cell_split[np.searchsorted(unique_cells, cells)]

    train_mask = pool_split == 0
    held_out = np.flatnonzero(~train_mask)
    too_close = nearest_distance_km(pool[held_out], pool[train_mask]) < config.buffer_km
    pool_split[held_out[too_close]] = -1

    def pick(split: int, size: int) -> np.ndarray:
        members = np.flatnonzero(pool_split == split)
        if size < len(members):
            members = np.sort(rng.choice(members, size, replace=False))
        return pool[members]

    val, test = pick(1, config.val_size), pick(2, config.test_size)
    return Splits(train=pool[train_mask], val=val, test=test, pool=pool, pool_split=pool_split, config=config)
