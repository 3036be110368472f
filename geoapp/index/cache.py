"""Built indexes cached on disk, next to the location-embedding cache (``<cache>/indexes``).

An index is keyed by what it indexes, like :meth:`geoapp.galleries.gallery.LocationEmbeddingCache.key`: the
encoder/weights identity plus a digest of the points (see :func:`index_key`); the file name adds the
spec, so an IVF and an exact index of the same points live side by side.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from geoapp.index.core import (IndexSpec, Progress, VectorIndex, VectorIndexError, build_index, choose_spec,
                               load_index, save_index)

log = logging.getLogger(__name__)

Vectors = np.ndarray | Callable[[], np.ndarray]


def index_key(encoder_id: str, coords_or_digest: np.ndarray | str) -> str:
    """Cache key of an index over the embeddings of ``coords`` by encoder ``encoder_id`` (same recipe as the
    embedding cache: sha256 of the encoder id then the float32 coordinates; or of a precomputed digest)."""
    digest = hashlib.sha256(encoder_id.encode())
    if isinstance(coords_or_digest, str):
        digest.update(coords_or_digest.encode())
    else:
        digest.update(np.ascontiguousarray(coords_or_digest, dtype=np.float32).tobytes())
    return digest.hexdigest()[:32]


def spec_tag(spec: IndexSpec) -> str:
    if spec.kind == "ivf-pq":
        return f"ivfpq{spec.nlist}m{spec.pq_m}b{spec.pq_bits}"
    if spec.kind == "ivf-flat":
        return f"ivfflat{spec.nlist}"
    return spec.kind


class IndexCache:
    """Indexes built once and reused: ``get_or_build(key, vectors_or_loader, spec)``.

    ``directory`` None: nothing is written (every call builds). Writes are atomic (temporary file and
    rename); an unreadable or mismatching cached file is logged, ignored and rebuilt. ``nprobe`` and
    ``refine`` are search-time settings, so they are not part of the file name: the cached index is
    searched with the requested spec's values.
    """

    def __init__(self, directory: Path | str | None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> IndexCache:
        from geoapp.settings import get_settings

        return cls(get_settings().indexes_dir)

    def path_for(self, key: str, spec: IndexSpec) -> Path | None:
        if self.directory is None:
            return None
        suffix = ".npy" if spec.kind == "exact" else ".faiss"
        return self.directory / f"{key}.{spec_tag(spec)}{suffix}"

    def get_or_build(self, key: str, vectors_or_loader: Vectors, spec: IndexSpec | str | None = None,
                     progress: Progress = None) -> VectorIndex:
        """The cached index for ``key`` or a new one built from ``vectors_or_loader`` (an array or memmap, or a
        function returning one, called only when needed: exact and IVF-PQ re-ranking need the vectors).
        ``spec``: an IndexSpec, a kind name (parameters by size) or None/"auto"."""
        loaded: list[np.ndarray] = []

        def vectors() -> np.ndarray:
            if not loaded:
                loaded.append(vectors_or_loader() if callable(vectors_or_loader) else vectors_or_loader)
            return loaded[0]

        if not isinstance(spec, IndexSpec):
            data = vectors()
            spec = choose_spec(len(data), data.shape[1], spec or "auto")
        path = self.path_for(key, spec)
        with self._lock:
            if path is not None and path.is_file():
                try:
                    index = load_index(path)
                except VectorIndexError as error:
                    log.warning("ignoring unreadable vector index %s (rebuilding): %s", path, error)
                else:
                    if index.key == key and _same_structure(index.spec, spec):
                        index.spec = spec  # search-time settings (nprobe, refine) from the request
                        if spec.kind != "exact" and (not callable(vectors_or_loader) or spec.refine):
                            index.attach_vectors(vectors())  # an array costs nothing; a loader only for re-ranking
                        return index
                    log.warning("ignoring vector index %s built for another key or spec (rebuilding)", path)
            index = build_index(vectors(), spec, progress)
            index.key = key
            if path is not None:
                try:
                    save_index(index, path)
                except OSError as error:  # a read-only or full cache folder only costs time
                    log.warning("could not write vector index %s: %s", path, error)
            return index


def _same_structure(a: IndexSpec, b: IndexSpec) -> bool:
    return (a.kind, a.nlist, a.pq_m, a.pq_bits) == (b.kind, b.nlist, b.pq_m, b.pq_bits)
