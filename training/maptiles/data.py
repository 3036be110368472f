"""The map-tile family's training data: locations and their queries. Map tiles are not here: they stream
per batch from any tile source (:mod:`training.maptiles.stream`), so nothing grows with the zoom level.

Two tasks:

* **cross-view (default)**: a rendering of a place from the shaded-relief raster (query) and the map tiles
  that contain it. Locations and held-out split as SatWorld's (MP-16 gallery + random land points; whole
  10° cells held out, held-out points ≥ 200 km from any training point).
* **ground photos** (``--photos CSV``, the paper's setting): geotagged photos (any layout ``training.data``
  reads), centre-cropped once; a seeded ``holdout`` share is kept for the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from geoapp.fileio import atomic_write
from geoapp.geo.tiles import latlon_to_tile
from training.satworld.render import render_batch
from training.satworld.splits import SplitConfig, Splits, make_splits

log = logging.getLogger("training.maptiles")


@dataclass
class HeldOut:
    """The evaluation's locations [M, 2] and their queries (uint8 [M, S, S, 3]), plus the training locations
    (for the most-common-location baseline)."""

    coords: np.ndarray
    queries: np.ndarray
    train: np.ndarray

    def first(self, count: int | None) -> HeldOut:
        if count is None or count >= len(self.coords):
            return self
        return HeldOut(self.coords[:count], self.queries[:count], self.train)


QUERY_FIELDS = ("photos", "photo_root", "holdout", "gallery_points", "land_points", "seed", "test_size", "window_km",
                "raster")  # what the locations and queries depend on


def queries_file(config, image_size: int, gallery: np.ndarray | None, folder: Path) -> Path:
    """Where a run keeps its locations and rendered/cropped queries (keyed by what they depend on)."""
    key = {name: getattr(config, name) for name in QUERY_FIELDS}
    key["image_size"] = image_size
    key["gallery"] = None if config.photos or gallery is None else hashlib.sha256(
        np.ascontiguousarray(gallery).tobytes()).hexdigest()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(folder) / f"queries-{digest}.npz"


class Problem:
    """Training locations and their queries (held in memory: O(locations), the same at every zoom), the held-out
    part, and each location's tile at a zoom (computed from coordinates; no tile is read here).

    ``cache_dir``: keep the locations and queries there (``queries-<key>.npz``), so a resumed run, a run stopped
    after each stage and the evaluator reuse them instead of rendering again (the relief raster is 175 MB)."""

    def __init__(self, config, image_size: int, gallery: np.ndarray, cache_dir: Path | None = None,
                 save: bool = True) -> None:
        cached = queries_file(config, image_size, gallery, cache_dir) if cache_dir is not None else None
        if cached is not None and cached.is_file():
            with np.load(cached) as stored:
                self.train, self.train_queries = stored["train"], stored["train_queries"]
                self.test, self.test_queries = stored["test"], stored["test_queries"]
        elif config.photos:
            self.train, self.train_queries, self.test, self.test_queries = photo_split(config, image_size)
        else:
            split = splits(gallery, config.gallery_points, config.land_points, config.seed, config.test_size)
            self.train, self.test = split.train, split.test
            self.train_queries = render_queries(self.train, config.window_km, image_size, config.raster)
            self.test_queries = render_queries(self.test, config.window_km, image_size, config.raster)
        if cached is not None and save and not cached.is_file():
            atomic_write(cached, lambda f: np.savez(f, train=self.train, train_queries=self.train_queries,
                                                    test=self.test, test_queries=self.test_queries))
        self._tiles: dict[int, np.ndarray] = {}

    def tile_codes(self, zoom: int) -> np.ndarray:
        """[N] int64 ``y * 2**zoom + x`` of the tile holding each training location."""
        if zoom not in self._tiles:
            x, y = latlon_to_tile(self.train[:, 0], self.train[:, 1], zoom)
            self._tiles[zoom] = (np.asarray(y, np.int64) << int(zoom)) + np.asarray(x, np.int64)
        return self._tiles[zoom]

    def held_out(self) -> HeldOut:
        return HeldOut(self.test, self.test_queries, self.train)


def held_out_from_config(config, image_size: int, run_dir: Path | None = None,
                         gallery: np.ndarray | None = None) -> HeldOut:
    """The held-out part a training run used: from the run's saved queries when there, else rebuilt from its
    config (the split is seeded)."""
    if gallery is None and not config.photos:
        from geoapp.galleries.gallery import Gallery

        gallery = Gallery.default().coords
    return Problem(config, image_size, gallery, cache_dir=run_dir, save=False).held_out()


def query_tensor(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 [B, S, S, 3] -> normalised float [B, 3, S, S]."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def photo_queries(paths: list, size: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, S, S, 3] uint8 centre crops of real photos (shorter side to S) and a mask of the readable ones.

    The same array format as :func:`render_queries`, so the trainer and the evaluation treat photos and
    renderings alike; an unreadable photo is skipped (mask False) and counted by the caller.
    """
    from geoapp.imaging import ImageLoadError, load_image

    out = np.zeros((len(paths), size, size, 3), np.uint8)
    ok = np.zeros(len(paths), bool)
    for row, path in enumerate(paths):
        try:
            image = load_image(path, min_side=size).image.convert("RGB")
        except ImageLoadError:
            continue
        scale = size / min(image.size)
        image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                             Image.BICUBIC)
        left, top = (image.width - size) // 2, (image.height - size) // 2
        out[row] = np.asarray(image.crop((left, top, left + size, top + size)))
        ok[row] = True
    return out, ok


def photo_split(config, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train coords, train crops, test coords, test crops) from a photo dataset, split by ``holdout``."""
    from training.data import DatasetSpec, read_records

    csv = Path(config.photos)
    records = read_records(DatasetSpec(csv, Path(config.photo_root) if config.photo_root else csv.parent),
                           require_images=True)
    crops, ok = photo_queries(records.paths, size)
    if (~ok).any():
        log.warning("%d of %d photos could not be read and are left out", int((~ok).sum()), len(ok))
    coords, crops = records.coords[ok], crops[ok]
    if len(coords) < 4:
        raise ValueError(f"{csv}: only {len(coords)} readable photos with GPS; a map-tile model needs more")
    order = np.random.default_rng(config.seed).permutation(len(coords))
    held = max(1, round(config.holdout * len(coords)))
    test, train = np.sort(order[:held]), np.sort(order[held:])
    return coords[train], crops[train], coords[test], crops[test]


def render_queries(coords: np.ndarray, window_km: float, size: int, raster: str = "relief",
                   chunk: int = 512) -> np.ndarray:
    """[N, S, S, 3] uint8 renderings centred on each location (north up)."""
    out = np.zeros((len(coords), size, size, 3), np.uint8)
    for start in range(0, len(coords), chunk):
        part = coords[start:start + chunk]
        out[start:start + len(part)] = render_batch(part[:, 0], part[:, 1], window_km, size, raster=raster)
    return out


def splits(gallery: np.ndarray, gallery_points: int, land_points: int, seed: int, test_size: int) -> Splits:
    return make_splits(gallery, SplitConfig(seed=seed, gallery_points=gallery_points, land_points=land_points,
                                            val_size=min(500, test_size), test_size=test_size))
