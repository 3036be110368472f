"""Tile embeddings: encode tiles with a level's map encoder, cached on disk.

The paper encodes every candidate tile again for every photo (8 min 38 s per image at k = 16).
Here a tile's embedding depends only on (tile source, encoder weights, z, x, y), so it is
computed once and kept in a SQLite file per (source, encoder digest) under
``$GEOAPP_CACHE_DIR/maptiles/embeddings/``; ``python -m geoapp tiles embed --zooms 4,6,8``
fills whole levels ahead of time (``--region`` / ``--bbox`` for the deep levels of the area you work
on). Below what was pre-embedded, a search encodes only the tiles it visits and stores them for
later photos; it reads back only the rows of the tiles it visits, never a whole level. Vectors are
stored as float32 exactly as computed, so a cached search gives the same result as an uncached
one. Tiles the source does not have are remembered as missing. Delete the folder at any time.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geoapp.families.maptiles.model import MapTileModel
from geoapp.families.maptiles.search import LevelIndex, world_tiles
from geoapp.models.preprocess import centre_crop_tensor
from geoapp.tiles.base import TileSource, TileSourceError

WHOLE_LEVEL_LIMIT = 1 << 16  # `tiles embed` refuses whole levels above zoom 8 (65,536 tiles) without a region
DEFAULT_MEMORY_TILES = 1 << 16  # vectors kept in memory (LRU): 128 MB at 512-d; the rest stay on disk
EMBED_CHUNK = 1024  # tiles per step of `tiles embed`


def source_key(source: TileSource) -> str:
    """What identifies a source's pixels: its name, and for archives the file's size and time."""
    key = source.info.name
    path = getattr(source, "path", None)
    if path is not None and Path(path).is_file():
        stat = Path(path).stat()
        key += f"@{Path(path).resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    return key


class EmbeddingStore:
    """SQLite table (z, x, y) -> float32 vector (NULL: the source has no such tile).

    Read by key (:meth:`get`), so a search touches only the rows of the tiles it visits however deep
    and however full the level is; :meth:`level` reads a whole level (the warm-cache vector index)."""

    LOOKUP_CHUNK = 400  # (x, y) pairs per SELECT: 800 bound values, far below SQLite's limit

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS tile (z INTEGER, x INTEGER, y INTEGER, vector BLOB, "
                         "PRIMARY KEY (z, x, y))")

    def level(self, zoom: int) -> dict[tuple[int, int], np.ndarray | None]:
        with self._lock:
            rows = self._db.execute("SELECT x, y, vector FROM tile WHERE z = ?", (int(zoom),)).fetchall()
        return {(x, y): None if blob is None else np.frombuffer(blob, np.float32) for x, y, blob in rows}

    def count(self, zoom: int) -> int:
        """Tiles of ``zoom`` stored with a vector."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM tile WHERE z = ? AND vector IS NOT NULL",
                                        (int(zoom),)).fetchone()[0])

    def get(self, zoom: int, keys: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray | None]:
        """The stored rows among ``keys`` (x, y) of ``zoom``; keys never stored are absent from the answer."""
        found: dict[tuple[int, int], np.ndarray | None] = {}
        for start in range(0, len(keys), self.LOOKUP_CHUNK):
            chunk = keys[start:start + self.LOOKUP_CHUNK]
            pairs = ", ".join("(?, ?)" for _ in chunk)
            values = [int(v) for key in chunk for v in key]
            with self._lock:
                rows = self._db.execute(f"SELECT x, y, vector FROM tile WHERE z = ? AND (x, y) IN (VALUES {pairs})",
                                        [int(zoom), *values]).fetchall()
            found.update({(x, y): None if blob is None else np.frombuffer(blob, np.float32) for x, y, blob in rows})
        return found

    def put(self, zoom: int, items: list[tuple[int, int, np.ndarray | None]]) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO tile VALUES (?, ?, ?, ?)",
                                 [(int(zoom), int(x), int(y), None if v is None else
                                   np.asarray(v, np.float32).tobytes()) for x, y, v in items])

    def close(self) -> None:
        self._db.close()


class TileEmbedder:
    """``embed(zoom, tiles)`` for the beam search: reads tiles, encodes them, caches the vectors.

    ``cache_dir=None`` and ``memory=False`` is the paper's procedure (everything encoded on every
    call); with a memory and/or disk cache a tile is encoded once. The memory cache holds at most
    ``memory_tiles`` vectors (least recently used dropped first; they stay in the disk cache), so a
    long-running app or a deep evaluation does not grow with every tile it has visited.
    """

    def __init__(self, model: MapTileModel, source: TileSource, *, device: torch.device | str = "cpu",
                 cache_dir: Path | None = None, memory: bool = True, batch_size: int = 64,
                 memory_tiles: int = DEFAULT_MEMORY_TILES) -> None:
        self.model = model
        self.source = source
        self.device = torch.device(device)
        self.memory = memory or cache_dir is not None
        self.memory_tiles = max(1, int(memory_tiles))
        self.batch_size = int(batch_size)
        self.preprocess = model.config.preprocess()
        self.digests = {z: model.level_digest(z) for z in model.zooms}
        self.store: EmbeddingStore | None = None
        if cache_dir is not None:
            combined = hashlib.sha256("".join(self.digests[z] for z in model.zooms).encode()).hexdigest()[:16]
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source.info.name).name or source.info.name)[-40:]
            source_hash = hashlib.sha256(source_key(source).encode()).hexdigest()[:10]
            self.store = EmbeddingStore(Path(cache_dir) / f"{slug}-{source_hash}-{combined}.sqlite")
        self._memory: OrderedDict[tuple[int, int, int], np.ndarray | None] = OrderedDict()
        self._indexes: dict[int, _CachedLevel] = {}
        self.encoded = 0  # tiles encoded by this embedder (for benchmarks and tests)
        self.seconds_encoding = 0.0

    @property
    def dim(self) -> int:
        return int(self.model.config.embed_dim)

    @property
    def held(self) -> int:
        """Vectors held in memory now (bounded by ``memory_tiles``)."""
        return len(self._memory)

    def _remember(self, zoom: int, items: dict[tuple[int, int], np.ndarray | None]) -> None:
        for (x, y), vector in items.items():
            self._memory[(zoom, x, y)] = vector
            self._memory.move_to_end((zoom, x, y))
        while len(self._memory) > self.memory_tiles:
            self._memory.popitem(last=False)

    def _known(self, zoom: int, keys: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray | None]:
        """What memory, then the disk cache, already holds for ``keys``."""
        known: dict[tuple[int, int], np.ndarray | None] = {}
        rest = []
        for key in keys:
            entry = (zoom, *key)
            if entry in self._memory:
                self._memory.move_to_end(entry)
                known[key] = self._memory[entry]
            else:
                rest.append(key)
        if rest and self.store is not None:
            stored = self.store.get(zoom, rest)
            self._remember(zoom, stored)
            known.update(stored)
        return known

    def __call__(self, zoom: int, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tiles = np.asarray(tiles, np.int64).reshape(-1, 3)
        wanted = [(int(x), int(y)) for _, x, y in tiles]
        unique = sorted(set(wanted))
        known = self._known(zoom, unique) if self.memory else {}
        fresh = self.encode(zoom, [key for key in unique if key not in known])
        if self.memory:
            self._remember(zoom, fresh)
            if self.store is not None and fresh:
                self.store.put(zoom, [(x, y, v) for (x, y), v in fresh.items()])
        lookup = {**known, **fresh}
        vectors = np.zeros((len(tiles), self.dim), np.float32)
        available = np.zeros(len(tiles), bool)
        for row, key in enumerate(wanted):
            vector = lookup.get(key)
            if vector is not None:
                vectors[row], available[row] = vector, True
        return vectors, available

    @torch.inference_mode()
    def encode(self, zoom: int, keys: list[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray | None]:
        """Read and encode tiles (x, y) at ``zoom``; None for tiles the source does not have."""
        import time

        out: dict[tuple[int, int], np.ndarray | None] = {}
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start:start + self.batch_size]
            results = self.source.tiles([(zoom, x, y) for x, y in chunk])
            pixels, present = [], []
            for key, result in zip(chunk, results):
                out[key] = None
                if result.ok:
                    try:
                        pixels.append(centre_crop_tensor(result.image(), self.preprocess))
                        present.append(key)
                    except TileSourceError:
                        continue  # a corrupt tile counts as missing
            if not pixels:
                continue
            begin = time.perf_counter()
            batch = torch.cat(pixels).to(self.device)
            vectors = F.normalize(self.model.encode_tiles(batch, zoom).float(), dim=-1).cpu().numpy()
            self.seconds_encoding += time.perf_counter() - begin
            self.encoded += len(present)
            for key, vector in zip(present, vectors):
                out[key] = vector.astype(np.float32)
        return out

    def embed_level(self, zoom: int, tiles: np.ndarray | None = None,
                    progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Pre-compute a whole level (or ``tiles``: a region's); returns (tiles with an embedding, tiles missing).

        Streams in chunks: memory stays bounded whatever the number of tiles (they go to the disk cache)."""
        if tiles is None:
            if 4 ** int(zoom) > WHOLE_LEVEL_LIMIT:
                raise ValueError(f"zoom {zoom} has {4 ** int(zoom):,} tiles: embed it for a region "
                                 "(--region or --bbox) or let searches encode it on first use")
            tiles = world_tiles(zoom)
        tiles = np.unique(np.asarray(tiles, np.int64).reshape(-1, 3), axis=0)
        have = 0
        for start in range(0, len(tiles), EMBED_CHUNK):
            _, available = self(zoom, tiles[start:start + EMBED_CHUNK])
            have += int(available.sum())
            if progress is not None:
                progress(min(len(tiles), start + EMBED_CHUNK), len(tiles))
        return have, len(tiles) - have

    def _level_vectors(self, zoom: int) -> dict[tuple[int, int], np.ndarray | None]:
        if self.store is not None:
            return self.store.level(zoom)
        return {(x, y): v for (z, x, y), v in self._memory.items() if z == zoom}

    def level_index(self, zoom: int, kind: str = "auto", cache_dir: Path | None = None) -> LevelIndex:
        """A vector index over the level's tiles that already have an embedding (disk cache, else memory), rows
        in (x, y) order; ``kind``: auto (exact below geoapp.index.EXACT_MAX tiles) or a kind / IndexSpec.
        ``cache_dir``: where FAISS indexes are kept (geoapp.index.IndexCache), keyed by the encoder digest and
        the indexed tiles. Rebuilt when the level gained tiles since the last call."""
        from geoapp.index import IndexCache, IndexSpec, choose_spec, index_key

        count = self.store.count(zoom) if self.store is not None else None
        cached = self._indexes.get(zoom)
        if cached is not None and count is not None and len(cached) == count and cached.kind == kind:
            return cached.level
        level = self._level_vectors(zoom)
        keys = sorted(key for key, vector in level.items() if vector is not None)
        if cached is not None and len(cached) == len(keys) and cached.kind == kind:
            return cached.level
        tiles = np.array([(zoom, x, y) for x, y in keys], np.int64).reshape(-1, 3)
        vectors = np.stack([level[key] for key in keys]).astype(np.float32) if keys else np.zeros((0, self.dim),
                                                                                                   np.float32)
        spec = kind if isinstance(kind, IndexSpec) else choose_spec(len(vectors), self.dim, kind)
        key = index_key(f"maptiles:{self.digests.get(zoom, '')}:{source_key(self.source)}",
                        hashlib.sha256(tiles.tobytes()).hexdigest())
        index = IndexCache(cache_dir).get_or_build(key, vectors, spec)
        result = LevelIndex(int(zoom), tiles, index)
        self._indexes[zoom] = _CachedLevel(result, kind)
        return result

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


class _CachedLevel:
    def __init__(self, level: LevelIndex, kind) -> None:
        self.level, self.kind = level, kind

    def __len__(self) -> int:
        return len(self.level)
