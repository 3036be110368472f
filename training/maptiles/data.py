"""The offline cross-view task: a rendering of a place from the shaded-relief raster (query) and the
Blue Marble map tiles that contain it (map), at every zoom level of the search.

Locations and held-out split as SatWorld's (MP-16 gallery + random land points; whole 10° cells
held out, held-out points ≥ 200 km from any training point). Tiles come from any tile source
(default: the offline Blue Marble pyramid) and are read once into memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from geoapp.families.maptiles.search import world_tiles
from geoapp.geo.tiles import latlon_to_tile
from geoapp.tiles.base import TileSource
from training.satworld.render import render_batch
from training.satworld.splits import SplitConfig, Splits, make_splits


@dataclass
class LevelTiles:
    """Every tile of one zoom as pixels, and each location's tile index."""

    zoom: int
    tiles: np.ndarray  # [T, 3] (z, x, y)
    pixels: np.ndarray  # [T, S, S, 3] uint8 (missing tiles black)
    available: np.ndarray  # [T] bool

    def index_of(self, coords: np.ndarray) -> np.ndarray:
        """[N] row in ``tiles`` of the tile holding each (lat, lon)."""
        x, y = latlon_to_tile(coords[:, 0], coords[:, 1], self.zoom)
        return (np.asarray(y) * (1 << self.zoom) + np.asarray(x)).astype(np.int64)  # world_tiles is row-major


def read_level(source: TileSource, zoom: int, size: int) -> LevelTiles:
    tiles = world_tiles(zoom)
    pixels = np.zeros((len(tiles), size, size, 3), np.uint8)
    available = np.zeros(len(tiles), bool)
    for row, result in enumerate(source.tiles([tuple(map(int, t)) for t in tiles])):
        if result.ok:
            pixels[row] = np.asarray(result.image().resize((size, size), Image.BICUBIC))
            available[row] = True
    return LevelTiles(zoom, tiles, pixels, available)


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
