"""Derive the Places365 365 -> 16 -> 3 scene hierarchy: ``python -m training.scene_hierarchy``.

The TransLocator authors published scene labels at three levels with their benchmark ground
truth (columns ``S3_Label, S16_Label, S365_Label``: integer class ids; MIT licence). Each
Places365 category is given the level-2 group it most often carries there, and each level-2
group the level-1 class it most often carries (majority vote; ties go to the smaller id).
The result is a small table shipped in :mod:`geoapp.families.translocator.places365` (the CSV rows are not).

    python -m training.scene_hierarchy                  # print the derived tables and agreement
    python -m training.scene_hierarchy --check          # exit 1 if the shipped tables differ
    python -m training.scene_hierarchy --write          # rewrite the generated block in places365.py
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import SHARED_DIR

BENCHMARKS = SHARED_DIR / "data" / "benchmarks"
DEFAULT_CSVS = ("im2gps3k_places365.csv", "im2gps_places365.csv", "yfcc25600_places365.csv")
MODULE_PATH = Path(__file__).resolve().parents[1] / "geoapp" / "models" / "places365.py"
BEGIN, END = "# BEGIN GENERATED", "# END GENERATED"
N365, N16, N3 = 365, 16, 3


@dataclass(frozen=True)
class SceneLabels:
    """Per-image scene labels at the three levels (int64 arrays of equal length)."""

    s365: np.ndarray
    s16: np.ndarray
    s3: np.ndarray


@dataclass(frozen=True)
class Hierarchy:
    map365to16: np.ndarray  # int64 [365]
    map16to3: np.ndarray  # int64 [16]
    sources: tuple[str, ...]
    rows: int


def read_labels(paths: Sequence[Path]) -> SceneLabels:
    """S365/S16/S3 columns of benchmark CSVs; a row with a missing or out-of-range label is an error."""
    columns: dict[str, list[int]] = {"S365_Label": [], "S16_Label": [], "S3_Label": []}
    limits = {"S365_Label": N365, "S16_Label": N16, "S3_Label": N3}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: no column(s) {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                for name, values in columns.items():
                    try:
                        value = int(row[name])
                    except (TypeError, ValueError) as error:
                        raise ValueError(f"{path}:{line}: {name} is not an integer class id: {row[name]!r}") from error
                    if not 0 <= value < limits[name]:
                        raise ValueError(f"{path}:{line}: {name}={value} is outside 0..{limits[name] - 1}")
                    values.append(value)
    return SceneLabels(*(np.asarray(columns[c], dtype=np.int64) for c in ("S365_Label", "S16_Label", "S3_Label")))


def majority_map(source: np.ndarray, target: np.ndarray, n_source: int, n_target: int) -> np.ndarray:
    """For each source id, the target id it co-occurs with most often (ties: smaller id; unseen: -1)."""
    counts = np.zeros((n_source, n_target), dtype=np.int64)
    np.add.at(counts, (source, target), 1)
    mapping = counts.argmax(axis=1)  # argmax returns the first maximum: the smaller id on ties
    mapping[counts.sum(axis=1) == 0] = -1
    return mapping


def derive(paths: Sequence[Path]) -> Hierarchy:
    labels = read_labels(paths)
    map365to16 = majority_map(labels.s365, labels.s16, N365, N16)
    map16to3 = majority_map(labels.s16, labels.s3, N16, N3)
    unseen = np.flatnonzero(map365to16 < 0).tolist() + [f"16:{i}" for i in np.flatnonzero(map16to3 < 0)]
    if unseen:
        raise ValueError(f"classes never labelled in {', '.join(p.name for p in paths)}: {unseen}; add more CSVs")
    return Hierarchy(map365to16, map16to3, tuple(p.name for p in paths), len(labels.s365))


def agreement(hierarchy: Hierarchy | tuple[np.ndarray, np.ndarray], labels: SceneLabels) -> dict[str, float]:
    """Share of images whose S16 / S3 labels the tables reproduce from their S365 (or S16) label."""
    map365to16, map16to3 = (hierarchy.map365to16, hierarchy.map16to3) if isinstance(hierarchy, Hierarchy) \
        else hierarchy
    return {
        "365->16": float(np.mean(map365to16[labels.s365] == labels.s16)),
        "16->3": float(np.mean(map16to3[labels.s16] == labels.s3)),
        "365->3": float(np.mean(map16to3[map365to16[labels.s365]] == labels.s3)),
    }


def _wrapped(values: Sequence[int], per_line: int = 30) -> str:
    lines = [", ".join(str(int(v)) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return "\n".join(f"    {line}," for line in lines)


def generated_block(hierarchy: Hierarchy, agree: dict[str, float]) -> str:
    sources = ", ".join(hierarchy.sources)
    stats = ", ".join(f"{k} {v:.1%}" for k, v in agree.items())
    return (
        f"{BEGIN} by `python -m training.scene_hierarchy --write` (do not edit by hand)\n"
        f"# Majority vote over {hierarchy.rows} labelled images ({sources}); agreement with them: {stats}.\n"
        f"MAP_365_TO_16: tuple[int, ...] = (\n{_wrapped(hierarchy.map365to16)}\n)\n"
        f"MAP_16_TO_3: tuple[int, ...] = (\n{_wrapped(hierarchy.map16to3)}\n)\n"
        f"{END}"
    )


def rewrite_module(text: str, block: str) -> str:
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"{MODULE_PATH} lacks the {BEGIN!r} / {END!r} markers")
    return text[:start] + block + text[stop + len(END):]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.scene_hierarchy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", action="append", type=Path, default=None,
                        help=f"labelled CSV (repeatable); default: {', '.join(DEFAULT_CSVS)} in {BENCHMARKS}")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated block of geoapp/models/places365.py")
    action.add_argument("--check", action="store_true", help="exit 1 if the shipped tables differ from the derived ones")
    args = parser.parse_args(argv)
    paths = args.csv or [BENCHMARKS / name for name in DEFAULT_CSVS]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        print(f"error: not found: {', '.join(absent)}", file=sys.stderr)
        return 2
    hierarchy = derive(paths)
    agree = agreement(hierarchy, read_labels(paths))
    block = generated_block(hierarchy, agree)
    if args.write:
        MODULE_PATH.write_text(rewrite_module(MODULE_PATH.read_text(encoding="utf-8"), block), encoding="utf-8")
        print(f"wrote the hierarchy into {MODULE_PATH}")
        return 0
    if args.check:
        from geoapp.families.translocator.places365 import scene_hierarchy

        shipped365, shipped16, _, _ = scene_hierarchy()
        same = np.array_equal(shipped365, hierarchy.map365to16) and np.array_equal(shipped16, hierarchy.map16to3)
        print("shipped tables match" if same else "shipped tables DIFFER from the derived ones")
        return 0 if same else 1
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
