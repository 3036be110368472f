"""Map tiles: archive read latency, offline pyramid build time, tile math throughput vs mercantile.

- **Read latency**: one random tile of a z0–6 Blue Marble pyramid (5 461 tiles) per call, from the
  PMTiles archive (memory-mapped, directories cached) and from the same tiles in MBTiles (SQLite);
  median and p95 over N reads after a warm-up pass (the OS page cache is warm, as in the app).
- **Build**: ``build_pyramid`` z0–``--max-zoom`` (render, JPEG-encode, write PMTiles), one process.
- **Tile math**: ``geoapp.geo.tiles.latlon_to_tile`` on 1 M random points at zoom 14 versus
  ``mercantile.tile`` called per point (the reference library, pure Python), same points; the
  results are checked equal on a sample. Ours: median of 5 runs; mercantile: one run (seconds long).

    python benchmarks/bench_tiles.py [--max-zoom 6] [--reads 20000] [--points 1000000] [--json OUT]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import bench_parser, emit, load_average, machine

from geoapp.geo.tiles import MAX_LAT, latlon_to_tile
from geoapp.tiles.archives import MBTilesWriter, open_archive
from geoapp.tiles.pyramid import build_pyramid


def read_latency(path: Path, tiles: list[tuple[int, int, int]], reads: int) -> dict:
    rng = random.Random(0)
    with open_archive(path) as source:
        for tile in tiles:  # warm-up: page cache and directory cache
            source.tile(*tile)
        times = []
        for _ in range(reads):
            tile = tiles[rng.randrange(len(tiles))]
            start = time.perf_counter()
            result = source.tile(*tile)
            times.append((time.perf_counter() - start) * 1000)
            if not result.ok:
                raise RuntimeError(f"tile {tile} missing from {path}")
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[int(0.95 * len(times))], "reads": reads}


def tile_math(points: int) -> dict:
    import mercantile

    rng = np.random.default_rng(0)
    lat = rng.uniform(-MAX_LAT, MAX_LAT, points)
    lon = rng.uniform(-180.0, 180.0, points)
    runs = []
    for _ in range(6):  # the first run is a warm-up (page faults on fresh buffers); median of the other 5
        start = time.perf_counter()
        x, y = latlon_to_tile(lat, lon, 14)
        runs.append(time.perf_counter() - start)
    ours = statistics.median(runs[1:])
    start = time.perf_counter()
    reference = [mercantile.tile(lo, la, 14) for la, lo in zip(lat.tolist(), lon.tolist())]
    theirs = time.perf_counter() - start
    sample = range(0, points, max(1, points // 10000))
    mismatches = sum((int(x[i]), int(y[i])) != (reference[i].x, reference[i].y) for i in sample)
    return {"points": points, "geoapp_s": ours, "mercantile_s": theirs, "speedup": theirs / ours,
            "geoapp_points_per_s": points / ours, "mismatches_in_sample": mismatches}


def main() -> int:
    parser = bench_parser(__doc__.splitlines()[0], device=False)
    parser.add_argument("--max-zoom", type=int, default=6)
    parser.add_argument("--reads", type=int, default=20000)
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args()
    at_start = machine()

    with tempfile.TemporaryDirectory() as folder:
        pmtiles = Path(folder) / "bluemarble.pmtiles"
        report = build_pyramid(pmtiles, "bluemarble", max_zoom=args.max_zoom)
        mbtiles = Path(folder) / "bluemarble.mbtiles"
        tiles = [(z, x, y) for z in range(args.max_zoom + 1) for x in range(2**z) for y in range(2**z)]
        with open_archive(pmtiles) as source:
            writer = MBTilesWriter(mbtiles, name="bench", image_format="jpeg")
            for tile in tiles:
                writer.add(*tile, source.tile(*tile).data)
            writer.close()
        results = {
            "machine": at_start,
            "build": {"layer": "bluemarble", "max_zoom": args.max_zoom, "tiles": report.tiles,
                      "seconds": report.seconds, "archive_mb": pmtiles.stat().st_size / 1e6},
            "read_pmtiles": read_latency(pmtiles, tiles, args.reads),
            "read_mbtiles": read_latency(mbtiles, tiles, args.reads),
            "tile_math": tile_math(args.points),
        }
    results["load_average_end"] = load_average()
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
