"""The paper's bottom-up cells (``bottom-up-paper``) on a hand-made example whose cells are derived by hand.

n = 3 images per cell, heat maps of 1°, 2°, 4° ... anchored at the points' south-west corner (0°, 0°):

* 1° pixels: A = points 0-3 in pixel (0, 0) and F = points 4-6 in pixel (0, 1) hold >= 3 each: two cells;
  B's points 7, 8 share pixel (0, 2) and point 9 sits in (1, 3): no candidate there yet.
* 2° pixels: pixel (0, 1) (lat 0-2, lon 2-4) now holds points 7, 8, 9: cell B.
* 4° pixels: only points 10 and 11 are left, fewer than 3 in all: the search ends and they stay out of
  every cell (assignment -1), where our variant would hand them to the nearest cell.

Within a resolution the raw WCSS of the features only orders the cells (pixels do not overlap).
"""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.geo.regional_cells import CellConfig, build_cells, wcss

POINTS = np.array([
    (0.0, 0.0), (0.2, 0.3), (0.5, 0.5), (0.9, 0.2),  # A
    (0.3, 1.5), (0.8, 1.2), (0.1, 1.9),  # F
    (0.5, 2.5), (0.6, 2.6), (1.5, 3.5),  # B
    (3.5, 0.5), (7.9, 7.9),  # never claimed
])
A, F, B, LEFT = [0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]
TIGHT = [[0.0, 0.0], [0.0, 0.1], [0.1, 0.0], [0.0, 0.0]]
SPREAD = [[5.0, 5.0], [-5.0, -5.0], [5.0, -5.0]]
CONFIG = CellConfig(method="bottom-up-paper", min_images=3, base_deg=1.0, max_deg=16.0)


def features(a: list, f: list) -> np.ndarray:
    out = np.zeros((len(POINTS), 2))
    out[A], out[F] = np.array(a)[:4], np.array(f)[:3]
    out[B] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    return out


def cells_of(values: np.ndarray, config: CellConfig = CONFIG):
    return build_cells(POINTS[:, 0], POINTS[:, 1], config, features=values)


def test_the_cells_derived_by_hand():
    cells = cells_of(features(TIGHT, SPREAD))
    assert len(cells) == 3
    expected = {0: A, 1: F, 2: B}  # A is tighter than F, so it is picked first at 1°; B comes at 2°
    for index, members in expected.items():
        assert sorted(np.flatnonzero(cells.assignment == index)) == members
        np.testing.assert_allclose(cells.coords[index], POINTS[members].mean(axis=0))
    assert list(cells.assignment[LEFT]) == [-1, -1] and not cells.claimed[LEFT].any()
    np.testing.assert_allclose(cells.tiles, [(0, 0, 1, 1), (0, 1, 1, 2), (0, 2, 2, 4)])
    assert cells.counts.tolist() == [4, 3, 3] and cells.to_dict()["unassigned"] == 2


def test_the_raw_wcss_orders_the_cells_of_a_resolution_and_changes_nothing_else():
    swapped = cells_of(features(SPREAD + [[5.0, 5.0]], TIGHT[:3]))
    assert sorted(np.flatnonzero(swapped.assignment == 0)) == F  # F is now the tighter one: picked first
    assert sorted(np.flatnonzero(swapped.assignment == 1)) == A
    assert sorted(np.flatnonzero(swapped.assignment == 2)) == B
    # Raw WCSS grows with the number of images (the paper's criterion), unlike our size-normalised cohesion.
    values = np.random.default_rng(0).normal(size=(40, 3))
    assert wcss(np.concatenate([values, values])) == pytest.approx(2 * wcss(values))


def test_our_variant_differs_on_the_same_example():
    ours = build_cells(POINTS[:, 0], POINTS[:, 1], CellConfig(method="bottom-up", min_images=3, base_deg=1.0,
                                                               max_deg=16.0), features=features(TIGHT, SPREAD))
    assert (ours.assignment >= 0).all()  # leftovers reassigned to the nearest cell
    paper = cells_of(features(TIGHT, SPREAD))
    assert not np.array_equal(ours.assignment, paper.assignment)


def test_too_few_images_make_one_cell_and_features_are_required():
    few = CellConfig(method="bottom-up-paper", min_images=50, base_deg=1.0)
    cells = cells_of(features(TIGHT, SPREAD), few)
    assert len(cells) == 1 and (cells.assignment == 0).all()
    with pytest.raises(ValueError, match="features"):
        build_cells(POINTS[:, 0], POINTS[:, 1], CONFIG)
