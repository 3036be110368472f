"""One tile at a point as an image, enlarged from the deepest available zoom when needed."""

from __future__ import annotations

from PIL import Image

from geoapp.geo.tiles import latlon_to_tile, tile_bounds
from geoapp.tiles.base import TileSource, TileSourceError


def tile_image(source: TileSource, lat: float, lon: float, zoom: int) -> tuple[Image.Image, str]:
    """The tile holding (lat, lon) at ``zoom`` and a one-line description of it.

    Above the source's deepest zoom, the matching part of its deepest tile is enlarged (said so).
    """
    info = source.info
    x, y = (int(v) for v in latlon_to_tile(lat, lon, zoom))
    depth = min(zoom, info.max_zoom)
    if depth < info.min_zoom:
        raise TileSourceError(f"{info.title} starts at zoom {info.min_zoom}; use --zoom {info.min_zoom} or more")
    shift = zoom - depth
    result = source.tile(depth, x >> shift, y >> shift)
    if result.missing:
        raise TileSourceError(f"{info.title} has no tile {depth}/{x >> shift}/{y >> shift} (outside its coverage)")
    if result.error:  # archives name themselves in their errors; say which source otherwise
        raise TileSourceError(result.error if result.error.startswith(info.name) else f"{info.name}: {result.error}")
    try:
        image = result.image()
    except TileSourceError as exc:
        raise TileSourceError(f"{info.name}: {exc}") from exc
    note = ""
    if shift:
        # the wanted tile is one cell of a 2**shift grid inside the ancestor tile
        cells = 1 << shift
        step = image.width / cells
        col, row = x - ((x >> shift) << shift), y - ((y >> shift) << shift)
        box = (round(col * step), round(row * step), round((col + 1) * step), round((row + 1) * step))
        image = image.crop(box).resize((info.tile_size, info.tile_size), Image.Resampling.BILINEAR)
        note = f" (enlarged from zoom {depth}: the source stops there)"
    west, south, east, north = (float(v) for v in tile_bounds(zoom, x, y))
    text = (f"tile {zoom}/{x}/{y}{note}, lat {south:.3f}..{north:.3f}, lon {west:.3f}..{east:.3f}; "
            f"source {info.title}; attribution: {info.attribution or '-'}")
    return image, text
