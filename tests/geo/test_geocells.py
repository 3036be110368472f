"""S2 geocells: vectorised cell ids, the shipped partitions, the partitioner, hierarchy, soft targets."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import s2sphere

from geoapp.geo.distance import CoordinateError
from geoapp.geo.geocells import (GeocellError, GeocellHierarchy, GeocellPartition, haversine_soft_targets,
                                 parent_index, partition, repair_token, token_candidates)
from geoapp.geo.s2cells import (cell_levels, cell_ranges, id_to_token, is_valid_cell_id, latlon_to_leaf_ids,
                                parent_ids, token_to_id)

from ..conftest import shared_path

SHIPPED_SIZES = {5000: 3298, 2000: 7202, 1000: 12893}


def _reference_leaf(lat: float, lon: float) -> int:
    return s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(lat, lon)).id()


def _awkward_points() -> tuple[np.ndarray, np.ndarray]:
    """Random points plus poles, the antimeridian, cube-face edges and corners."""
    rng = np.random.default_rng(0)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 1500)))
    lon = rng.uniform(-180, 180, 1500)
    corner = np.degrees(np.arctan(1 / np.sqrt(2)))
    special = [(90, 0), (-90, 0), (90, 180), (-90, -180), (0, 180), (0, -180), (0, 0), (0, 90), (0, -90),
               (45, 45), (-45, -135), (corner, 45), (-corner, -135), (89.9999999, 12), (-17.5, 179.9999999),
               (66.0, -179.99)]
    lat = np.concatenate([lat, [p[0] for p in special]])
    lon = np.concatenate([lon, [p[1] for p in special]])
    return lat, lon


# ------------------------------------------------------------------------------ S2 ids
def test_leaf_ids_match_s2sphere() -> None:
    lat, lon = _awkward_points()
    ours = latlon_to_leaf_ids(lat, lon)
    reference = np.array([_reference_leaf(a, b) for a, b in zip(lat, lon)], dtype=np.uint64)
    assert np.array_equal(ours, reference)
    for level in (0, 2, 9, 17, 30):
        tokens = [id_to_token(c) for c in parent_ids(ours, level)]
        expected = [s2sphere.CellId(int(c)).parent(level).to_token() for c in reference]
        assert tokens == expected
    assert np.array_equal(cell_levels(parent_ids(ours, 13)), np.full(len(ours), 13))
    assert is_valid_cell_id(ours).all()


def test_token_helpers_and_ranges() -> None:
    cell = s2sphere.CellId.from_token("89c25")
    assert token_to_id("89c25") == cell.id() and id_to_token(cell.id()) == "89c25"
    low, high = cell_ranges(np.array([cell.id()], dtype=np.uint64))
    assert (int(low[0]), int(high[0])) == (cell.range_min().id(), cell.range_max().id())
    assert not is_valid_cell_id([token_to_id("4780000")])[0]  # a spreadsheet's rendering of 478e4
    with pytest.raises(ValueError):
        token_to_id("not-hex")


# ------------------------------------------------------------------------------ shipped partitions
@pytest.fixture(scope="module")
def shipped() -> GeocellHierarchy:
    return GeocellHierarchy.from_folder(shared_path("geocells"))


def test_shipped_partitions_load(shipped: GeocellHierarchy) -> None:
    assert shipped.sizes == (3298, 7202, 12893)
    for cells, max_count in zip(shipped.levels, (5000, 2000, 1000)):
        assert len(cells) == SHIPPED_SIZES[max_count]
        assert all(s2sphere.CellId.from_token(t).is_valid() for t in cells.tokens)
        assert len(set(cells.tokens)) == len(cells)
        # Over the maximum only where S2 cannot split further (many photos at one exact spot).
        assert cells.counts.min() > 50 and (cells.counts[cells.levels < 30] <= max_count).all()
        # Every cell contains its own mean coordinate: the tokens are the right cells.
        assert np.mean(cells.assign(cells.lat, cells.lon) == np.arange(len(cells))) == 1.0
    # Parents: every fine cell lies in a middle and a coarse cell.
    assert (shipped.fine_to_middle >= 0).all() and (shipped.fine_to_coarse >= 0).all()
    fine_ids, middle_ids = shipped.fine.cell_ids(), shipped.middle.cell_ids()[shipped.fine_to_middle]
    assert (cell_levels(middle_ids) <= cell_levels(fine_ids)).all()
    assert np.array_equal(parent_ids(fine_ids, cell_levels(middle_ids)), middle_ids)


def test_shipped_spreadsheet_damage_is_repaired() -> None:
    raw = pd.read_csv(shared_path("geocells", "cells_50_5000.csv"), dtype=str)
    damaged = raw[~raw["hex_id"].str.fullmatch(r"[0-9a-f]*[1-9a-f]")]
    assert len(damaged) > 50  # e.g. "4780000", "4.7E+064"
    row = raw[raw["hex_id"] == "4780000"].iloc[0]
    assert repair_token(row["hex_id"], float(row["latitude_mean"]), float(row["longitude_mean"])) == "478e4"
    cells = GeocellPartition.from_csv(shared_path("geocells", "cells_50_5000.csv"))
    assert cells.tokens[int(row["class_label"])] == "478e4"


def test_spreadsheet_round_trip_is_undone(tmp_path) -> None:
    """Partition, write, mangle every number-like token the way a spreadsheet shows it, read back."""
    rng = np.random.default_rng(3)
    centres = np.array([[48.85, 2.35], [40.7, -74.0], [35.7, 139.7], [-33.9, 151.2], [0.5, -0.5], [12.9, -4.4]])
    points = np.concatenate([c + rng.normal(0, s, (700, 2)) for c in centres for s in (0.3, 3.0)])
    cells = partition(points[:, 0], points[:, 1], min_count=5, max_count=60)
    path = cells.to_csv(tmp_path / "cells.csv")
    frame = pd.read_csv(path, dtype=str)

    def spreadsheet(token: str) -> str:
        if not all(ch.isdigit() or ch == "e" for ch in token) or token.count("e") > 1 or token.endswith("e"):
            return token
        value = Decimal(token)
        if value >= Decimal("1e300"):
            return token  # beyond a double: a spreadsheet keeps it as text
        return str(int(value)) if value < Decimal("1e15") else f"{float(value):.3E}"

    frame["hex_id"] = frame["hex_id"].map(spreadsheet)
    assert (frame["hex_id"] != pd.read_csv(path, dtype=str)["hex_id"]).sum() > 0
    frame.to_csv(tmp_path / "mangled.csv", index=False)
    assert GeocellPartition.from_csv(tmp_path / "mangled.csv").tokens == cells.tokens


def test_csv_round_trip(tmp_path, shipped: GeocellHierarchy) -> None:
    path = shipped.middle.to_csv(tmp_path / "middle.csv")
    again = GeocellPartition.from_csv(path)
    assert again.tokens == shipped.middle.tokens
    assert np.array_equal(again.counts, shipped.middle.counts)
    np.testing.assert_allclose(again.coords, shipped.middle.coords, atol=1e-12)
    restored = GeocellHierarchy.from_dict(shipped.to_dict())
    assert restored.sizes == shipped.sizes and np.array_equal(restored.fine_to_coarse, shipped.fine_to_coarse)


def test_bad_files_and_inputs(tmp_path) -> None:
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    with pytest.raises(GeocellError, match="class_label"):
        GeocellPartition.from_csv(tmp_path / "wrong.csv")
    with pytest.raises(GeocellError, match="cannot read"):
        GeocellPartition.from_csv(tmp_path / "absent.csv")
    (tmp_path / "bad.csv").write_text("class_label,hex_id,imgs_per_cell,latitude_mean,longitude_mean\n0,zz,5,1,2\n")
    with pytest.raises(GeocellError, match="zz"):
        GeocellPartition.from_csv(tmp_path / "bad.csv")
    with pytest.raises(GeocellError, match="training.partition"):
        GeocellHierarchy.from_folder(tmp_path)
    with pytest.raises(GeocellError):
        partition([0, 1], [0, 1], min_count=10, max_count=5)
    cells = partition(np.zeros(20), np.zeros(20), min_count=1, max_count=100)
    with pytest.raises(CoordinateError):
        cells.assign([91.0], [0.0])
    assert token_candidates("4780000", 46.92, 7.32) == ["478e4"]


# ------------------------------------------------------------------------------ partitioning
def _reference_partition(lat, lon, min_count, max_count, start_level=2):
    """GeoEstimation's algorithm, one s2sphere call per point (the specification, slowly)."""
    leaves = [s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(a, b)) for a, b in zip(lat, lon)]
    cells = [leaf.parent(start_level) for leaf in leaves]
    counts = Counter(c.id() for c in cells)
    keep = [i for i, c in enumerate(cells) if counts[c.id()] > min_count]
    level = start_level
    while level < 30:
        counts = Counter(cells[i].id() for i in keep)
        if not any(v > max_count for v in counts.values()):
            break
        level += 1
        for i in keep:
            if counts[cells[i].id()] > max_count:
                cells[i] = leaves[i].parent(level)
    final = Counter(cells[i].id() for i in keep)
    return {s2sphere.CellId(k).to_token(): v for k, v in final.items() if v > min_count}


def test_partition_matches_reference_algorithm() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[51.5, -0.1], [40.7, -74.0], [-23.5, -46.6], [35.7, 139.7], [64.1, -21.9]])
    points = np.concatenate([centres[k] + rng.normal(0, s, (300, 2)) for k in range(5) for s in (0.05, 1.0)]
                            + [np.stack([rng.uniform(-80, 80, 400), rng.uniform(-180, 180, 400)], 1)])
    ours = partition(points[:, 0], points[:, 1], min_count=4, max_count=40)
    expected = _reference_partition(points[:, 0], points[:, 1], 4, 40)
    assert dict(zip(ours.tokens, ours.counts.tolist())) == expected
    assert ours.counts.min() > 4 and ours.counts.max() <= 40
    # assign() puts exactly each cell's images in it.
    labels = ours.assign(points[:, 0], points[:, 1])
    assert np.array_equal(np.bincount(labels[labels >= 0], minlength=len(ours)), ours.counts)
    # Cells are disjoint: no cell contains another one.
    ids = ours.cell_ids()
    for k in range(len(ids)):
        others = np.delete(ids, k)
        low, high = cell_ranges(others)
        my_low, my_high = cell_ranges(ids[k:k + 1])
        assert not np.any((low <= my_high[0]) & (high >= my_low[0]))


def test_partition_yfcc26k() -> None:
    """Its speed is a benchmark (benchmarks/bench_budgets.py)."""
    frame = pd.read_csv(shared_path("benchmarks", "yfcc25600_places365.csv"), usecols=["LAT", "LON"])
    hierarchy = GeocellHierarchy.build(frame["LAT"], frame["LON"], min_count=5, max_counts=(500, 200, 100))
    assert hierarchy.sizes[0] < hierarchy.sizes[1] < hierarchy.sizes[2]
    for cells, max_count in zip(hierarchy.levels, (500, 200, 100)):
        assert cells.counts.min() > 5 and cells.counts.max() <= max_count
        assert cells.counts.sum() > 0.9 * len(frame)
    assert (hierarchy.fine_to_coarse >= 0).all() and (hierarchy.fine_to_middle >= 0).all()
    coarse, middle, fine = hierarchy.assign(frame["LAT"], frame["LON"])
    inside = fine >= 0
    assert np.array_equal(hierarchy.fine_to_coarse[fine[inside]], coarse[inside])
    assert np.array_equal(hierarchy.fine_to_middle[fine[inside]], middle[inside])


def test_antimeridian_and_poles() -> None:
    rng = np.random.default_rng(2)
    lat = np.concatenate([rng.uniform(-17.6, -17.4, 40), np.full(30, 90.0), np.full(30, -90.0),
                          rng.uniform(89.5, 90.0, 30)])
    lon = np.concatenate([np.where(rng.random(40) < 0.5, 180.0, -179.95), rng.uniform(-180, 180, 60),
                          rng.uniform(0.0, 89.0, 30)])
    cells = partition(lat, lon, min_count=5, max_count=1000)
    # S2 splits every level along the antimeridian: Fiji's points fall in two cells, one per side.
    fiji = cells.assign([-17.5, -17.5], [180.0, -179.95])
    assert (fiji >= 0).all() and fiji[0] != fiji[1]
    assert cells.lon[fiji[0]] > 179 and cells.lon[fiji[1]] < -179
    assert np.isfinite(cells.coords).all()
    assert (cells.assign(cells.lat, cells.lon) == np.arange(len(cells))).all()  # means lie in their cells
    assert (cells.assign([90.0, -90.0, 0.0, 89.9], [0.0, 180.0, -180.0, 45.0])[[0, 1, 3]] >= 0).all()
    assert len(cells.polygon(int(fiji[0]))) == 4


def test_parent_index_without_ancestor() -> None:
    coarse = GeocellPartition(["89c"], [40.0], [-74.0], [10])
    fine = GeocellPartition(["89c25", "479"], [40.7, 46.0], [-74.0, 9.0], [5, 5])
    assert parent_index(fine, coarse).tolist() == [0, -1]


# ------------------------------------------------------------------------------ soft targets
def test_haversine_soft_targets(shipped: GeocellHierarchy) -> None:
    coarse = shipped.coarse
    truth = np.array([[48.85, 2.35], [-33.9, 151.2]])
    targets = haversine_soft_targets(truth[:, 0], truth[:, 1], coarse, tau_km=65)
    assert targets.shape == (2, len(coarse)) and targets.dtype == np.float32
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
    nearest = np.argmin(np.hypot(coarse.lat[None] - truth[:, :1], coarse.lon[None] - truth[:, 1:]), axis=1)
    assert np.array_equal(targets.argmax(axis=1), nearest)
    sharper = haversine_soft_targets(truth[:, 0], truth[:, 1], coarse, tau_km=10)
    assert (sharper.max(axis=1) > targets.max(axis=1)).all()
    with pytest.raises(GeocellError):
        haversine_soft_targets([0.0], [0.0], coarse, tau_km=0)
