"""Feature pre-computation with the tiny backbone: layout, float16 memmaps, resume, rank split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training import features as features_cli
from training.feature_store import FeatureDataset, FeatureStore, FeatureStoreError, unit_paths
from training.shards import write_shards
from training.data import DatasetSpec, read_records

from .conftest import make_image_folder

TINY = ["--backbone", "tiny-test", "--backbone-weights", "random", "--workers", "0", "--quiet", "--batch-size", "4"]


def _run(capsys, *argv: str) -> dict:
    assert features_cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture()
def folder(tmp_path, dev_dir, dev_truth):
    return make_image_folder(tmp_path / "src", dev_dir, dev_truth, n=5)  # 5 photos + corrupt + missing = 7 rows


def test_features_layout_and_resume(tmp_path, capsys, folder, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "feats"
    args = ["--csv", str(folder), "--images", str(folder.parent / "images"), "--out", str(out), "--unit-size", "3", *TINY]
    summary = _run(capsys, *args)
    assert summary["units_total"] == 3 and summary["units_done_now"] == 3
    assert summary["features_now"] == 5 and summary["skipped_now"] == 2 and summary["complete"]

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["backbone"] == "tiny-test" and manifest["identity"]["random_weights"]
    assert len(manifest["identity"]["backbone_sha256"]) == 64
    first = np.load(unit_paths(out, "features-000000")["features"], mmap_mode="r")
    assert isinstance(first, np.memmap) and first.dtype == np.float16 and first.shape == (3, 768)
    index = pd.read_csv(out / "index.csv", dtype={"id": str})
    assert len(index) == 5 and list(index.columns) == ["unit", "row", "id", "lat", "lon"]
    done_last = json.loads(unit_paths(out, "features-000002")["done"].read_text())
    assert done_last["skipped"]["total"] == 1 and done_last["features"] == 0  # rows 6, 7: corrupt... and missing
    store = FeatureStore(out)
    assert len(store) == 5 and store.dim == 768
    truth = read_records(DatasetSpec(folder, folder.parent / "images"))
    np.testing.assert_allclose(store.coords, truth.coords[:5], atol=1e-5)
    feats, coords = FeatureDataset(store).__getitems__([4, 0])
    assert feats.dtype.is_floating_point and feats.shape == (2, 768)
    np.testing.assert_allclose(coords.numpy(), truth.coords[[4, 0]], atol=1e-5)
    before = np.array(FeatureStore(out).gather(np.arange(5))[0])

    # Resume: finished units are skipped; a unit whose done marker is gone is recomputed, identically.
    unit_paths(out, "features-000001")["done"].unlink()
    with pytest.raises(FeatureStoreError, match="not finished"):
        FeatureStore(out)
    assert len(FeatureStore(out, require_complete=False)) == 3
    summary = _run(capsys, *args)
    assert summary["units_done_now"] == 1 and summary["units_resumed"] == 2 and summary["complete"]
    np.testing.assert_array_equal(FeatureStore(out).gather(np.arange(5))[0], before)

    # A different backbone (another seed) must not be mixed into the same folder.
    with pytest.raises(ValueError, match="different identity"):
        features_cli.main([*args, "--seed", "1"])


def test_ranks_take_their_units(tmp_path, capsys, folder, monkeypatch):
    out = tmp_path / "feats"
    args = ["--csv", str(folder), "--images", str(folder.parent / "images"), "--out", str(out), "--unit-size", "2",
            "--limit", "5", *TINY]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    summary = _run(capsys, *args)
    assert summary["units_mine"] == 1 and not summary["complete"]  # units 0,1,2: rank 1 takes unit 1
    assert unit_paths(out, "features-000001")["done"].is_file()
    assert not unit_paths(out, "features-000000")["done"].is_file()
    monkeypatch.setenv("RANK", "0")
    summary = _run(capsys, *args)
    assert summary["units_mine"] == 2 and summary["complete"] and summary["index_rows"] == 5


def test_features_from_shards(tmp_path, capsys, folder, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    records = read_records(DatasetSpec(folder, folder.parent / "images"), require_images=True)
    write_shards(records, tmp_path / "shards", shard_size=4)
    summary = _run(capsys, "--shards", str(tmp_path / "shards"), "--out", str(tmp_path / "feats"), *TINY)
    assert summary["units_total"] == 2 and summary["features_now"] == 5 and summary["complete"]
    assert FeatureStore(tmp_path / "feats").ids == records.ids[:5]


def test_store_pickles_without_copying_features(toy_store):
    import pickle

    store = FeatureStore(toy_store)
    payload = pickle.dumps(store)
    assert len(payload) < 10_000  # the folder path, not 256 x 768 float16 values
    clone = pickle.loads(payload)
    assert len(clone) == len(store) and isinstance(clone.units[0].features, np.memmap)
    np.testing.assert_array_equal(clone.gather(np.arange(5))[0], store.gather(np.arange(5))[0])
