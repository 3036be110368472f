"""A user's tile archive is untrusted input: the caps and layout checks the PMTiles and MBTiles readers share.

Archives come from colleagues and downloads, so nothing sized by the file is allocated or decompressed
before it is checked:

- **PMTiles**: the 127-byte header (signature, version 3, known compression and tile type, zoom range);
  every section (root directory, metadata, leaf directories, tile data) must lie inside the file, so a
  truncated archive is refused at once instead of reported valid; the root directory within the first
  16 KiB (as the specification requires); metadata and directories decompressed to at most
  :data:`MAX_METADATA_BYTES` / :data:`MAX_DIRECTORY_BYTES` (a gzip bomb stops there); directories parsed
  into compact arrays (at most :data:`MAX_DIRECTORY_ENTRIES` entries) with every entry pointing inside
  its section.
- **MBTiles**: the SQLite file must be as long as its header says (truncation); metadata values are read
  cut to :data:`MAX_TEXT` characters; zooms must be whole numbers 0-30 and the tile size 64-1024 px.
- **Tiles**: at most :data:`MAX_TILE_BYTES` bytes each (an MBTiles ``tile_data`` that is an integer,
  text or NULL is a per-tile error); decoding is capped in :func:`geoapp.tiles.base.decode_tile`.

Problems are ``ValueError`` messages saying what is wrong; the readers prefix the file name.
"""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_right
from dataclasses import dataclass

from pmtiles.tile import (
    Compression,
    MagicNumberNotFound,
    SpecVersionUnsupported,
    TileType,
    deserialize_header,
)

from geoapp.geo.tiles import MAX_ZOOM

HEADER_BYTES = 127
ROOT_LIMIT = 16_384  # the specification: header + root directory within the first 16 KiB
MAX_METADATA_BYTES = 4 * 1024**2
MAX_DIRECTORY_BYTES = 8 * 1024**2  # a leaf directory, compressed or not
MAX_DIRECTORY_ENTRIES = 500_000  # 32 bytes each in memory: 16 MB at most per directory
MAX_TILE_BYTES = 16 * 1024**2
MAX_TEXT = 4096  # characters of one MBTiles metadata value
TILE_SIZES = (64, 1024)  # pixels a side a tile may declare


# ---------------------------------------------------------------------------------------- decompression
def gunzip_capped(data: bytes, cap: int, what: str) -> bytes:
    """gzip data decompressed to at most ``cap`` bytes (``ValueError`` beyond, or when damaged or cut short)."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = stream.decompress(data, cap + 1)
    except zlib.error as error:
        raise ValueError(f"its {what} is not valid gzip data ({error})") from None
    if len(out) > cap:
        raise ValueError(f"its {what} decompresses to more than {cap:,} bytes (refused: a corrupt or hostile archive)")
    if not stream.eof:
        raise ValueError(f"its {what} is cut short (truncated gzip data)")
    return out


def internal_bytes(data: bytes, compression: Compression, cap: int, what: str) -> bytes:
    """A PMTiles metadata or directory block, decompressed by the header's ``internal_compression``."""
    if compression == Compression.GZIP or (compression == Compression.UNKNOWN and data[:2] == b"\x1f\x8b"):
        return gunzip_capped(data, cap, what)
    if compression in (Compression.NONE, Compression.UNKNOWN):
        if len(data) > cap:
            raise ValueError(f"its {what} is {len(data):,} bytes (more than {cap:,}; refused)")
        return data
    raise ValueError(f"its {what} is compressed with {compression.name.lower()}, which geoapp cannot read; "
                     "convert the archive with gzip compression (e.g. `pmtiles convert`)")


# ---------------------------------------------------------------------------------------- PMTiles header
def pmtiles_header(buf: bytes, file_size: int) -> dict:
    """The parsed header, checked against the file's size (see the module docstring)."""
    if file_size < HEADER_BYTES:
        raise ValueError(f"not a readable PMTiles v3 archive: only {file_size} bytes (truncated?)")
    try:
        header = deserialize_header(buf)
    except MagicNumberNotFound:
        raise ValueError("not a readable PMTiles v3 archive (it does not start with the PMTiles signature); "
                         "rebuild it with `python -m geoapp tiles build-offline`") from None
    except SpecVersionUnsupported:
        raise ValueError(f"not a readable PMTiles v3 archive (version {buf[7]}; only version 3 is read)") from None
    except ValueError:  # an unknown compression or tile-type code, a signature that is not text
        raise ValueError("not a readable PMTiles v3 archive (unknown compression or tile type in its header)") from None
    if header["tile_type"] == TileType.MVT:
        raise ValueError("it holds vector tiles (MVT); the satellite view needs raster tiles (JPEG, PNG, WebP)")
    if not header["min_zoom"] <= header["max_zoom"] <= MAX_ZOOM:
        raise ValueError(f"its header gives the zoom range {header['min_zoom']}-{header['max_zoom']} "
                         f"(must be within 0-{MAX_ZOOM}, lowest first)")
    if header["root_length"] == 0:
        raise ValueError("its header names no root directory (corrupt archive)")
    if header["root_offset"] + header["root_length"] > ROOT_LIMIT:
        raise ValueError("its root directory does not lie in the first 16 KiB (corrupt archive; PMTiles v3 requires it)")
    if header["metadata_length"] > MAX_METADATA_BYTES:
        raise ValueError(f"its metadata is {header['metadata_length']:,} bytes (more than {MAX_METADATA_BYTES:,})")
    for name in ("root", "metadata", "leaf_directory", "tile_data"):
        end = header[f"{name}_offset"] + header[f"{name}_length"]
        if end > file_size:
            label = {"root": "root directory", "leaf_directory": "leaf directories"}.get(name, name.replace("_", " "))
            raise ValueError(f"the file is truncated or corrupt: its {label} should end at byte {end:,} but the "
                             f"file has {file_size:,} bytes")
    return header


# ---------------------------------------------------------------------------------------- directories
@dataclass(frozen=True)
class Directory:
    """One PMTiles directory as compact arrays (8 bytes per field per entry)."""

    tile_ids: array
    run_lengths: array
    lengths: array
    offsets: array

    def find(self, tile_id: int) -> int | None:
        """The entry holding ``tile_id`` (a run of tiles, or a leaf directory covering it), as the spec says."""
        i = bisect_right(self.tile_ids, tile_id) - 1
        if i < 0:
            return None
        if self.run_lengths[i] == 0 or tile_id - self.tile_ids[i] < self.run_lengths[i]:
            return i
        return None


def parse_directory(raw: bytes, tile_data_length: int, leaf_length: int, what: str) -> Directory:
    """Decode a (decompressed) directory; every entry must point inside the tile data or leaf section."""
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            if position >= len(raw):
                raise ValueError(f"its {what} is cut short (corrupt archive)")
            byte = raw[position]
            position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError(f"its {what} holds a number longer than 64 bits (corrupt archive)")

    count = varint()
    if count > MAX_DIRECTORY_ENTRIES or count * 4 > len(raw):  # every entry takes at least 4 bytes
        raise ValueError(f"its {what} claims {count:,} entries in {len(raw):,} bytes (corrupt archive; at most "
                         f"{MAX_DIRECTORY_ENTRIES:,} entries are read)")
    ids, runs, lengths, offsets = (array("Q") for _ in range(4))
    last = 0
    try:
        for i in range(count):
            delta = varint()
            if i and delta == 0:
                raise ValueError(f"its {what} is not sorted by tile id (corrupt archive)")
            last += delta
            ids.append(last)
        for _ in range(count):
            runs.append(varint())
        for _ in range(count):
            lengths.append(varint())
        for i in range(count):
            value = varint()
            offsets.append(offsets[i - 1] + lengths[i - 1] if i and value == 0 else value - 1)
    except OverflowError:  # a sum or an offset of -1 outside uint64
        raise ValueError(f"its {what} holds an impossible tile id or offset (corrupt archive)") from None
    for i in range(count):
        limit = tile_data_length if runs[i] else leaf_length
        if lengths[i] == 0 or offsets[i] + lengths[i] > limit:
            section = "tile data" if runs[i] else "leaf directories"
            raise ValueError(f"its {what} points outside the {section} (entry {i}: {lengths[i]:,} bytes at "
                             f"{offsets[i]:,}; the section has {limit:,}; truncated or corrupt archive)")
    return Directory(ids, runs, lengths, offsets)


# ---------------------------------------------------------------------------------------- MBTiles
def sqlite_truncation(path, file_size: int) -> str | None:
    """Why an SQLite file is cut short (its header's page count says more), or None."""
    with open(path, "rb") as handle:
        head = handle.read(100)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return "not a readable MBTiles archive (not an SQLite database)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the page count is valid only when written by SQLite >= 3.7.0
    if valid and pages and page_size * pages > file_size:
        return (f"the file is truncated: its header says {page_size * pages:,} bytes but the file has "
                f"{file_size:,}")
    return None


def whole_number(value: object, name: str, low: int, high: int) -> int:
    """An MBTiles metadata or table value as an int in [low, high] (``ValueError`` naming it otherwise)."""
    text = str(value).strip()
    if len(text) > 12 or not text.lstrip("+-").isdigit() or not low <= int(text) <= high:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ValueError(f"its {name} is {shown!r}, not a whole number between {low} and {high}")
    return int(text)


def tile_problem(kind: str, length: int | None, key: str) -> str | None:
    """Why an MBTiles ``tile_data`` cell (its SQL type and length) is not a tile, or None."""
    if kind == "null":
        return f"tile {key} is stored as NULL (no image bytes)"
    if kind != "blob":
        return f"tile {key} is stored as {kind}, not as image bytes (corrupt archive)"
    if length is not None and length > MAX_TILE_BYTES:
        return f"tile {key} is {length:,} bytes (more than the {MAX_TILE_BYTES:,} a tile may have)"
    return None
