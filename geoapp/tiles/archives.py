"""Local tile archives: PMTiles (one file, via the ``pmtiles`` package) and MBTiles (SQLite).

Both are read through :class:`~geoapp.tiles.base.TileSource` (as untrusted input: every size the file
gives and every decompression is capped, see :mod:`geoapp.tiles.archive_checks`) and written with a small writer
(``add(z, x, y, data)`` then ``close()``). Our metadata (attribution, licence, caching) is stored
in each format's metadata so a built pyramid keeps saying where it came from.

MBTiles stores rows in TMS order (row 0 at the south): ``tile_row = 2**z - 1 - y``. Only the
two SQL statements below know that; everything else speaks XYZ.
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer as _PMTilesWriter

from geoapp.fileio import atomic_write
from geoapp.geo.tiles import MAX_LAT, MAX_ZOOM, flip_y
from geoapp.tiles.archive_checks import (
    HEADER_BYTES,
    MAX_DIRECTORY_BYTES,
    MAX_METADATA_BYTES,
    MAX_TEXT,
    MAX_TILE_BYTES,
    TILE_SIZES,
    Directory,
    internal_bytes,
    parse_directory,
    pmtiles_header,
    sqlite_truncation,
    tile_problem,
    whole_number,
)
from geoapp.tiles.base import (
    SourceInfo,
    TileResult,
    TileSource,
    TileSourceError,
    sniff_format,
)

ARCHIVE_SUFFIXES = (".pmtiles", ".mbtiles")
_TILE_TYPES = {"jpeg": TileType.JPEG, "png": TileType.PNG, "webp": TileType.WEBP}
_FORMATS = {v: k for k, v in _TILE_TYPES.items()}
MAX_CACHED_LEAVES = 64  # leaf directories kept parsed (16 MB each at most)


def _info_from_metadata(path: Path, meta: dict, min_zoom: int, max_zoom: int, image_format: str) -> SourceInfo:
    """The archive's SourceInfo; metadata values are untrusted (``ValueError`` for impossible ones)."""
    caching = meta.get("caching_allowed", True)
    if isinstance(caching, str):  # MBTiles metadata values are text
        caching = caching.lower() in ("1", "true", "yes")

    def text(value: object) -> str:
        return str(value)[:MAX_TEXT]

    return SourceInfo(
        name=str(path), title=text(meta.get("name") or path.name), min_zoom=min_zoom, max_zoom=max_zoom,
        tile_size=whole_number(meta.get("tile_size", 256), "tile_size", *TILE_SIZES),
        attribution=text(meta.get("attribution", "")),
        licence=text(meta.get("licence") or meta.get("license") or "unknown (local archive)"),
        caching_allowed=bool(caching), online=False, image_format=image_format,
    )


# ---------------------------------------------------------------------------------------- PMTiles
class PMTilesSource(TileSource):
    """Reads a PMTiles v3 archive through a memory map, checked as untrusted input (archive_checks);
    the root directory is parsed at open, leaf directories on use (the most recent ones kept)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as stream:  # the map keeps its own handle
                size = os.fstat(stream.fileno()).st_size
                self._map = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except (OSError, ValueError) as exc:
            raise TileSourceError(f"{self.path}: cannot open it ({getattr(exc, 'strerror', None) or exc})") from exc
        self._leaves: OrderedDict[tuple[int, int], Directory] = OrderedDict()
        self._lock = threading.Lock()
        try:
            self.header = pmtiles_header(self._map[:HEADER_BYTES] if self._map else b"", size)
            if self.header["tile_compression"] not in (Compression.NONE, Compression.UNKNOWN):
                raise ValueError("its tiles are compressed (raster tiles stored as plain images expected)")
            self._root = self._directory(self.header["root_offset"], self.header["root_length"], "root directory")
            meta = self._metadata()
            image_format = _FORMATS.get(self.header["tile_type"], str(meta.get("format", "png"))[:10])
            self.info = _info_from_metadata(self.path, meta, self.header["min_zoom"], self.header["max_zoom"],
                                            image_format)
        except ValueError as exc:
            self.close()
            raise TileSourceError(f"{self.path}: {exc}") from exc

    def _bytes(self, offset: int, length: int) -> bytes:
        return self._map[offset:offset + length]

    def _metadata(self) -> dict:
        raw = internal_bytes(self._bytes(self.header["metadata_offset"], self.header["metadata_length"]),
                             self.header["internal_compression"], MAX_METADATA_BYTES, "metadata")
        try:
            meta = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not a JSON object (corrupt archive)")
        return meta

    def _directory(self, offset: int, length: int, what: str) -> Directory:
        raw = internal_bytes(self._bytes(offset, length), self.header["internal_compression"], MAX_DIRECTORY_BYTES,
                             what)
        return parse_directory(raw, self.header["tile_data_length"], self.header["leaf_directory_length"], what)

    def _leaf(self, offset: int, length: int) -> Directory:
        key = (offset, length)
        with self._lock:
            if key in self._leaves:
                self._leaves.move_to_end(key)
                return self._leaves[key]
        if length > MAX_DIRECTORY_BYTES:
            raise ValueError(f"a leaf directory is {length:,} bytes (more than {MAX_DIRECTORY_BYTES:,})")
        leaf = self._directory(self.header["leaf_directory_offset"] + offset, length, "leaf directory")
        with self._lock:
            self._leaves[key] = leaf
            while len(self._leaves) > MAX_CACHED_LEAVES:
                self._leaves.popitem(last=False)
        return leaf

    def _read(self, z: int, x: int, y: int) -> TileResult:
        tile_id = zxy_to_tileid(z, x, y)
        directory = self._root
        for _ in range(4):  # the spec allows at most three levels of leaf directories
            i = directory.find(tile_id)
            if i is None:
                return TileResult(z, x, y)
            offset, length = directory.offsets[i], directory.lengths[i]
            if directory.run_lengths[i] > 0:
                if length > MAX_TILE_BYTES:
                    return TileResult(z, x, y, error=f"{self.path}: tile {z}/{x}/{y} is {length:,} bytes (more than "
                                                     f"the {MAX_TILE_BYTES:,} a tile may have)")
                return TileResult(z, x, y, data=self._bytes(self.header["tile_data_offset"] + offset, length))
            try:
                directory = self._leaf(offset, length)
            except ValueError as exc:
                return TileResult(z, x, y, error=f"{self.path}: {exc}")
        return TileResult(z, x, y, error=f"{self.path}: directory nesting too deep (corrupt archive?)")

    def close(self) -> None:
        if self._map is not None and not self._map.closed:
            self._map.close()


class PMTilesWriter:
    """Collects tiles (any order) and writes a PMTiles v3 archive atomically on :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, name: str, attribution: str = "", licence: str = "unknown",
                 caching_allowed: bool = True, image_format: str = "jpeg", tile_size: int = 256,
                 description: str = "") -> None:
        if image_format not in _TILE_TYPES:
            raise TileSourceError(f"unsupported tile format {image_format!r}; use one of {', '.join(_TILE_TYPES)}")
        self.path = Path(path)
        self.metadata = {"name": name, "attribution": attribution, "licence": licence, "description": description,
                         "caching_allowed": caching_allowed, "format": image_format, "tile_size": tile_size,
                         "generator": "geoapp"}
        self.image_format = image_format
        self._tiles: dict[int, bytes] = {}
        self._zooms: set[int] = set()

    def add(self, z: int, x: int, y: int, data: bytes) -> None:
        self._tiles[zxy_to_tileid(z, x, y)] = data
        self._zooms.add(z)

    def __len__(self) -> int:
        return len(self._tiles)

    def close(self) -> Path:
        if not self._tiles:
            raise TileSourceError(f"no tiles to write to {self.path}")

        def write(stream) -> None:
            writer = _PMTilesWriter(stream)
            for tile_id in sorted(self._tiles):  # sorted: a clustered archive
                writer.write_tile(tile_id, self._tiles[tile_id])
            header = {
                "tile_type": _TILE_TYPES[self.image_format], "tile_compression": Compression.NONE,
                "min_lon_e7": -1_800_000_000, "min_lat_e7": int(-MAX_LAT * 1e7),
                "max_lon_e7": 1_800_000_000, "max_lat_e7": int(MAX_LAT * 1e7),
                "center_zoom": min(self._zooms), "center_lon_e7": 0, "center_lat_e7": 0,
            }
            writer.finalize(header, self.metadata)

        atomic_write(self.path, write)
        return self.path


# ---------------------------------------------------------------------------------------- MBTiles
_MBTILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB,
                                  PRIMARY KEY (zoom_level, tile_column, tile_row));
"""


class MBTilesSource(TileSource):
    """Reads an MBTiles (SQLite) archive, read-only, checked as untrusted input (archive_checks);
    rows are flipped from TMS to XYZ."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TileSourceError(f"{self.path}: tile archive not found")
        try:
            problem = sqlite_truncation(self.path, self.path.stat().st_size)
        except OSError as exc:
            raise TileSourceError(f"{self.path}: cannot open it ({exc.strerror})") from exc
        if problem:
            raise TileSourceError(f"{self.path}: {problem}")
        try:
            # check_same_thread=False: the app's tile route reads from worker threads (reads only).
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._db.text_factory = lambda raw: raw.decode("utf-8", "replace")  # names/values need not be UTF-8
            self._lock = threading.Lock()
            meta = dict(self._db.execute(f"SELECT substr(CAST(name AS TEXT), 1, 100), substr(CAST(value AS TEXT), "
                                         f"1, {MAX_TEXT}) FROM metadata LIMIT 1000").fetchall())
            zooms = self._db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
            sample = self._db.execute("SELECT substr(tile_data, 1, 16) FROM tiles WHERE typeof(tile_data) = 'blob' "
                                      "LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise TileSourceError(f"{self.path}: not a readable MBTiles archive ({exc})") from exc
        try:
            image_format = str(meta.get("format") or (sniff_format(sample[0]) if sample else "png"))[:10]
            low = whole_number(meta.get("minzoom", 0 if zooms[0] is None else zooms[0]), "minzoom", 0, MAX_ZOOM)
            high = whole_number(meta.get("maxzoom", 0 if zooms[1] is None else zooms[1]), "maxzoom", 0, MAX_ZOOM)
            if low > high:
                raise ValueError(f"its minzoom {low} is above its maxzoom {high}")
            self.info = _info_from_metadata(self.path, meta, low, high, "jpeg" if image_format == "jpg" else image_format)
        except ValueError as exc:
            self._db.close()
            raise TileSourceError(f"{self.path}: {exc}") from exc

    def _read(self, z: int, x: int, y: int) -> TileResult:
        try:
            with self._lock:  # one connection, many threads (the app's tile route): one query at a time
                # The blob is fetched only when it is one and not too large (never an integer's 60 GB zeroblob).
                row = self._db.execute(
                    "SELECT typeof(tile_data), length(tile_data), CASE WHEN typeof(tile_data) = 'blob' AND "
                    "length(tile_data) <= ? THEN tile_data END FROM tiles "
                    "WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                    (MAX_TILE_BYTES, z, x, int(flip_y(z, y))),
                ).fetchone()
        except sqlite3.Error as exc:
            return TileResult(z, x, y, error=f"{self.path}: cannot read tile {z}/{x}/{y} ({exc})")
        if row is None:
            return TileResult(z, x, y)
        problem = tile_problem(row[0], row[1], f"{z}/{x}/{y}")
        if problem:
            return TileResult(z, x, y, error=f"{self.path}: {problem}")
        return TileResult(z, x, y, data=bytes(row[2]))

    def iter_tiles(self):
        """Every stored tile as (z, x, y, data), XYZ rows (cells that are not image bytes are skipped)."""
        query = ("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles WHERE typeof(tile_data) = 'blob' "
                 f"AND length(tile_data) <= {MAX_TILE_BYTES}")
        for z, x, tms_row, data in self._db.execute(query):
            yield int(z), int(x), int(flip_y(z, tms_row)), bytes(data)

    def close(self) -> None:
        self._db.close()


class MBTilesWriter:
    """Writes tiles into an MBTiles file as they come (commits in batches, so it can resume)."""

    def __init__(self, path: str | os.PathLike, *, name: str, attribution: str = "", licence: str = "unknown",
                 caching_allowed: bool = True, image_format: str = "jpeg", tile_size: int = 256,
                 description: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(_MBTILES_SCHEMA)
        meta = {"name": name, "attribution": attribution, "licence": licence, "description": description,
                "caching_allowed": "true" if caching_allowed else "false", "format": image_format,
                "tile_size": str(tile_size), "type": "baselayer", "version": "1.3",
                "bounds": f"-180,{-MAX_LAT:.6f},180,{MAX_LAT:.6f}"}
        self._db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?)", meta.items())
        self._pending = 0

    def has(self, z: int, x: int, y: int) -> bool:
        return self._db.execute("SELECT 1 FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                                (z, x, int(flip_y(z, y)))).fetchone() is not None

    def add(self, z: int, x: int, y: int, data: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?)", (z, x, int(flip_y(z, y)), data))
        self._pending += 1
        if self._pending >= 200:
            self._db.commit()
            self._pending = 0

    def close(self) -> Path:
        zooms = self._db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        if zooms[0] is not None:
            self._db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?)",
                                 [("minzoom", str(zooms[0])), ("maxzoom", str(zooms[1]))])
        self._db.commit()
        self._db.close()
        return self.path


def open_archive(path: str | os.PathLike) -> TileSource:
    """A PMTiles or MBTiles file as a tile source (chosen by suffix, else by content)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TileSourceError(f"{path}: tile archive not found. Build the offline one with "
                              "`python -m geoapp tiles build-offline --output FILE.pmtiles`")
    if path.suffix.lower() == ".mbtiles":
        return MBTilesSource(path)
    try:
        with open(path, "rb") as stream:
            magic = stream.read(16)
    except OSError as exc:
        raise TileSourceError(f"{path}: cannot open it ({exc.strerror})") from exc
    if magic.startswith(b"SQLite format 3"):
        return MBTilesSource(path)
    return PMTilesSource(path)


def archive_writer(path: str | os.PathLike, **kwargs) -> PMTilesWriter | MBTilesWriter:
    """A writer for ``.pmtiles`` or ``.mbtiles`` by suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pmtiles":
        return PMTilesWriter(path, **kwargs)
    if suffix == ".mbtiles":
        return MBTilesWriter(path, **kwargs)
    raise TileSourceError(f"unknown archive type for {path}: the name must end in .pmtiles or .mbtiles")
