"""The images a parity check compares engines on, and int8 calibration images.

In order: a folder the caller names (``--calibration DIR``, or ``$GEOAPP_RUNTIME_IMAGES``); the shared test photos
beside a development checkout (``../shared/data``: the street-level photos and the first Im2GPS3k dev photos);
else deterministic synthetic images (smooth colour fields with texture), so a user's install can check parity
with nothing downloaded. Every set says what it is (stored with the verdict).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from geoapp.imaging import ImageLoadError, iter_image_paths, load_image
from geoapp.runtime.engines import TowerSource

IMAGES_ENV = "GEOAPP_RUNTIME_IMAGES"
PARITY_IMAGES = 8
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_FOLDERS = ("streetview", "im2gps3k-dev")


@dataclass
class ImageSet:
    pixels: torch.Tensor  # [N, 3, S, S] normalised as the tower wants
    description: str  # where the images came from (stored with verdicts)
    skipped: list[str]  # unreadable files, each with its reason


def _paths(folder: Path | None, limit: int) -> tuple[list[Path], str]:
    if folder is not None:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist; give a folder of photos")
        return sorted(iter_image_paths([str(folder)]))[:limit], f"{folder}"
    found: list[Path] = []
    for name in SHARED_FOLDERS:
        if (SHARED_DATA / name).is_dir():
            found += sorted(iter_image_paths([str(SHARED_DATA / name)]))
    if found:
        return found[:limit], f"shared test photos ({', '.join(SHARED_FOLDERS)})"
    return [], ""


def synthetic_images(count: int, size: int = 256, seed: int = 0) -> list[Image.Image]:
    """Deterministic photo-like images: smooth colour gradients, blobs and fine noise."""
    rng = np.random.default_rng(seed)
    images = []
    y, x = np.mgrid[0:size, 0:size] / size
    for _ in range(count):
        base = np.stack([a * x + b * y + c for a, b, c in rng.uniform(-1, 1, (3, 3))], axis=-1)
        for _ in range(4):
            cy, cx, r = rng.uniform(0, 1, 3)
            base += rng.uniform(-0.6, 0.6, 3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (0.02 + 0.1 * r))[..., None]
        base += rng.normal(0, 0.05, base.shape)
        base = (base - base.min()) / max(1e-6, float(np.ptp(base)))
        images.append(Image.fromarray((base * 255).astype(np.uint8)))
    return images


def tower_images(source: TowerSource, folder: str | Path | None = None, limit: int = PARITY_IMAGES) -> ImageSet:
    """Up to ``limit`` images for ``source``, preprocessed; unreadable files are skipped and named."""
    folder = folder or os.environ.get(IMAGES_ENV) or None
    paths, description = _paths(Path(folder) if folder else None, limit)
    tensors, skipped = [], []
    for path in paths:
        try:
            tensors.append(source.preprocess(load_image(path, min_side=source.image_size).image))
        except ImageLoadError as error:
            skipped.append(f"{path}: {error}")
    if not tensors:
        if folder:
            raise FileNotFoundError(f"no readable image in {folder}" + (f" ({'; '.join(skipped[:3])})" if skipped else ""))
        tensors = [source.preprocess(image) for image in synthetic_images(limit)]
        description = f"{limit} synthetic images (seed 0; no photo folder given and no ../shared beside the checkout)"
    else:
        description = f"{len(tensors)} images from {description}"
    return ImageSet(torch.cat(tensors), description, skipped)
