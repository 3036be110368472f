"""Map tiles read on demand for training: per batch only the positives' tiles (which are also the in-batch
negatives) are read, a bounded prefetch queue of threads prepares the next batches while the CPU trains,
and decoded tiles are kept in an LRU bounded in bytes. Nothing is sized by the zoom level, so memory is
the same at zoom 4 and at zoom 16.

Any :class:`~geoapp.tiles.base.TileSource` works: the offline pyramid, a PMTiles/MBTiles archive, an online
provider through the polite client (:mod:`geoapp.tiles.online`; ``--online``), or this machine's own tile
server (:mod:`training.maptiles.tileserver`, a loopback URL template: disk cache, no rate limit).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from geoapp.tiles.base import TileSource, TileSourceError

log = logging.getLogger("training.maptiles")
T = TypeVar("T")
ENTRY_BYTES = 200  # what one LRU entry costs beside its pixels (key, links): "missing" entries count too


@dataclass(frozen=True)
class StreamConfig:
    """How tiles reach the trainer."""

    prefetch: int = 4  # batches prepared ahead of the one training (the queue's bound)
    workers: int = 2  # threads preparing them (tile reads, decoding)
    cache_mb: float = 64.0  # decoded tiles kept (LRU): coarse levels repeat tiles often


@dataclass
class ReaderStats:
    """What a :class:`TileReader` did: for the manifest and for the tests that check streaming."""

    requested: int = 0  # tiles asked for
    read: int = 0  # tiles read from the source (the rest came from the LRU)
    missing: int = 0  # tiles the source does not have
    failed: int = 0  # tiles the source answered with an error
    held_tiles: int = 0  # decoded tiles in the LRU now
    held_bytes: int = 0
    peak_held_bytes: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the log

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "errors"}


class TileReader:
    """``read(zoom, keys)`` -> decoded pixels uint8 [N, S, S, 3] and which tiles exist; thread-safe."""

    def __init__(self, source: TileSource, size: int, cache_mb: float = 64.0) -> None:
        self.source = source
        self.size = int(size)
        self.cache_bytes = int(cache_mb * 1024 * 1024)
        self.stats = ReaderStats()
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    def _decode(self, result) -> np.ndarray | None:
        if result.ok:
            try:
                return np.asarray(result.image().resize((self.size, self.size), Image.BICUBIC))
            except TileSourceError as error:
                self._note_error(str(error))
                return None
        if result.error:
            self._note_error(result.error)
        else:
            with self._lock:
                self.stats.missing += 1
        return None

    def _note_error(self, message: str) -> None:
        with self._lock:
            self.stats.failed += 1
            if len(self.stats.errors) < 5:
                self.stats.errors.append(message)

    def _keep(self, key: tuple[int, int, int], pixels: np.ndarray | None) -> None:
        with self._lock:
            if key in self._cache or self.cache_bytes <= 0:
                return
            self._cache[key] = pixels
            self.stats.held_bytes += ENTRY_BYTES + (0 if pixels is None else pixels.nbytes)
            while self.stats.held_bytes > self.cache_bytes and self._cache:
                _, dropped = self._cache.popitem(last=False)
                self.stats.held_bytes -= ENTRY_BYTES + (0 if dropped is None else dropped.nbytes)
            self.stats.held_tiles = len(self._cache)
            self.stats.peak_held_bytes = max(self.stats.peak_held_bytes, self.stats.held_bytes)

    def read(self, zoom: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Tiles (x, y) [N, 2] of ``zoom`` -> (pixels [N, S, S, 3], exists [N], tiles that failed with an error)."""
        keys = np.asarray(keys, np.int64).reshape(-1, 2)
        pixels = np.zeros((len(keys), self.size, self.size, 3), np.uint8)
        exists = np.zeros(len(keys), bool)
        todo = []
        with self._lock:
            self.stats.requested += len(keys)
            for row, (x, y) in enumerate(keys.tolist()):
                key = (int(zoom), x, y)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    hit = self._cache[key]
                    if hit is not None:
                        pixels[row], exists[row] = hit, True
                else:
                    todo.append(row)
            self.stats.read += len(todo)
        results = self.source.tiles([(int(zoom), int(keys[r, 0]), int(keys[r, 1])) for r in todo])
        failed = sum(1 for result in results if result.error)
        for row, result in zip(todo, results):
            decoded = self._decode(result)
            if decoded is not None:
                pixels[row], exists[row] = decoded, True
            if result.ok or result.missing:  # errors may be transient: not remembered
                self._keep((int(zoom), int(keys[row, 0]), int(keys[row, 1])), decoded)
        return pixels, exists, failed


@dataclass
class Batch:
    """One training step's data: locations, their distinct tiles (positives = in-batch negatives) and targets."""

    step: int
    zoom: int
    index: np.ndarray  # [B] rows of the training locations (those whose tile exists)
    keys: np.ndarray  # [U, 2] (x, y) of the distinct tiles, sorted by (y, x)
    pixels: np.ndarray  # [U, S, S, 3] uint8
    target: np.ndarray  # [B] row in ``keys`` of each location's tile
    dropped: int = 0  # locations left out: their tile is missing from the source


def plan_batch(codes: np.ndarray, zoom: int, rng: np.random.Generator, size: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(location rows, distinct tiles (x, y) [U, 2], each location's row among them) of one batch.

    ``codes``: every training location's tile as ``y * 2**zoom + x``. Deterministic in ``rng``: a resumed run
    draws the very same batches, and a test can recompute which tiles a run needed."""
    index = rng.integers(0, len(codes), size)
    unique, target = np.unique(codes[index], return_inverse=True)
    keys = np.stack([unique & ((1 << int(zoom)) - 1), unique >> int(zoom)], axis=1)
    return index, keys, target.reshape(-1)


def make_batch(reader: TileReader, codes: np.ndarray, zoom: int, rng: np.random.Generator, size: int,
               step: int) -> Batch:
    index, keys, target = plan_batch(codes, zoom, rng, size)
    pixels, exists, failed = reader.read(zoom, keys)
    if failed and failed == len(keys):
        raise TileSourceError(f"the tile source failed for every tile of a zoom-{zoom} batch: "
                              f"{reader.stats.errors[-1] if reader.stats.errors else 'no detail'}")
    if exists.all():
        return Batch(step, zoom, index, keys, pixels, target)
    remap = np.cumsum(exists) - 1
    keep = exists[target]
    return Batch(step, zoom, index[keep], keys[exists], pixels[exists], remap[target[keep]], int((~keep).sum()))


def prefetched(make: Callable[[int], T], steps: Iterable[int], depth: int, workers: int) -> Iterator[T]:
    """``make(step)`` for every step, in order, prepared by ``workers`` threads at most ``depth`` steps ahead."""
    it = iter(steps)
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="maptiles-batches")
    pending: deque = deque()
    try:
        for step in it:
            pending.append(pool.submit(make, step))
            if len(pending) >= max(1, int(depth)):
                break
        while pending:
            result = pending.popleft().result()
            following = next(it, None)
            if following is not None:
                pending.append(pool.submit(make, following))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def reset_peak_memory() -> None:
    """Start a new peak-RSS window for this process (Linux ``/proc/self/clear_refs``; elsewhere a no-op)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and its peak since :func:`reset_peak_memory` (Linux), in MB."""
    figures = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures["rss_mb" if name == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        import resource

        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def open_training_source(name: str | None, *, online: bool = False, cache_dir: Path | None = None) -> TileSource:
    """The tile source a run reads: a loopback template is this machine's own tile server (disk cache, no rate
    limit); anything else opens as the app opens it (online providers only with ``online``, politely)."""
    from training.maptiles.tileserver import is_loopback_template, loopback_source

    if is_loopback_template(name):
        from geoapp.tiles.registry import tiles_dir

        return loopback_source(str(name), cache_dir=cache_dir or tiles_dir() / "online-cache")
    from geoapp.tiles.registry import open_source

    return open_source(name, allow_online=online, build_missing=True,
                       notice=lambda message: log.warning("%s", message))
