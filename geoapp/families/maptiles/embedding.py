"""Tile embeddings: encode tiles with a level's map encoder, cached on disk.

The paper encodes every candidate tile again for every photo (8 min 38 s per image at k = 16).
Here a tile's embedding depends only on (tile source, encoder weights, z, x, y), so it is
computed once and kept in a SQLite file per (source, encoder digest) under
``$GEOAPP_CACHE_DIR/maptiles/embeddings/``; ``python -m geoapp tiles embed --zooms 4,6,8``
fills whole levels ahead of time. Vectors are stored as float32 exactly as computed, so a
cached search gives the same result as an uncached one. Tiles the source does not have are
remembered as missing. Delete the folder at any time.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
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


def source_key(source: TileSource) -> str:
    """What identifies a source's pixels: its name, and for archives the file's size and time."""
    key = source.info.name
    path = getattr(source, "path", None)
    if path is not None and Path(path).is_file():
        stat = Path(path).stat()
        key += f"@{Path(path).resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    return key


class EmbeddingStore:
    """SQLite table (z, x, y) -> float32 vector (NULL: the source has no such tile)."""

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
    call); with a memory and/or disk cache a tile is encoded once.
    """

    def __init__(self, model: MapTileModel, source: TileSource, *, device: torch.device | str = "cpu",
                 cache_dir: Path | None = None, memory: bool = True, batch_size: int = 64) -> None:
        self.model = model
        self.source = source
        self.device = torch.device(device)
        self.memory = memory or cache_dir is not None
        self.batch_size = int(batch_size)
        self.preprocess = model.config.preprocess()
        self.digests = {z: model.level_digest(z) for z in model.zooms}
        self.store: EmbeddingStore | None = None
        if cache_dir is not None:
            combined = hashlib.sha256("".join(self.digests[z] for z in model.zooms).encode()).hexdigest()[:16]
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source.info.name).name or source.info.name)[-40:]
            source_hash = hashlib.sha256(source_key(source).encode()).hexdigest()[:10]
            self.store = EmbeddingStore(Path(cache_dir) / f"{slug}-{source_hash}-{combined}.sqlite")
        self._levels: dict[int, dict[tuple[int, int], np.ndarray | None]] = {}
        self._indexes: dict[int, _CachedLevel] = {}
        self.encoded = 0  # tiles encoded by this embedder (for benchmarks and tests)
        self.seconds_encoding = 0.0

    @property
    def dim(self) -> int:
        return int(self.model.config.embed_dim)

    def _level(self, zoom: int) -> dict[tuple[int, int], np.ndarray | None]:
        if zoom not in self._levels:
            self._levels[zoom] = self.store.level(zoom) if self.store is not None else {}
        return self._levels[zoom]

    def __call__(self, zoom: int, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tiles = np.asarray(tiles, np.int64).reshape(-1, 3)
        known = self._level(zoom) if self.memory else {}
        wanted = [(int(x), int(y)) for _, x, y in tiles]
        todo = sorted({key for key in wanted if key not in known})
        fresh = self.encode(zoom, todo)
        if self.memory:
            known.update(fresh)
            if self.store is not None and fresh:
                self.store.put(zoom, [(x, y, v) for (x, y), v in fresh.items()])
        lookup = known if self.memory else fresh
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
        """Pre-compute a whole level (or ``tiles``); returns (tiles with an embedding, tiles missing)."""
        if tiles is None:
            if 4 ** int(zoom) > WHOLE_LEVEL_LIMIT:
                raise ValueError(f"zoom {zoom} has {4 ** int(zoom):,} tiles: embed it for a region "
                                 "(--region) or let searches encode it on first use")
            tiles = world_tiles(zoom)
        done = 0
        for start in range(0, len(tiles), 1024):
            self(zoom, tiles[start:start + 1024])
            done = min(len(tiles), start + 1024)
            if progress is not None:
                progress(done, len(tiles))
        level = self._level(zoom)
        keys = {(int(x), int(y)) for _, x, y in tiles}
        have = sum(1 for key in keys if level.get(key) is not None)
        return have, len(keys) - have

    def level_index(self, zoom: int, kind: str = "auto", cache_dir: Path | None = None) -> LevelIndex:
        """A vector index over the level's tiles that already have an embedding (memory and disk cache), rows
        in (x, y) order; ``kind``: auto (exact below geoapp.index.EXACT_MAX tiles) or a kind / IndexSpec.
        ``cache_dir``: where FAISS indexes are kept (geoapp.index.IndexCache), keyed by the encoder digest and
        the indexed tiles. Rebuilt when the level gained tiles since the last call."""
        from geoapp.index import IndexCache, IndexSpec, choose_spec, index_key

        level = self._level(zoom)
        keys = sorted(key for key, vector in level.items() if vector is not None)
        cached = self._indexes.get(zoom)
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
