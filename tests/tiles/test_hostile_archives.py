"""Malformed and hostile tile archives through the real CLI (issue 26, item 2).

Every archive is generated here: truncated files, bad headers, gzip bombs in the metadata and in a leaf
directory, corrupt directories, decompression-bomb tiles, MBTiles ``tile_data`` that is a huge integer,
text or NULL, impossible zooms. Each runs ``geoapp tiles info`` and ``geoapp tiles show`` in a subprocess
whose peak memory (max RSS from ``wait4``) must stay under 500 MB, with an address-space limit as a
safety net for the test machine. An archive problem is one ``error: FILE: what is wrong`` line and a
non-zero exit; never a traceback.
"""

from __future__ import annotations

import functools
import io
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from pmtiles.tile import Compression, Entry, TileType, serialize_directory, serialize_header, zxy_to_tileid

from geoapp.tiles.archives import MBTilesWriter, PMTilesWriter

from ..conftest import REPO

MAX_RSS_BYTES = 500 * 1024**2
ADDRESS_SPACE_LIMIT = 2 * 1024**3  # a safety net: a 60 GB allocation fails at once instead of swapping
BOMB_BYTES = 600 * 1024**2  # what the gzip bombs below inflate to


def _png(colour=(10, 120, 30), size=256) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


@functools.lru_cache(maxsize=2)
def _gzip_zeros(total: int) -> bytes:
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    chunks = [stream.compress(block) for _ in range(total // len(block))]
    return b"".join(chunks) + stream.flush()


def _png_header(width: int, height: int, rows_of_zeros: bool = False) -> bytes:
    """A PNG declaring width x height RGB; its pixel data is all zeros (tiny compressed) or a stub."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if rows_of_zeros:
        stream = zlib.compressobj(9)
        row = bytes(1 + 3 * width)
        data = b"".join(stream.compress(row) for _ in range(height)) + stream.flush()
    else:
        data = zlib.compress(bytes(1000))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _pmtiles(path: Path, *, root: bytes | None = None, metadata: bytes | None = None, leaves: bytes = b"",
             tiles: bytes | None = None, **header) -> Path:
    """A PMTiles v3 file assembled by hand: header | root | metadata | leaves | tile data."""
    tile = _png() if tiles is None else tiles
    # Entry(tile_id, offset, length, run_length): one tile, 0/0/0
    root = serialize_directory([Entry(zxy_to_tileid(0, 0, 0), 0, len(tile), 1)]) if root is None else root
    if metadata is None:
        metadata = zlib.compress(b'{"name": "hostile"}', wbits=16 + zlib.MAX_WBITS)
    offsets = {"root_offset": 127, "root_length": len(root)}
    offsets["metadata_offset"] = 127 + len(root)
    offsets["metadata_length"] = len(metadata)
    offsets["leaf_directory_offset"] = offsets["metadata_offset"] + len(metadata)
    offsets["leaf_directory_length"] = len(leaves)
    offsets["tile_data_offset"] = offsets["leaf_directory_offset"] + len(leaves)
    offsets["tile_data_length"] = len(tile)
    fields = {**offsets, "clustered": True, "internal_compression": Compression.GZIP,
              "tile_compression": Compression.NONE, "tile_type": TileType.PNG, "min_zoom": 0, "max_zoom": 0,
              **header}
    path.write_bytes(serialize_header(fields) + root + metadata + leaves + tile)
    return path


def _valid_pmtiles(path: Path) -> Path:
    writer = PMTilesWriter(path, name="valid", image_format="png")
    for z, x, y in ((0, 0, 0), (1, 0, 0), (1, 1, 1), (2, 2, 1)):
        writer.add(z, x, y, _png((40 * z, 90, 30)))
    return writer.close()


def _noise(n: int) -> bytes:
    return random.Random(n).randbytes(n)  # fixed seed: the same junk every run


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _patched(source: Path, path: Path, offset: int, value: bytes) -> Path:
    data = bytearray(source.read_bytes())
    data[offset:offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def _mbtiles(path: Path, tile_sql: str = "?", tile_value: object = None, meta: dict | None = None,
             tables: bool = True) -> Path:
    """An MBTiles file with one tile 0/0/0 whose tile_data is ``tile_sql`` (bound to ``tile_value``)."""
    db = sqlite3.connect(path)
    if tables:
        db.executescript("CREATE TABLE metadata (name TEXT, value TEXT);"
                         "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);")
        values = {"name": "hostile", "format": "png", "minzoom": "0", "maxzoom": "0", **(meta or {})}
        db.executemany("INSERT INTO metadata VALUES (?, ?)", values.items())
        params = () if tile_sql != "?" else (_png() if tile_value is None else tile_value,)
        db.execute(f"INSERT INTO tiles VALUES (0, 0, 0, {tile_sql})", params)
    else:
        db.execute("CREATE TABLE something_else (x)")
    db.commit()
    db.close()
    return path


@dataclass(frozen=True)
class Case:
    name: str
    make: object  # (folder) -> Path
    info_fails: bool  # the archive itself is broken (else only a tile is, and `show` of it fails)


def _cases() -> list[Case]:
    def pm(name, **kw):
        return lambda d: _pmtiles(d / f"{name}.pmtiles", **kw)

    def patched(name, offset, value):
        return lambda d: _patched(_valid_pmtiles(d / f"{name}-src.pmtiles"), d / f"{name}.pmtiles", offset, value)

    def truncated(name, keep):
        def make(d):
            source = _valid_pmtiles(d / f"{name}-src.pmtiles")
            data = source.read_bytes()
            (d / f"{name}.pmtiles").write_bytes(data[:keep(len(data))])
            return d / f"{name}.pmtiles"
        return make

    def truncated_mbtiles(d):
        source = MBTilesWriter(d / "mb-src.mbtiles", name="src", image_format="png")
        for x in range(4):
            for y in range(4):
                source.add(2, x, y, _png((x * 60, y * 60, 9)))
        data = source.close().read_bytes()
        (d / "mb-truncated.mbtiles").write_bytes(data[:len(data) // 2])
        return d / "mb-truncated.mbtiles"

    leaf_bomb = _gzip_zeros(BOMB_BYTES)
    many = zlib.compress(b"\xff\xff\xff\xff\x0f", wbits=16 + zlib.MAX_WBITS)  # "4 294 967 295 entries"
    return [
        Case("empty", lambda d: _written(d / "empty.pmtiles", b""), True),
        Case("header-cut", truncated("header-cut", lambda n: 50), True),
        Case("tiles-cut", truncated("tiles-cut", lambda n: n - 300), True),
        Case("half", truncated("half", lambda n: n // 2), True),
        Case("bad-magic", patched("bad-magic", 0, b"PMTilez"), True),
        Case("version-2", patched("version-2", 7, b"\x02"), True),
        Case("bad-compression-code", patched("bad-compression-code", 97, b"\x09"), True),
        Case("brotli-directories", patched("brotli-directories", 97, b"\x03"), True),
        Case("vector-tiles", patched("vector-tiles", 99, b"\x01"), True),
        Case("zoom-200", patched("zoom-200", 101, b"\xc8"), True),
        Case("zoom-reversed", patched("zoom-reversed", 100, b"\x05"), True),
        Case("root-beyond-file", patched("root-beyond-file", 16, struct.pack("<Q", 10**12)), True),
        Case("metadata-gzip-bomb", pm("metadata-gzip-bomb", metadata=_gzip_zeros(BOMB_BYTES)), True),
        Case("metadata-not-an-object", pm("metadata-not-an-object", metadata=zlib.compress(
            b"[1, 2, 3]", wbits=16 + zlib.MAX_WBITS)), True),
        Case("metadata-tile-size-text", pm("metadata-tile-size-text", metadata=zlib.compress(
            b'{"tile_size": "abc"}', wbits=16 + zlib.MAX_WBITS)), True),
        Case("metadata-tile-size-huge", pm("metadata-tile-size-huge", metadata=zlib.compress(
            b'{"tile_size": 1000000000}', wbits=16 + zlib.MAX_WBITS)), True),
        Case("root-not-gzip", pm("root-not-gzip", root=b"\x1f\x8b" + _noise(200)), True),
        Case("root-gzip-cut", pm("root-gzip-cut", root=serialize_directory(
            [Entry(i, i * 10, 10, 1) for i in range(50)])[:-20]), True),
        Case("root-claims-4g-entries", pm("root-claims-4g-entries", root=many), True),
        Case("root-points-past-tiles", pm("root-points-past-tiles", root=serialize_directory(
            [Entry(0, 10**9, 5000, 1)])), True),
        Case("leaf-gzip-bomb", pm("leaf-gzip-bomb", root=serialize_directory([Entry(0, 0, len(leaf_bomb), 0)]),
                                  leaves=leaf_bomb), False),
        Case("tile-30000px", pm("tile-30000px", tiles=_png_header(30_000, 30_000)), False),
        Case("tile-12000px", pm("tile-12000px", tiles=_png_header(12_000, 12_000, rows_of_zeros=True)), False),
        Case("mb-truncated", truncated_mbtiles, True),
        Case("mb-junk", lambda d: _written(d / "mb-junk.mbtiles", b"SQLite format 3\0" + _noise(3000)), True),
        Case("mb-no-tables", lambda d: _mbtiles(d / "mb-no-tables.mbtiles", tables=False), True),
        Case("mb-huge-integer", lambda d: _mbtiles(d / "mb-huge-integer.mbtiles", "60000000000"), False),
        Case("mb-text", lambda d: _mbtiles(d / "mb-text.mbtiles", "'not an image'"), False),
        Case("mb-null", lambda d: _mbtiles(d / "mb-null.mbtiles", "NULL"), False),
        Case("mb-minzoom-text", lambda d: _mbtiles(d / "mb-minzoom-text.mbtiles", meta={"minzoom": "abc"}), True),
        Case("mb-maxzoom-99", lambda d: _mbtiles(d / "mb-maxzoom-99.mbtiles", meta={"maxzoom": "99"}), True),
        Case("mb-tile-30000px", lambda d: _mbtiles(d / "mb-tile-30000px.mbtiles",
                                                   tile_value=_png_header(30_000, 30_000)), False),
    ]


# The CLI runs under a small launcher, which sets the limit and reports its child's peak RSS: Linux carries
# the forking process's RSS high-water mark into a child's ru_maxrss (fork copies the address space, exec
# keeps the mark), so a child forked straight from this test process would report pytest's size, not its own.
_LAUNCHER = """
import os, resource, subprocess, sys
limit, report = int(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
child = subprocess.Popen([sys.executable, "-m", "geoapp", *sys.argv[3:]])
_, status, usage = os.wait4(child.pid, 0)
with open(report, "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Run:
    code: int
    stderr: str
    stdout: str
    max_rss: int


def _run_cli(args: list[str], folder: Path) -> Run:
    """``python -m geoapp ARGS`` in a subprocess of the launcher; its own peak RSS from wait4."""
    tag = "-".join(a.replace("/", "_") for a in args[:2]) + f"-{abs(hash(tuple(args)))}"
    out, err, rss = folder / f"{tag}.out", folder / f"{tag}.err", folder / f"{tag}.rss"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(ADDRESS_SPACE_LIMIT), str(rss), *args],
                                   cwd=REPO, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "GEOAPP_OFFLINE": "1"})
    timer = threading.Timer(300, os.killpg, (process.pid, signal.SIGKILL))
    timer.start()
    try:
        code = process.wait()
    finally:
        timer.cancel()
    max_rss = int(rss.read_text()) if rss.is_file() else MAX_RSS_BYTES + 1  # no report: the run was killed
    return Run(code, err.read_text(errors="replace"), out.read_text(errors="replace"), max_rss)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-archives")
    logs = tmp_path_factory.mktemp("hostile-logs")
    jobs = []
    for case in _cases():
        path = case.make(folder)
        jobs.append((case, path, ["tiles", "info", str(path)]))
        jobs.append((case, path, ["tiles", "show", "0,0", "--zoom", "0", "--source", str(path), "--output",
                                  str(logs / f"{case.name}.png")]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: _run_cli(job[2], logs), jobs))
    return [(case, path, args[1], run) for (case, path, args), run in zip(jobs, results)]


def test_there_are_at_least_20_malformed_archives():
    assert len(_cases()) >= 20


def test_no_malformed_archive_prints_a_traceback_or_exceeds_500_mb(runs):
    problems = []
    for case, path, command, run in runs:
        if "Traceback" in run.stderr or run.max_rss > MAX_RSS_BYTES:
            problems.append(f"{case.name} {command}: rc {run.code}, {run.max_rss / 1024**2:.0f} MB, "
                            f"{run.stderr.strip()[-300:]}")
    assert not problems, "\n".join(problems)


def test_a_broken_archive_is_one_error_line_naming_the_file(runs):
    problems = []
    for case, path, command, run in runs:
        if command == "info" and not case.info_fails:
            if run.code != 0 or run.stderr.strip():
                problems.append(f"{case.name} info: a readable archive should be described: {run.stderr.strip()}")
            continue
        lines = run.stderr.strip().splitlines()
        if run.code == 0 or len(lines) != 1 or not lines[0].startswith(f"error: {path}: "):
            problems.append(f"{case.name} {command}: rc {run.code}, stderr {run.stderr.strip()[-300:]!r}")
    assert not problems, "\n".join(problems)


def test_truncated_archives_are_not_reported_valid(runs):
    for case, path, command, run in runs:
        if case.name in ("tiles-cut", "half", "mb-truncated") and command == "info":
            assert run.code == 1 and "truncated" in run.stderr, (case.name, run.stderr)
