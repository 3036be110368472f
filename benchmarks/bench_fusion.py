"""Fusing a model map with three clues over the whole globe: the adaptive grid vs a uniform fine grid.

The model map is a GeoCLIP-like surface over the real 100K MP-16 gallery (``geoclip`` package): probability
proportional to exp(-distance / 300 km) around Zurich (fixed, no randomness), spread with the default
(not fitted) 50 km kernel or SatWorld's fitted 400 km kernel. Clues: a shadow (sun), a time zone and the
driving side. The reference, in the same run, is the naive way: the same density and clue factors
evaluated on every cell of one uniform level (``--reference-level``, 27 km cells by default; coarser than
the adaptive grid's finest cells, which favours the reference). Rasters are read from the disk cache
(built on the first run, not timed). Times are medians of ``--repeats`` runs (the first, cold, run apart).

    python benchmarks/bench_fusion.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from _common import bench_parser, emit, machine

CLUES = ("sun:time=2024-06-21T10:00:00Z,ratio=0.50,ratio_sd=0.05",
         "tz:offset=+02:00,time=2024-06-21T12:00:00", "drive:right")


def model_points():
    """The surface as ``PointMass.from_prediction`` keeps it: the top points holding 99.9 %, at most 5 000."""
    from geoapp.fusion import PointMass
    from geoapp.results.prediction import ProbabilitySurface
    from geoapp.galleries.gallery import Gallery
    from geoapp.geo.distance import haversine_km

    coords = Gallery.default().coords.astype(np.float64)
    weight = np.exp(-haversine_km(coords[:, 0], coords[:, 1], 47.37, 8.54) / 300.0)
    top = ProbabilitySurface(coords[:, 0], coords[:, 1], weight / weight.sum()).top(5000, 0.999)
    return PointMass.normalised(top.lat, top.lon, top.probability), len(coords)


def reference(points, kernel, clues, level: int):
    """Every cell of one level: the same density and clue factors, normalised, 90 % HPD area."""
    from geoapp.fusion.areas import mass_above
    from geoapp.fusion.density import grid_mass
    from geoapp.fusion.grid import Grid

    grid = Grid.base(level)
    log = np.log(grid_mass(grid, points, kernel) / grid.area_km2)
    with np.errstate(divide="ignore"):
        for clue in clues:
            log += np.log(clue.checked_factor(grid))
    mass = np.exp(log - log.max()) * grid.area_km2
    mass /= mass.sum()
    chosen = mass_above(mass / grid.area_km2, mass) < 0.9
    return len(grid), float(grid.area_km2[chosen].sum())


def adaptive(points, kernel, clues):
    from geoapp.fusion import PhotoMap, fuse

    post = fuse(photos=[PhotoMap("bench", points, kernel, {})], clues=clues)
    area = post.area(0.9)
    return len(post.grid), area.area_km2, post


def timed(function, repeats: int):
    """(result, cold wall s, median wall s, wall runs, median CPU s): on a shared machine the CPU time (this
    process, all threads) says what the work costs, the wall time what the analyst waited."""
    start = time.perf_counter()
    result = function()
    cold = time.perf_counter() - start
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return result, cold, statistics.median(times), times, statistics.median(cpu)


def main() -> int:
    p = bench_parser(__doc__, device=False)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--reference-level", type=int, default=3)
    args = p.parse_args()

    from geoapp.fusion import Kernel, parse_clues
    from geoapp.fusion import rasters

    clues = parse_clues(list(CLUES))
    for build in (rasters.timezone_ids, rasters.country_ids, rasters.land_share):
        build()  # disk cache -> memory, outside the timings
    points, gallery = model_points()
    rows = []
    before = machine()
    for kernel in (Kernel(50.0, 0.01), Kernel(400.0, 0.1)):
        (cells, area, post), cold, warm, all_times, cpu = timed(lambda: adaptive(points, kernel, clues), args.repeats)
        (ref_cells, ref_area), ref_cold, ref_warm, ref_times, ref_cpu = timed(
            lambda: reference(points, kernel, clues, args.reference_level), max(1, args.repeats // 2))
        rows.append({"kernel_km": kernel.sigma_km, "floor": kernel.floor,
                     "adaptive": {"cells": cells, "levels": post.grid.to_dict()["levels"], "cold_s": round(cold, 3),
                                  "median_s": round(warm, 3), "runs_s": [round(t, 3) for t in all_times],
                                  "median_cpu_s": round(cpu, 3), "area90_km2": round(area)},
                     "reference": {"cells": ref_cells, "level": args.reference_level, "cold_s": round(ref_cold, 3),
                                   "median_s": round(ref_warm, 3), "runs_s": [round(t, 3) for t in ref_times],
                                   "median_cpu_s": round(ref_cpu, 3), "area90_km2": round(ref_area)},
                     "speedup": round(ref_warm / warm, 1)})
        print(f"kernel {kernel.sigma_km:g} km: adaptive {cells:,} cells {warm:.3f} s, CPU {cpu:.3f} s (cold {cold:.3f} s), 90 % area "
              f"{area:,.0f} km²; uniform level {args.reference_level} {ref_cells:,} cells {ref_warm:.3f} s, CPU {ref_cpu:.3f} s, 90 % area "
              f"{ref_area:,.0f} km²")
    emit({"clues": list(CLUES), "gallery_points": gallery, "rows": rows, "machine_before": before,
          "machine_after": machine()}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
