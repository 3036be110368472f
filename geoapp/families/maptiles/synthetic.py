"""A procedural tile source (no files): a smooth colour field over the globe, the same at every zoom.

Used by ``--backbone-weights random`` test instances and by tests, so the whole search runs in
milliseconds without an offline pyramid. Never used for real results.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from geoapp.geo.tiles import tile_lat, tile_lon
from geoapp.tiles.base import SourceInfo, TileResult, TileSource, encode_tile

SYNTHETIC = "synthetic"


class SyntheticTileSource(TileSource):
    """Tiles of a colour field f(lat, lon), ``tile_size`` pixels a side, zooms 0..max_zoom."""

    def __init__(self, max_zoom: int = 8, tile_size: int = 32, missing: set[tuple[int, int, int]] | None = None
                 ) -> None:
        self.info = SourceInfo(name=SYNTHETIC, title="Synthetic colour field (tests)", max_zoom=max_zoom,
                               tile_size=tile_size, attribution="synthetic", licence="none", caching_allowed=True,
                               image_format="png")
        self.missing = set(missing or ())

    def _read(self, z: int, x: int, y: int) -> TileResult:
        if (z, x, y) in self.missing:
            return TileResult(z, x, y)
        return TileResult(z, x, y, data=encode_tile(self.render(z, x, y), "png"))

    def render(self, z: int, x: int, y: int) -> Image.Image:
        size = self.info.tile_size
        steps = (np.arange(size) + 0.5) / size
        lat = tile_lat(y + steps, z)[:, None]
        lon = tile_lon(x + steps, z)[None, :]
        red = 0.5 + 0.5 * np.sin(np.radians(lat) * 3) * np.cos(np.radians(lon) * 2)
        green = 0.5 + 0.5 * np.cos(np.radians(lat) * 5 + np.radians(lon))
        blue = 0.5 + 0.5 * np.sin(np.radians(lon) * 7 + 1.0) * np.cos(np.radians(lat) * 2)
        pixels = np.stack(np.broadcast_arrays(red, green, blue), axis=-1)
        return Image.fromarray((pixels * 255).round().astype(np.uint8), "RGB")
