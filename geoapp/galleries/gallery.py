"""GPS galleries and the on-disk cache of their location embeddings.

The reference GeoCLIP package re-encodes its 100K-point gallery on every prediction (about
20 s on a 2-core CPU). The location encoder is fixed once weights are loaded, so we encode a
gallery once per (weights, coordinates) pair, store the L2-normalised embeddings as a
float32 ``.npy`` file, and memory-map it afterwards: a prediction is then one image forward
plus one matrix product.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoapp.fileio import atomic_write
from geoapp.models import weights as weight_files

log = logging.getLogger(__name__)

LAT_COLUMNS = ("lat", "latitude", "gps_lat")
LON_COLUMNS = ("lon", "lng", "long", "longitude", "gps_lon")


class GalleryError(ValueError):
    """A gallery file cannot be used; the message says why."""


@dataclass(frozen=True)
class Gallery:
    """A named set of candidate GPS points, float32 (lat, lon) degrees."""

    name: str
    coords: np.ndarray  # [N, 2] float32
    source: str
    skipped_rows: int = 0

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def digest(self) -> str:
        return coords_digest(self.coords)

    @classmethod
    def default(cls) -> "Gallery":
        """GeoCLIP's packaged 100K MP-16 gallery."""
        path = weight_files.require(weight_files.GEOCLIP_GALLERY)
        gallery = cls.from_csv(path)
        return cls("geoclip-mp16-100k", gallery.coords, str(path), gallery.skipped_rows)

    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None) -> "Gallery":
        """Read a CSV with latitude/longitude columns (LAT/LON, lat/lng, latitude/longitude ...).

        Rows with missing, non-numeric or out-of-range coordinates are skipped and counted.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise GalleryError(f"Cannot read gallery {path}: {error}") from error
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header:
            raise GalleryError(f"Gallery {path} is empty")
        lowered = [h.strip().lower() for h in header]
        lat_col = next((lowered.index(c) for c in LAT_COLUMNS if c in lowered), None)
        lon_col = next((lowered.index(c) for c in LON_COLUMNS if c in lowered), None)
        if lat_col is None or lon_col is None:
            raise GalleryError(
                f"Gallery {path} needs latitude and longitude columns (e.g. LAT,LON); found {header}"
            )
        values, skipped = [], 0
        for row in reader:
            try:
                lat, lon = float(row[lat_col]), float(row[lon_col])
            except (IndexError, ValueError):
                skipped += 1
                continue
            if not (np.isfinite(lat) and np.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
                skipped += 1
                continue
            values.append((lat, lon))
        if not values:
            raise GalleryError(f"Gallery {path} has no valid coordinates ({skipped} rows skipped)")
        coords = np.asarray(values, dtype=np.float32)
        return cls(name or path.stem, coords, str(path), skipped)


def coords_digest(coords: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(coords, dtype=np.float32).tobytes()).hexdigest()


class LocationEmbeddingCache:
    """Normalised location embeddings keyed by (encoder identity, coordinates), on disk and in memory.

    ``encoder_id`` must change whenever the location encoder's weights change (we use the
    digest of the loaded weights), so a stale cache can never be used.
    """

    def __init__(self, directory: Path | None, encoder_id: str, memory_items: int = 8) -> None:
        self.directory = directory
        self.encoder_id = encoder_id
        self.memory_items = memory_items
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()

    def key(self, coords: np.ndarray) -> str:
        digest = hashlib.sha256(self.encoder_id.encode())
        digest.update(np.ascontiguousarray(coords, dtype=np.float32).tobytes())
        return digest.hexdigest()[:32]

    def path_for(self, coords: np.ndarray) -> Path | None:
        return None if self.directory is None else self.directory / f"{self.key(coords)}.npy"

    def get(self, coords: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Embeddings for ``coords`` [N, 2]; ``compute`` is called only on a cache miss."""
        key = self.key(coords)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        embeddings = self._read(coords)
        if embeddings is None:
            embeddings = np.ascontiguousarray(compute(coords), dtype=np.float32)
            self._write(coords, embeddings)
        self._memory[key] = embeddings
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)
        return embeddings

    def _read(self, coords: np.ndarray) -> np.ndarray | None:
        path = self.path_for(coords)
        if path is None or not path.is_file():
            return None
        try:
            embeddings = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable embedding cache %s: %s", path, error)
            return None
        if embeddings.shape[0] != coords.shape[0] or embeddings.dtype != np.float32:
            log.warning("ignoring embedding cache %s with unexpected shape %s", path, embeddings.shape)
            return None
        return np.asarray(embeddings)

    def _write(self, coords: np.ndarray, embeddings: np.ndarray) -> None:
        path = self.path_for(coords)
        if path is None:
            return
        try:
            atomic_write(path, lambda out: np.save(out, embeddings))  # never a half-written cache
        except OSError as error:
            # A read-only or full cache folder only costs speed, never a prediction.
            log.warning("could not write embedding cache %s: %s", path, error)


PREBUILT_MANIFEST = "gallery.json"


class PrebuiltGallery:
    """A gallery whose normalised location embeddings (and usually a vector index) were computed ahead of time,
    so a 10 M-point gallery is never embedded at load: coordinates and embeddings are memory-mapped.

    Folder layout (written by :meth:`create`; the dense-gallery build writes the same)::

        gallery.json        {"format": 1, "name", "size", "dim", "encoder_id", "digest", "dtype",
                             "coords": "coords.npy", "embeddings": "embeddings.npy", "index": "index.faiss" | null}
        coords.npy          [N, 2] float32 (lat, lon) degrees
        embeddings.npy      [N, dim] float16 or float32, L2-normalised rows, in the order of coords
        index.faiss (+ .json) optional, written by geoapp.index.save_index (ids = row numbers)

    ``encoder_id`` is the locator's embedding identity (``"geoclip:<heads sha256>"``); a locator with other
    weights refuses the gallery. ``digest`` is :func:`coords_digest` of the coordinates (stored, so a
    10 M-point gallery is not re-hashed on every load).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / PREBUILT_MANIFEST).read_text(encoding="utf-8"))
            self.coords = np.load(self.folder / self.meta.get("coords", "coords.npy"), mmap_mode="r")
        except (OSError, ValueError) as error:
            raise GalleryError(f"Cannot read prebuilt gallery {self.folder}: {error}") from error
        if self.coords.ndim != 2 or self.coords.shape[1] != 2 or len(self.coords) != int(self.meta["size"]):
            raise GalleryError(f"Prebuilt gallery {self.folder}: coords shape {self.coords.shape} does not match "
                               f"size {self.meta['size']}")
        self.name = str(self.meta.get("name") or self.folder.name)
        self.source = str(self.folder)
        self.skipped_rows = 0
        self.encoder_id = str(self.meta["encoder_id"])
        self.dim = int(self.meta.get("dim", 512))

    @classmethod
    def open(cls, folder: str | Path) -> "PrebuiltGallery":
        return cls(folder)

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def digest(self) -> str:
        return str(self.meta["digest"])

    def embeddings(self) -> np.ndarray:
        """The normalised embeddings [N, dim] as a read-only memmap (float16 or float32)."""
        array = np.load(self.folder / self.meta.get("embeddings", "embeddings.npy"), mmap_mode="r")
        if array.shape != (len(self), self.dim):
            raise GalleryError(f"Prebuilt gallery {self.folder}: embeddings shape {array.shape}, expected "
                               f"{(len(self), self.dim)}")
        return array

    def index_path(self) -> Path | None:
        name = self.meta.get("index")
        return self.folder / name if name else None

    def load_index(self):
        """The prebuilt :class:`geoapp.index.VectorIndex` (original vectors attached for re-ranking and exact
        region search), or None when the folder has none."""
        from geoapp.index import load_index

        path = self.index_path()
        if path is None or not path.is_file():
            return None
        return load_index(path, vectors=self.embeddings())

    @classmethod
    def create(cls, folder: str | Path, name: str, coords: np.ndarray, embeddings: np.ndarray, encoder_id: str,
               index=None, dtype: str = "float16") -> "PrebuiltGallery":
        """Write a prebuilt gallery (small and medium sets; the dense build streams the same files)."""
        from geoapp.index import save_index

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        coords = np.ascontiguousarray(coords, dtype=np.float32)
        np.save(folder / "coords.npy", coords)
        np.save(folder / "embeddings.npy", np.asarray(embeddings, dtype=dtype))
        if index is not None:
            save_index(index, folder / "index.faiss")
        meta = {"format": 1, "name": name, "size": len(coords), "dim": int(embeddings.shape[1]),
                "encoder_id": encoder_id, "digest": coords_digest(coords), "dtype": dtype,
                "coords": "coords.npy", "embeddings": "embeddings.npy",
                "index": "index.faiss" if index is not None else None}
        (folder / PREBUILT_MANIFEST).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return cls(folder)
