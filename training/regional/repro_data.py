"""The data of the Sweden-or-Switzerland reproduction: locations, rendered images, frozen features, splits.

No Flickr photos of Sweden and Switzerland exist here, so the *comparison* is reproduced:

* locations: the GeoCLIP 100K gallery points inside Sweden and Switzerland (where people really
  take photos; ~1 000 each) plus ``copies`` jittered copies of each (``jitter_km`` per axis, kept
  only when still inside the same country);
* images: crops of NASA's offline shaded-relief raster around each location (``window_km`` across,
  ``pixels`` square, the SatWorld renderer), with colour jitter per copy;
* noise: the paper's data is Flickr photos, many of which (indoors, portraits, food) say nothing
  about the place; ``noise_fraction`` of the images are therefore crops of random land points
  anywhere on Earth, keeping their Swedish or Swiss label;
* features: SatWorld's frozen image encoder;
* split (80/10/10, by ``seed``): ``blocks`` puts each country's blocks of ``block_deg`` degrees on one
  side and drops validation/test locations closer than ``buffer_km`` to any training location;
  ``random`` assigns every location on its own, so a point and its jittered copies (photos a few km
  apart) may fall on both sides, as the paper's random split of Flickr photos allows.

Locations, images and features depend on ``data_seed`` only (rendered once, cached in the output
folder); ``seed`` draws the split (and, in :mod:`.reproduce`, the training initialisation).
The raster has ~3.7 km pixels (1/30 degree), so the 1 km and 25 km columns say little here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from geoapp.fileio import atomic_write

SPLITS = ("blocks", "random")


@dataclass(frozen=True)
class ReproConfig:
    countries: tuple[str, ...] = ("SE", "CH")
    copies: int = 4  # jittered copies per gallery point (besides the point itself)
    jitter_km: float = 3.0
    window_km: float = 80.0
    pixels: int = 64
    raster: str = "relief"
    block_deg: float = 1.0
    buffer_km: float = 20.0
    max_points: int | None = None  # per country (None: all gallery points); fewer for quick runs
    noise_fraction: float = 0.25  # "noisy dataset": this share of images shows a random place on Earth
    data_seed: int = 0  # locations, jitter, noise, rendering
    seed: int = 0  # split and training
    split: str = "blocks"  # blocks | random (see the module docstring)

    def data_key(self) -> str:
        """What the rendered images and features depend on (the cache key)."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("seed", "split")}
        return json.dumps(fields, sort_keys=True)


@dataclass
class ReproData:
    coords: np.ndarray  # [N, 2]
    country: np.ndarray  # [N] index into config.countries
    base: np.ndarray  # [N] id of the gallery point a location was copied from
    images: np.ndarray  # [N, S, S, 3] uint8 (what the encoder saw)
    features: np.ndarray  # [N, D] float32 frozen SatWorld features


def locations(config: ReproConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coords [N, 2], country [N], base point id [N]) of the gallery points and their jittered copies."""
    from geoapp.galleries.gallery import Gallery
    from geoapp.geo.countries import get_country_index

    gallery = Gallery.default().coords.astype(np.float64)
    index = get_country_index()
    codes = index.lookup(gallery[:, 0], gallery[:, 1])
    coords, country, base = [], [], []
    next_id = 0
    for c, code in enumerate(config.countries):
        points = gallery[codes == code]
        if config.max_points is not None and len(points) > config.max_points:
            points = points[np.sort(rng.choice(len(points), config.max_points, replace=False))]
        ids = np.arange(next_id, next_id + len(points))
        next_id += len(points)
        copies = [points]
        for _ in range(config.copies):
            north, east = rng.normal(0, config.jitter_km, (2, len(points)))
            lat = points[:, 0] + north / 111.32
            lon = points[:, 1] + east / (111.32 * np.cos(np.radians(points[:, 0])))
            copies.append(np.column_stack([lat, lon]))
        stacked = np.concatenate(copies)
        ids = np.tile(ids, config.copies + 1)
        inside = index.lookup(stacked[:, 0], stacked[:, 1]) == code
        coords.append(stacked[inside])
        country.append(np.full(int(inside.sum()), c, dtype=np.int64))
        base.append(ids[inside])
    return np.concatenate(coords), np.concatenate(country), np.concatenate(base)


def render_images(coords: np.ndarray, config: ReproConfig, rng: np.random.Generator, batch: int = 512) -> np.ndarray:
    """Relief crops around every location (a random land point for the noisy share), colour-jittered: uint8."""
    from tqdm import tqdm

    from training.satworld.render import Augmentation, colour_jitter, render_batch
    from training.satworld.splits import random_land_points

    jitter = Augmentation(brightness=0.1, contrast=0.1, saturation=0.1, channel_gain=0.03)
    shown = coords.copy()
    noisy = np.flatnonzero(rng.random(len(coords)) < config.noise_fraction)
    shown[noisy] = random_land_points(len(noisy), rng)
    out = []
    for start in tqdm(range(0, len(coords), batch), desc="render crops", unit="batch"):
        part = shown[start:start + batch]
        out.append(colour_jitter(render_batch(part[:, 0], part[:, 1], config.window_km, config.pixels, config.raster),
                                 rng, jitter))
    return np.concatenate(out).astype(np.uint8)


def to_pixels(images: np.ndarray, preprocess) -> torch.Tensor:
    """uint8 [B, S, S, 3] -> normalised float [B, 3, S, S] for a SatWorld encoder."""
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    return (torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def encode(images: np.ndarray, encoder: torch.nn.Module, preprocess, batch: int = 512) -> np.ndarray:
    """Features [N, D] float32 of uint8 images through ``encoder.encode_image`` (no gradients)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            out.append(encoder.encode_image(to_pixels(images[start:start + batch], preprocess)).float().numpy())
    return np.concatenate(out).astype(np.float32)


def load_data(out: Path, config: ReproConfig) -> ReproData:
    """Locations, images and SatWorld features (rendered once per data settings, cached in ``out``)."""
    from geoapp.families.regional.backbone import load_extractor

    coords, country, base = locations(config, np.random.default_rng(config.data_seed))
    path = out / "data.npz"
    key = config.data_key()
    if path.is_file():
        with np.load(path) as cached:
            if str(cached["key"]) == key and cached["coords"].shape == coords.shape:
                return ReproData(coords, country, base, cached["images"], cached["features"])
    images = render_images(coords, config, np.random.default_rng(config.data_seed + 1))
    extractor = load_extractor("satworld")
    features = encode(images, extractor.network, extractor.preprocess)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: np.savez(handle, images=images, features=features, coords=coords,
                                               key=np.array(key)))
    return ReproData(coords, country, base, images, features)


def split(data: ReproData, config: ReproConfig) -> np.ndarray:
    """0 train / 1 val / 2 test / -1 dropped (blocks: held-out points within ``buffer_km`` of training)."""
    rng = np.random.default_rng(config.seed + 2)
    if config.split == "random":
        return _random_split(len(data.coords), rng)
    if config.split == "blocks":
        return _block_split(data, config, rng)
    raise ValueError(f"unknown split {config.split!r}; choose one of {', '.join(SPLITS)}")


def _random_split(count: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(count)
    held = round(0.1 * count)
    assignment = np.zeros(count, dtype=np.int64)
    assignment[order[:held]] = 1
    assignment[order[held:2 * held]] = 2
    return assignment


def _block_split(data: ReproData, config: ReproConfig, rng: np.random.Generator) -> np.ndarray:
    """80/10/10 of each country's blocks; a base point and its copies always share a block."""
    from training.satworld.splits import cell_ids, nearest_distance_km

    coords, country, base = data.coords, data.country, data.base
    first: dict[int, int] = {}
    for i, b in enumerate(base):
        first.setdefault(int(b), i)
    anchor = np.array([first[int(b)] for b in base])  # copies follow their base point's block
    blocks = cell_ids(coords[anchor], config.block_deg) * 100 + country
    assignment = np.zeros(len(coords), dtype=np.int64)
    for c in np.unique(country):
        unique = np.unique(blocks[country == c])
        order = rng.permutation(len(unique))
        held = max(2, round(0.2 * len(unique)))  # at least one val and one test block per country
        block_split = np.zeros(len(unique), dtype=np.int64)
        block_split[order[:held // 2]] = 1
        block_split[order[held // 2:held]] = 2
        mine = np.flatnonzero(country == c)
        assignment[mine] = block_split[np.searchsorted(unique, blocks[mine])]
    held = np.flatnonzero(assignment > 0)
    close = nearest_distance_km(coords[held].astype(np.float32), coords[assignment == 0].astype(np.float32))
    assignment[held[close < config.buffer_km]] = -1
    return assignment
