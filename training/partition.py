"""Build S2 geocell partitions from a dataset CSV: ``python -m training.partition``.

GeoEstimation's adaptive partitioning (:func:`geoapp.geo.geocells.partition`), once per maximum
cell size, written in its CSV layout as ``OUT/cells_{min}_{max}.csv``; the defaults give the
three partitions TransLocator classifies into (coarse 5000, middle 2000, fine 1000 images).

Example::

    python -m training.partition --csv mp16.csv --out data/geocells              # 50 / 5000 2000 1000
    python -m training.partition --csv train.csv --out cells --min 5 --max 400 200 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from geoapp.geo.geocells import (DEFAULT_MAX_COUNTS, DEFAULT_MIN_COUNT, DEFAULT_START_LEVEL, MAX_LEVEL, GeocellError,
                                 GeocellPartition, partition)

from training.data import DatasetError, DatasetSpec, read_records


def partition_file_name(min_count: int, max_count: int) -> str:
    return f"cells_{min_count}_{max_count}.csv"


def write_partitions(lat, lon, out: Path, min_count: int = DEFAULT_MIN_COUNT,
                     max_counts: Sequence[int] = DEFAULT_MAX_COUNTS, start_level: int = DEFAULT_START_LEVEL,
                     max_level: int = MAX_LEVEL) -> list[tuple[Path, GeocellPartition]]:
    """Partition the points once per maximum and write each CSV; returns (path, partition) pairs."""
    written = []
    for max_count in max_counts:
        cells = partition(lat, lon, min_count, max_count, start_level, max_level,
                          name=Path(partition_file_name(min_count, max_count)).stem)
        path = cells.to_csv(out / partition_file_name(min_count, max_count))
        written.append((path, cells))
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.partition", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, type=Path, help="dataset CSV with latitude/longitude columns")
    p.add_argument("--layout", default="auto", help="CSV layout (see training.data; default: detect columns)")
    p.add_argument("--out", required=True, type=Path, help="folder for cells_{min}_{max}.csv")
    p.add_argument("--min", dest="min_count", type=int, default=DEFAULT_MIN_COUNT,
                   help="cells with this many images or fewer are dropped (GeoEstimation: 50)")
    p.add_argument("--max", dest="max_counts", type=int, nargs="+", default=list(DEFAULT_MAX_COUNTS),
                   help="split cells holding more than this many images; one partition per value")
    p.add_argument("--start-level", type=int, default=DEFAULT_START_LEVEL, help="S2 level to start from")
    p.add_argument("--max-level", type=int, default=MAX_LEVEL, help="never split below this S2 level")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        records = read_records(DatasetSpec(args.csv, None, args.layout))
        if len(records) == 0:
            raise DatasetError(f"{args.csv}: no rows with valid coordinates")
        written = write_partitions(records.coords[:, 0], records.coords[:, 1], args.out, args.min_count,
                                   args.max_counts, args.start_level, args.max_level)
    except (DatasetError, GeocellError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {
        "dataset": str(args.csv), "points": len(records), "skipped_rows": records.skipped_rows,
        "seconds": round(time.perf_counter() - started, 2),
        "partitions": [{"file": str(path), "cells": len(cells), "images_kept": int(cells.counts.sum()),
                        "levels": [int(cells.levels.min()), int(cells.levels.max())] if len(cells) else []}
                       for path, cells in written],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
