"""Reading pre-computed frozen-CLIP features: memory-mapped float16 ``.npy`` units.

Layout of a feature folder (written by :mod:`training.features`)::

    manifest.json             format, model identity (backbone, weights, digest), source, units
    features-000000.npy       float16 [n, 768] CLIP image features (centre crop), one row per readable image
    features-000000.csv       row,id,lat,lon for the same rows (the unit's index)
    features-000000.done.json written last: the unit is complete (counts, skipped images)
    index.csv                 all units' indexes concatenated (written when every unit is done)

A unit is complete exactly when its ``.done.json`` exists: the ``.npy`` and ``.csv`` are
renamed into place before it, so an interrupted run never leaves a half unit that looks done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

FEATURES_FORMAT = "geoapp.clip_features.v1"
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.csv"


class FeatureStoreError(ValueError):
    """A feature folder is missing, incomplete or of another format; the message says what to run."""


def unit_paths(directory: Path, name: str) -> dict[str, Path]:
    """The files of one unit."""
    return {
        "features": directory / f"{name}.npy",
        "index": directory / f"{name}.csv",
        "done": directory / f"{name}.done.json",
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise FeatureStoreError(f"{directory} holds no {MANIFEST_NAME}; create it with `python -m training.features`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FEATURES_FORMAT:
        raise FeatureStoreError(f"{path} is not a geoapp feature manifest (format {FEATURES_FORMAT})")
    return manifest


@dataclass
class FeatureUnit:
    """One finished unit, memory-mapped."""

    name: str
    features: np.ndarray  # float16 memmap [n, D]
    ids: list[str]
    coords: np.ndarray  # float32 [n, 2]


class FeatureStore:
    """All finished units of a feature folder as one indexable collection (features stay on disk)."""

    def __init__(self, directory: str | Path, require_complete: bool = True) -> None:
        self.directory = Path(directory)
        self.manifest = read_manifest(self.directory)
        self.units: list[FeatureUnit] = []
        missing = []
        for unit in self.manifest["units"]:
            paths = unit_paths(self.directory, unit["name"])
            if not paths["done"].is_file():
                missing.append(unit["name"])
                continue
            features = np.load(paths["features"], mmap_mode="r")
            index = pd.read_csv(paths["index"], dtype={"id": str}, keep_default_na=False)
            if len(index) != features.shape[0]:
                raise FeatureStoreError(f"{paths['index']} has {len(index)} rows but {paths['features']} has "
                                        f"{features.shape[0]}; delete {paths['done'].name} and rerun training.features")
            coords = index[["lat", "lon"]].to_numpy(dtype=np.float32)
            self.units.append(FeatureUnit(unit["name"], features, index["id"].tolist(), coords))
        if missing and require_complete:
            raise FeatureStoreError(f"{self.directory}: {len(missing)} of {len(self.manifest['units'])} units are not "
                                    f"finished (first: {missing[0]}); rerun the same `python -m training.features` "
                                    "command to complete them")
        self.missing_units = missing
        self._offsets = np.cumsum([0] + [u.features.shape[0] for u in self.units])

    def __reduce__(self) -> tuple[Any, ...]:
        # Re-open the memory maps in the receiving process (spawned DataLoader workers) instead
        # of pickling them: numpy pickles a memmap as an in-memory copy of the whole array.
        return (FeatureStore, (self.directory, not self.missing_units))

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self.manifest["identity"])

    @property
    def dim(self) -> int:
        return int(self.manifest["identity"]["feature_dim"])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def coords(self) -> np.ndarray:
        """[N, 2] float32 (lat, lon) of every row."""
        if not self.units:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate([u.coords for u in self.units])

    @property
    def ids(self) -> list[str]:
        return [i for u in self.units for i in u.ids]

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features (float32 [B, D]) and coordinates ([B, 2]) of global row ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"feature row out of range (have {len(self)})")
        unit_of = np.searchsorted(self._offsets, indices, side="right") - 1
        features = np.empty((indices.size, self.dim), dtype=np.float32)
        coords = np.empty((indices.size, 2), dtype=np.float32)
        for u in np.unique(unit_of):
            mask = unit_of == u
            local = indices[mask] - self._offsets[u]
            # Fancy indexing reads only these rows from the memory map.
            features[mask] = self.units[u].features[local]
            coords[mask] = self.units[u].coords[local]
        return features, coords


class FeatureDataset(Dataset):
    """(feature float32 [D], latlon float32 [2]) pairs; fetches whole batches at once via ``__getitems__``."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        features, coords = self.store.gather(np.array([index]))
        return torch.from_numpy(features[0]), torch.from_numpy(coords[0])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        features, coords = self.store.gather(np.asarray(indices))
        return torch.from_numpy(features), torch.from_numpy(coords)


def collate_feature_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity for batches from ``__getitems__``; stacks single items otherwise."""
    if isinstance(batch, tuple):
        return batch
    features, coords = zip(*batch)
    return torch.stack(features), torch.stack(coords)
