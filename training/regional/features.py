"""Frozen features of a collection's photos, cached by file content (reused across methods and builds).

The cache is one ``.npz`` per backbone (name + weights) under ``$GEOAPP_CACHE_DIR/regional-features``:
SHA-256 of each file's bytes -> feature vector. Thumbnails (small JPEGs) are cached beside it, by
the same hash, so a rebuild with another method decodes no photo again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from geoapp.fileio import atomic_write
from geoapp.families.regional.backbone import FeatureExtractor
from geoapp.imaging import ImageLoadError, load_image
from geoapp.settings import get_settings

THUMBNAIL_SIDE = 128


@dataclass
class CollectionFeatures:
    """Features of the readable photos, in input order, and what could not be read."""

    features: np.ndarray  # [N, D] float32
    keep: np.ndarray  # [N_input] bool: which inputs were readable
    hashes: list[str]  # SHA-256 of the kept files
    thumbnails: list[Path]  # cached thumbnail of each kept file
    unreadable: list[str] = field(default_factory=list)
    cached: int = 0  # how many came from the cache


def cache_folder(extractor: FeatureExtractor) -> Path:
    tag = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{extractor.name}-{extractor.weights}")[:120]
    return get_settings().cache_dir / "regional-features" / tag


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def collection_features(paths: list[Path], extractor: FeatureExtractor, batch_size: int = 32,
                        progress: bool = True) -> CollectionFeatures:
    """Features of every photo (from the cache when seen before), with progress bars."""
    folder = cache_folder(extractor)
    (folder / "thumbs").mkdir(parents=True, exist_ok=True)
    store = folder / "features.npz"
    known: dict[str, np.ndarray] = {}
    if store.is_file():
        with np.load(store) as data:
            known = dict(zip(data["hashes"].tolist(), data["features"]))
    hashes: list[str | None] = []
    for path in tqdm(paths, desc="hashing photos", unit="photo", disable=not progress):
        try:
            hashes.append(file_sha256(path))
        except OSError:
            hashes.append(None)
    todo = [i for i, h in enumerate(hashes) if h is not None and (h not in known
                                                                  or not (folder / "thumbs" / f"{h}.jpg").is_file())]
    unreadable = [paths[i].name for i, h in enumerate(hashes) if h is None]
    bar = tqdm(total=len(todo), desc=f"{extractor.name} features", unit="photo", disable=not progress)
    for start in range(0, len(todo), batch_size):
        chunk, images = [], []
        for i in todo[start:start + batch_size]:
            try:
                loaded = load_image(paths[i], min_side=extractor.preprocess.image_size)
            except ImageLoadError:
                unreadable.append(paths[i].name)
                hashes[i] = None
                continue
            thumb = loaded.image.copy()
            thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            thumb.save(folder / "thumbs" / f"{hashes[i]}.jpg", quality=85)
            chunk.append(i)
            images.append(loaded.image)
        if images:
            for i, vector in zip(chunk, extractor.encode_images(images, batch_size)):
                known[hashes[i]] = vector.astype(np.float32)
        bar.update(len(todo[start:start + batch_size]))
    bar.close()
    if todo:
        atomic_write(store, lambda handle: np.savez(handle, hashes=np.array(list(known)),
                                                    features=np.stack(list(known.values()))))
    keep = np.array([h is not None for h in hashes], dtype=bool)
    kept = [h for h in hashes if h is not None]
    features = np.stack([known[h] for h in kept]).astype(np.float32) if kept else np.zeros((0, 0), np.float32)
    return CollectionFeatures(features, keep, kept, [folder / "thumbs" / f"{h}.jpg" for h in kept],
                              unreadable, cached=len(kept) - len([i for i in todo if hashes[i] is not None]))
