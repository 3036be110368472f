"""Geotagged image datasets: a CSV of (image, LAT, LON[, extras]) plus an image root.

The public benchmarks ship their ground truth in a handful of CSV layouts:

========== ======================================================= ==========================
layout     columns                                                 image path
========== ======================================================= ==========================
mp16       ``IMG_ID,AUTHOR,LAT,LON,S3_Label,...`` (GeoEstimation)   ``root/IMG_ID`` (``3f/c4/1.jpg``)
geoclip    ``IMG_FILE,LAT,LON`` (the reference trainer's format)    ``root/IMG_FILE``
im2gps     ``IMG_ID,AUTHOR,LAT,LON,...`` (Im2GPS, 237 images)       ``root/IMG_ID``
im2gps3k   ``IMG_ID,AUTHOR,LAT,LON,...`` (Im2GPS3k, 2997 images)    ``root/IMG_ID``
yfcc4k     ``IMG_ID,LAT,LON,LICENSE``                               ``root/IMG_ID``
yfcc26k    ``IMG_ID,AUTHOR,LAT,LON,...`` (IMG_ID ``45/77/3.jpg``)   ``root/IMG_ID``
osv5m      ``id,latitude,longitude,...``                            ``root/{id}.jpg``
auto       the first known id / latitude / longitude column names   as above
========== ======================================================= ==========================

Rows with missing or out-of-range coordinates are skipped and counted when the CSV is read;
images that are missing or cannot be decoded are skipped and counted when they are loaded
(:class:`ImageDataset`), never fatal: a million-image crawl always has a few broken files.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from geoapp.imaging import ImageLoadError, load_image

ID_COLUMNS = ("IMG_FILE", "IMG_ID", "PATH", "path", "image", "image_path", "file", "filename", "id", "key")
LAT_COLUMNS = ("LAT", "lat", "latitude", "Latitude", "LATITUDE", "gps_lat")
LON_COLUMNS = ("LON", "lon", "lng", "long", "longitude", "Longitude", "LONGITUDE", "gps_lon")


_GENERIC_STEMS = {"ground_truth", "groundtruth", "gt", "labels", "metadata", "meta", "test", "train", "val", "index"}


class DatasetError(ValueError):
    """A dataset CSV cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class CsvLayout:
    """Which columns hold the image reference and the coordinates, and how to make a file name."""

    name: str
    id_column: str | None  # None: detect from ID_COLUMNS
    lat_column: str | None = None
    lon_column: str | None = None
    suffix: str = ""  # appended to the id to get the file name (OSV-5M ids carry no extension)


LAYOUTS: dict[str, CsvLayout] = {
    layout.name: layout
    for layout in (
        CsvLayout("auto", None),
        CsvLayout("mp16", "IMG_ID", "LAT", "LON"),
        CsvLayout("geoclip", "IMG_FILE", "LAT", "LON"),
        CsvLayout("im2gps", "IMG_ID", "LAT", "LON"),
        CsvLayout("im2gps3k", "IMG_ID", "LAT", "LON"),
        CsvLayout("yfcc4k", "IMG_ID", "LAT", "LON"),
        CsvLayout("yfcc26k", "IMG_ID", "LAT", "LON"),
        CsvLayout("osv5m", "id", "latitude", "longitude", suffix=".jpg"),
    )
}


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: a CSV plus the folder its image references are relative to."""

    csv: Path
    images: Path | None = None  # None: coordinates only (gallery ceiling, feature indexes)
    layout: str = "auto"
    name: str | None = None

    @property
    def display_name(self) -> str:
        """``name``, else the CSV's stem, or its folder's name for generic stems (``ground_truth.csv``)."""
        if self.name:
            return self.name
        return self.csv.parent.name if self.csv.stem.lower() in _GENERIC_STEMS else self.csv.stem


@dataclass
class GeoRecords:
    """The readable rows of a dataset CSV."""

    name: str
    ids: list[str]  # the image reference as written in the CSV
    paths: list[Path | None]  # resolved image files (None without an image root)
    coords: np.ndarray  # [N, 2] float64 (lat, lon) degrees
    extras: pd.DataFrame  # the other columns, same row order
    skipped_rows: int = 0  # rows dropped for missing / invalid coordinates or id

    def __len__(self) -> int:
        return len(self.ids)

    def head(self, n: int) -> "GeoRecords":
        """The first ``n`` rows (``--limit``)."""
        return GeoRecords(self.name, self.ids[:n], self.paths[:n], self.coords[:n],
                          self.extras.iloc[:n].reset_index(drop=True), self.skipped_rows)

    def subset(self, indices: Sequence[int]) -> "GeoRecords":
        idx = list(indices)
        return GeoRecords(self.name, [self.ids[i] for i in idx], [self.paths[i] for i in idx], self.coords[idx],
                          self.extras.iloc[idx].reset_index(drop=True), self.skipped_rows)


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, csv: Path,
          required: bool = True) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise DatasetError(f"{csv}: the {what} column {wanted!r} is missing; found {list(columns)}. "
                               "Pick another --layout or use --layout auto.")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    if required:
        raise DatasetError(f"{csv}: no {what} column (tried {', '.join(candidates)}); found {list(columns)}")
    return None


def read_records(spec: DatasetSpec, require_images: bool = False) -> GeoRecords:
    """Read ``spec.csv``; rows with missing / non-numeric / out-of-range coordinates are skipped and counted.

    ``require_images``: the CSV must name images (an id column) and ``spec.images`` must be set.
    """
    if spec.layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {spec.layout!r}; choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[spec.layout]
    try:
        # Everything as text first: ids such as "0012.jpg" must not become numbers.
        frame = pd.read_csv(spec.csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"cannot read dataset CSV {spec.csv}: {error}") from error
    columns = list(frame.columns)
    lat_col = _pick(columns, layout.lat_column, LAT_COLUMNS, "latitude", spec.csv)
    lon_col = _pick(columns, layout.lon_column, LON_COLUMNS, "longitude", spec.csv)
    id_col = _pick(columns, layout.id_column, ID_COLUMNS, "image id/path", spec.csv, required=require_images)
    if require_images and spec.images is None:
        raise DatasetError("this command needs the image folder (--images DIR) as well as the CSV")

    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype=np.float64)
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype=np.float64)
    ids = frame[id_col].str.strip() if id_col is not None else pd.Series([str(i) for i in range(len(frame))])
    valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    valid &= (ids != "").to_numpy()
    keep = np.flatnonzero(valid)
    kept_ids = ids.iloc[keep].tolist()
    if spec.images is not None and id_col is not None:
        root = Path(spec.images)
        paths: list[Path | None] = [root / f"{i}{layout.suffix}" for i in kept_ids]
    else:
        paths = [None] * len(kept_ids)
    extras = frame.drop(columns=[c for c in (id_col, lat_col, lon_col) if c is not None]).iloc[keep]
    return GeoRecords(
        name=spec.display_name,
        ids=kept_ids,
        paths=paths,
        coords=np.stack([lat[keep], lon[keep]], axis=1) if len(keep) else np.zeros((0, 2)),
        extras=extras.reset_index(drop=True),
        skipped_rows=int(len(frame) - len(keep)),
    )


# ---------------------------------------------------------------------------------- images
@dataclass
class Sample:
    """One dataset item: pixels (or None when the image could not be used) and its coordinates."""

    index: int
    key: str
    latlon: tuple[float, float]
    pixels: torch.Tensor | None = None
    error: str | None = None


@dataclass
class SkipCounter:
    """Counts skipped images by reason (thread-safe; lives in the main process)."""

    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 20
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, key: str, error: str) -> None:
        reason = "missing" if "no such file" in error else "unreadable"
        with self._lock:
            self.counts[reason] += 1
            if len(self.examples) < self.max_examples:
                self.examples.append(f"{key}: {error}")

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_reason": dict(self.counts), "examples": list(self.examples)}


class ImageDataset(Dataset):
    """Map-style dataset of (pixels, lat/lon); a bad image gives a :class:`Sample` with ``error`` set.

    ``transform`` maps a PIL RGB image to a tensor (CLIP centre crop for features, SimCLR views
    for training). Errors are returned, not raised, so one broken file never kills a
    ``DataLoader`` worker; :func:`collate_samples` drops them and the caller counts them.
    """

    def __init__(self, records: GeoRecords, transform: Callable[[Any], torch.Tensor], min_side: int | None = 224) -> None:
        if any(p is None for p in records.paths[:1]):
            raise DatasetError("this dataset has no image folder; pass --images")
        self.records = records
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        lat, lon = (float(v) for v in self.records.coords[index])
        key = self.records.ids[index]
        try:
            loaded = load_image(self.records.paths[index], min_side=self.min_side)
            pixels = self.transform(loaded.image)
        except ImageLoadError as error:
            return Sample(index, key, (lat, lon), error=str(error))
        return Sample(index, key, (lat, lon), pixels=pixels)


@dataclass
class SampleBatch:
    """Collated good samples plus the failures of this batch."""

    indices: list[int]
    keys: list[str]
    pixels: torch.Tensor  # [B, ...] (B may be 0)
    latlon: torch.Tensor  # [B, 2] float32
    failures: list[Sample]
    coords: list[tuple[float, float]] = field(default_factory=list)  # the same, full precision (indexes)


def collate_samples(samples: list[Sample]) -> SampleBatch:
    """Stack the readable samples; keep the unreadable ones aside so the caller can count them."""
    good = [s for s in samples if s.pixels is not None]
    bad = [s for s in samples if s.pixels is None]
    pixels = torch.stack([s.pixels for s in good]) if good else torch.zeros(0)
    latlon = torch.tensor([s.latlon for s in good], dtype=torch.float32).reshape(-1, 2)
    return SampleBatch([s.index for s in good], [s.key for s in good], pixels, latlon, bad, [s.latlon for s in good])
