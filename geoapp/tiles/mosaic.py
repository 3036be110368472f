"""A square image of the ground around a point, stitched from a tile source's tiles.

Used by the Satellite view (Locate, Cases) and ``tiles show``. The window is centred on the
point in Web-Mercator pixels, wraps across the antimeridian, and is grey beyond the poles'
cut-off. Beyond the source's deepest zoom the deepest tiles are enlarged (and the caption says
so). Missing or failed tiles leave grey squares and are counted, never raised.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from geoapp.geo.tiles import check_zoom, mercator_xy
from geoapp.tiles.base import SourceInfo, TileSource, TileSourceError

BACKGROUND = (128, 128, 128)
MARK_COLOUR = (230, 40, 30)
MAX_ENLARGE_LEVELS = 4  # at most 16x enlargement of the deepest tiles


@dataclass
class Mosaic:
    image: Image.Image
    lat: float
    lon: float
    zoom: int  # the zoom asked for
    tile_zoom: int  # the zoom of the tiles used (lower when enlarged)
    source: SourceInfo
    tiles_used: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ground_width_km(self) -> float:
        """Approximate width of the image on the ground at its centre latitude."""
        metres_per_px = 156543.03392 * math.cos(math.radians(self.lat)) / 2**self.zoom
        return self.image.width * metres_per_px / 1000.0

    def caption(self, markdown: bool = True) -> str:
        """What the image is, where from, with attribution (always shown with it): Markdown for the app,
        plain text (``markdown=False``) for the terminal."""
        escape = html.escape if markdown else str
        title = "**Satellite view**" if markdown else "Satellite view"
        parts = [(f"{title} around {self.lat:.4f}, {self.lon:.4f} — zoom {self.zoom} "
                 f"(about {self.ground_width_km:,.0f} km across).")]
        if self.tile_zoom < self.zoom:
            parts.append(f"The source stops at zoom {self.tile_zoom}: its tiles are shown enlarged.")
        where = "online: this server saw the area" if self.source.online else "read from a local file"
        parts.append(f"Source: {escape(self.source.title)} ({where}). "
                     f"Attribution: {escape(self.source.attribution or '-')}. "
                     f"Licence: {escape(self.source.licence)}.")
        if self.missing:
            parts.append(f"{self.missing} tile(s) not available here (grey).")
        if self.errors:
            parts.append(f"{len(self.errors)} tile(s) failed: {escape(self.errors[0])}")
        return " ".join(parts)


def mosaic_around(source: TileSource, lat: float, lon: float, zoom: int, size_px: int = 512,
                  mark: bool = True) -> Mosaic:
    """Stitch ``size_px × size_px`` pixels of the source's tiles centred on (lat, lon) at ``zoom``."""
    zoom = int(check_zoom(zoom))
    if not 64 <= size_px <= 2048:
        raise TileSourceError(f"mosaic size must be between 64 and 2048 pixels, not {size_px}")
    info = source.info
    tile_zoom = max(info.min_zoom, min(zoom, info.max_zoom))
    if zoom - tile_zoom > MAX_ENLARGE_LEVELS:
        raise TileSourceError(f"{info.title} only goes to zoom {info.max_zoom}; choose zoom "
                              f"{info.max_zoom + MAX_ENLARGE_LEVELS} or less")
    scale = 2 ** max(0, zoom - tile_zoom)
    tile_size = info.tile_size
    window = max(1, math.ceil(size_px / scale))  # pixels needed at tile_zoom
    u, v = mercator_xy(lat, lon)
    n = 2**tile_zoom
    cx, cy = float(u) * n * tile_size, float(v) * n * tile_size  # the point in global pixels
    left, top = math.floor(cx - window / 2), math.floor(cy - window / 2)
    first_x, last_x = left // tile_size, (left + window - 1) // tile_size
    first_y, last_y = top // tile_size, (top + window - 1) // tile_size
    wanted = [(tile_zoom, tx % n, ty) for ty in range(first_y, last_y + 1) for tx in range(first_x, last_x + 1)
              if 0 <= ty < n]
    unique = sorted(set(wanted))
    results = {(r.x, r.y): r for r in source.tiles(unique)}
    canvas = Image.new("RGB", ((last_x - first_x + 1) * tile_size, (last_y - first_y + 1) * tile_size), BACKGROUND)
    out = Mosaic(canvas, float(lat), float(lon), zoom, tile_zoom, info)
    for ty in range(first_y, last_y + 1):
        for tx in range(first_x, last_x + 1):
            if not 0 <= ty < n:
                continue
            result = results[(tx % n, ty)]
            if result.missing:
                out.missing += 1
                continue
            try:
                image = result.image()
            except TileSourceError as exc:
                out.errors.append(result.error or str(exc))
                continue
            if image.size != (tile_size, tile_size):
                image = image.resize((tile_size, tile_size))
            canvas.paste(image, ((tx - first_x) * tile_size, (ty - first_y) * tile_size))
            out.tiles_used += 1
    crop_left, crop_top = left - first_x * tile_size, top - first_y * tile_size
    picture = canvas.crop((crop_left, crop_top, crop_left + window, crop_top + window))
    if scale > 1:
        picture = picture.resize((size_px, size_px), Image.Resampling.BILINEAR)
    elif picture.size != (size_px, size_px):
        picture = picture.resize((size_px, size_px))
    if mark:
        _draw_mark(picture)
    out.image = picture
    return out


def _draw_mark(image: Image.Image) -> None:
    """A ring with a gap at the centre: marks the point without hiding it."""
    draw = ImageDraw.Draw(image)
    cx, cy = image.width / 2, image.height / 2
    radius = max(8, image.width // 40)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=MARK_COLOUR, width=3)
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        draw.line((cx + dx * radius * 1.5, cy + dy * radius * 1.5, cx + dx * radius * 2.5, cy + dy * radius * 2.5),
                  fill=MARK_COLOUR, width=3)
