"""The pictures of a generated clip: a camera flying over a NASA raster, and a studio-like frame.

A flyover pre-renders one large ground image around the path (``training.satworld.render``: azimuthal
equidistant, bilinear from Blue Marble), then every frame is a window sliding across it, so a minute of
1080p costs one render, not 1 500. The studio is drawn with PIL: backdrop, desk, a presenter, a lower-third
banner and a scrolling ticker (a static camera: its frames differ only in the ticker).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from training.satworld.render import load_raster, local_to_latlon, sample_bilinear

_BLOCK_ROWS = 256  # rows of the ground image rendered at once (bounds the float32 temporaries)


def ground_image(lat: float, lon: float, width_km: float, height_km: float, px_per_km: float,
                 raster: str = "bluemarble") -> np.ndarray:
    """A north-up uint8 [H, W, 3] picture of ``width_km`` x ``height_km`` of ground centred on (lat, lon)."""
    width, height = max(1, round(width_km * px_per_km)), max(1, round(height_km * px_per_km))
    source = load_raster(raster)
    east = ((np.arange(width) + 0.5) / px_per_km - width_km / 2)[None, :]
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, _BLOCK_ROWS):
        rows = np.arange(top, min(height, top + _BLOCK_ROWS))
        north = (height_km / 2 - (rows + 0.5) / px_per_km)[:, None]
        sample_lat, sample_lon = local_to_latlon(lat, lon, np.broadcast_to(east, (len(rows), width)),
                                                 np.broadcast_to(north, (len(rows), width)))
        out[top:top + len(rows)] = np.clip(np.rint(sample_bilinear(source, sample_lat, sample_lon)), 0, 255)
    return out


class Flyover:
    """Frames of a straight camera path: ``frame(t)`` for t in [0, seconds]."""

    def __init__(self, lat: float, lon: float, seconds: float, size: tuple[int, int], window_km: float = 600.0,
                 speed_km_s: float = 10.0, heading_deg: float = 90.0, raster: str = "bluemarble"):
        self.size = size
        width, height = size
        self.px_per_km = height / window_km  # the frame's height shows window_km of ground
        travel = speed_km_s * seconds
        self.dx = math.sin(math.radians(heading_deg)) * travel * self.px_per_km  # pixels over the whole path
        self.dy = -math.cos(math.radians(heading_deg)) * travel * self.px_per_km
        width_km = (width + abs(self.dx)) / self.px_per_km + 2 / self.px_per_km
        height_km = (height + abs(self.dy)) / self.px_per_km + 2 / self.px_per_km
        self.ground = ground_image(lat, lon, width_km, height_km, self.px_per_km, raster)
        self.seconds = seconds

    def frame(self, t: float) -> np.ndarray:
        """The window at time ``t`` (integer pixel offsets: a crop, no resampling)."""
        width, height = self.size
        f = min(max(t / self.seconds, 0.0), 1.0) if self.seconds > 0 else 0.0
        gh, gw = self.ground.shape[:2]
        x0 = (gw - width) / 2 + (f - 0.5) * self.dx
        y0 = (gh - height) / 2 + (f - 0.5) * self.dy
        x, y = int(round(min(max(x0, 0), gw - width))), int(round(min(max(y0, 0), gh - height)))
        return self.ground[y:y + height, x:x + width]


class Studio:
    """A news-studio-like static shot; the ticker scrolls ``ticker_px_s`` pixels a second."""

    def __init__(self, size: tuple[int, int], ticker_px_s: float = 40.0, text: str = "GEOAPP NEWS"):
        width, height = size
        self.size, self.ticker_px_s = size, ticker_px_s
        base = Image.new("RGB", size)
        gradient = np.linspace(40, 110, height, dtype=np.float32)[:, None, None]
        tint = np.array([0.45, 0.55, 1.0], dtype=np.float32)[None, None, :]
        base = Image.fromarray(np.broadcast_to(gradient * tint, (height, width, 3)).astype(np.uint8))
        draw = ImageDraw.Draw(base)
        s = height / 360
        for i in range(6):  # backdrop panels
            x = int(i * width / 6)
            draw.rectangle([x + 4 * s, 20 * s, x + width / 6 - 4 * s, 200 * s], outline=(150, 170, 230), width=2)
        cx = width // 2
        draw.ellipse([cx - 30 * s, 90 * s, cx + 30 * s, 160 * s], fill=(225, 185, 150))  # head
        draw.polygon([(cx - 70 * s, 250 * s), (cx + 70 * s, 250 * s), (cx + 45 * s, 160 * s),
                      (cx - 45 * s, 160 * s)], fill=(30, 30, 60))  # shoulders
        draw.rectangle([width * 0.15, 230 * s, width * 0.85, 290 * s], fill=(120, 80, 50))  # desk
        draw.rectangle([0, 295 * s, width, 330 * s], fill=(190, 20, 30))  # lower third
        draw.text((12 * s, 303 * s), text, fill="white")
        draw.rectangle([width - 90 * s, 10 * s, width - 10 * s, 50 * s], fill=(240, 240, 240))  # logo
        self.base = np.asarray(base)
        self.ticker_top = int(330 * s)
        ticker = Image.new("RGB", (width * 2, max(1, height - self.ticker_top)), (20, 20, 20))
        ImageDraw.Draw(ticker).text((4, 2), "  *  ".join(["MARKETS", "WEATHER", "SPORT", "WORLD"] * 8), fill="yellow")
        self.ticker = np.asarray(ticker)

    def frame(self, t: float) -> np.ndarray:
        out = self.base.copy()
        width = self.size[0]
        shift = int(t * self.ticker_px_s) % width
        out[self.ticker_top:] = self.ticker[:, shift:shift + width]
        return out


def blurred(frame: np.ndarray, radius: float) -> np.ndarray:
    """A defocused/motion-blurred version of a frame (for sharpness tests)."""
    return np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(radius)))
