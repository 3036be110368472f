"""The held-out sets behind the shipped calibrations: the extra held-out points never repeat a val/test point or
a training point, and the random halves pool every rendered set exactly once."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np

from training.fusion.sets import heldout_halves, heldout_rest


def test_extra_points_are_the_held_out_pool_minus_val_and_test():
    pool = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6]], np.float32)
    split = np.array([0, 1, 1, 2, 2, -1, 1])  # train, val cell x2, test cell x2, buffered, val cell
    made = SimpleNamespace(pool=pool, pool_split=split, val=pool[[1]], test=pool[[4]])
    assert heldout_rest(made).tolist() == [[2, 2], [3, 3], [6, 6]]  # never train (0), buffered (5), val or test


def _table(path, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "lat", "lon"])
        writer.writerows(rows)


def test_halves_pool_val_test_and_extra_once_each(tmp_path):
    _table(tmp_path / "val.csv", [(f"val/{i}.png", i, 0) for i in range(4)])
    _table(tmp_path / "test.csv", [(f"test/{i}.png", i, 1) for i in range(5)])
    calibrate, check = heldout_halves(tmp_path, seed=0)
    without = [r["path"] for t in (calibrate, check) for r in csv.DictReader(t.open())]
    assert sorted(without) == sorted([f"val/{i}.png" for i in range(4)] + [f"test/{i}.png" for i in range(5)])
    _table(tmp_path / "extra.csv", [(f"extra/{i}.png", i, 2) for i in range(7)])
    calibrate, check = heldout_halves(tmp_path, seed=0)
    halves = [[r["path"] for r in csv.DictReader(t.open())] for t in (calibrate, check)]
    assert len(halves[0]) == 8 and len(halves[1]) == 8 and not set(halves[0]) & set(halves[1])
    assert sum(p.startswith("extra/") for p in halves[0] + halves[1]) == 7
