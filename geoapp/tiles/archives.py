"""Local tile archives: PMTiles (one file, via the ``pmtiles`` package) and MBTiles (SQLite).

Both are read through :class:`~geoapp.tiles.base.TileSource` and written with a small writer
(``add(z, x, y, data)`` then ``close()``). Our metadata (attribution, licence, caching) is stored
in each format's metadata so a built pyramid keeps saying where it came from.

MBTiles stores rows in TMS order (row 0 at the south): ``tile_row = 2**z - 1 - y``. Only the
two SQL statements below know that; everything else speaks XYZ.
"""

from __future__ import annotations

import gzip
import json
import mmap
import os
import sqlite3
import threading
from pathlib import Path

from pmtiles.tile import (
    Compression,
    TileType,
    deserialize_directory,
    deserialize_header,
    find_tile,
    zxy_to_tileid,
)
from pmtiles.writer import Writer as _PMTilesWriter

from geoapp.geo.tiles import MAX_LAT, flip_y
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


def _info_from_metadata(path: Path, meta: dict, min_zoom: int, max_zoom: int, image_format: str) -> SourceInfo:
    caching = meta.get("caching_allowed", True)
    if isinstance(caching, str):  # MBTiles metadata values are text
        caching = caching.lower() in ("1", "true", "yes")
    return SourceInfo(
        name=str(path), title=str(meta.get("name") or path.name), min_zoom=min_zoom, max_zoom=max_zoom,
        tile_size=int(meta.get("tile_size", 256)), attribution=str(meta.get("attribution", "")),
        licence=str(meta.get("licence") or meta.get("license") or "unknown (local archive)"),
        caching_allowed=bool(caching), online=False, image_format=image_format,
    )


# ---------------------------------------------------------------------------------------- PMTiles
class PMTilesSource(TileSource):
    """Reads a PMTiles v3 archive through a memory map; directories are parsed once and kept."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as stream:  # the map keeps its own handle
                self._map = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise TileSourceError(f"cannot open tile archive {self.path}: {exc}") from exc
        try:
            self.header = deserialize_header(self._map[:127])
        except Exception as exc:  # any parse failure means "not a PMTiles file"
            self._map.close()
            raise TileSourceError(f"{self.path} is not a readable PMTiles v3 archive ({exc}); "
                                  "rebuild it with `python -m geoapp tiles build-offline`") from exc
        if self.header["tile_compression"] not in (Compression.NONE, Compression.UNKNOWN):
            self.close()
            raise TileSourceError(f"{self.path}: compressed tile data is not supported (raster tiles expected)")
        self._dirs: dict[tuple[int, int], list] = {}
        meta = self._metadata()
        image_format = _FORMATS.get(self.header["tile_type"], str(meta.get("format", "png")))
        self.info = _info_from_metadata(self.path, meta, self.header["min_zoom"], self.header["max_zoom"],
                                        image_format)

    def _bytes(self, offset: int, length: int) -> bytes:
        return self._map[offset:offset + length]

    def _metadata(self) -> dict:
        raw = self._bytes(self.header["metadata_offset"], self.header["metadata_length"])
        if self.header["internal_compression"] == Compression.GZIP:
            raw = gzip.decompress(raw)
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {}

    def _directory(self, offset: int, length: int) -> list:
        key = (offset, length)
        if key not in self._dirs:
            # deserialize_directory un-gzips by itself (the writer always gzips directories).
            self._dirs[key] = deserialize_directory(self._bytes(offset, length))
        return self._dirs[key]

    def _read(self, z: int, x: int, y: int) -> TileResult:
        tile_id = zxy_to_tileid(z, x, y)
        offset, length = self.header["root_offset"], self.header["root_length"]
        for _ in range(4):  # the spec allows at most three levels of leaf directories
            entry = find_tile(self._directory(offset, length), tile_id)
            if entry is None:
                return TileResult(z, x, y)
            if entry.run_length > 0:
                data = self._bytes(self.header["tile_data_offset"] + entry.offset, entry.length)
                return TileResult(z, x, y, data=data)
            offset, length = self.header["leaf_directory_offset"] + entry.offset, entry.length
        return TileResult(z, x, y, error=f"{self.path}: directory nesting too deep (corrupt archive?)")

    def close(self) -> None:
        if not self._map.closed:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        try:
            with open(temp, "wb") as stream:
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
            os.replace(temp, self.path)
        finally:
            temp.unlink(missing_ok=True)
        return self.path


# ---------------------------------------------------------------------------------------- MBTiles
_MBTILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB,
                                  PRIMARY KEY (zoom_level, tile_column, tile_row));
"""


class MBTilesSource(TileSource):
    """Reads an MBTiles (SQLite) archive, read-only; rows are flipped from TMS to XYZ."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TileSourceError(f"tile archive not found: {self.path}")
        try:
            # check_same_thread=False: the app's tile route reads from worker threads (reads only).
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._lock = threading.Lock()
            meta = dict(self._db.execute("SELECT name, value FROM metadata").fetchall())
            zooms = self._db.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
            sample = self._db.execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise TileSourceError(f"{self.path} is not a readable MBTiles archive ({exc})") from exc
        image_format = str(meta.get("format") or (sniff_format(sample[0]) if sample else "png"))
        low = int(meta.get("minzoom", zooms[0] if zooms[0] is not None else 0))
        high = int(meta.get("maxzoom", zooms[1] if zooms[1] is not None else 0))
        self.info = _info_from_metadata(self.path, meta, low, high, "jpeg" if image_format == "jpg" else image_format)

    def _read(self, z: int, x: int, y: int) -> TileResult:
        with self._lock:  # one connection, many threads (the app's tile route): one query at a time
            row = self._db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, int(flip_y(z, y))),
            ).fetchone()
        return TileResult(z, x, y, data=bytes(row[0])) if row else TileResult(z, x, y)

    def iter_tiles(self):
        """Every stored tile as (z, x, y, data), XYZ rows."""
        for z, x, tms_row, data in self._db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles"):
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
        raise TileSourceError(f"tile archive not found: {path}. Build the offline one with "
                              "`python -m geoapp tiles build-offline --output FILE.pmtiles`")
    if path.suffix.lower() == ".mbtiles":
        return MBTilesSource(path)
    with open(path, "rb") as stream:
        magic = stream.read(16)
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
