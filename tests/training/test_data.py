"""Dataset readers on the real benchmark CSVs, other layouts, and bad rows / bad images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch.utils.data import DataLoader

from training.data import DatasetError, DatasetSpec, ImageDataset, SkipCounter, collate_samples, read_records

from ..conftest import shared_path
from .conftest import CORRUPT_NAME, MISSING_NAME, make_image_folder


@pytest.mark.parametrize(
    ("filename", "layout", "rows", "first_id"),
    [
        ("im2gps3k_places365.csv", "im2gps3k", 2997, "1000269685_e60e9cdfb4_1125_78841376@N00.jpg"),
        ("im2gps_places365.csv", "im2gps", 237, "104123223_7410c654ba_19_19355699@N00.jpg"),
        ("yfcc4k_coordinates.csv", "yfcc4k", 4536, "10201275523.jpg"),
        ("yfcc25600_places365.csv", "yfcc26k", 25600, "45/77/3228511372.jpg"),
        ("yfcc25600_places365.csv", "mp16", 25600, "45/77/3228511372.jpg"),  # same GeoEstimation layout as MP-16
        ("im2gps3k_places365.csv", "auto", 2997, "1000269685_e60e9cdfb4_1125_78841376@N00.jpg"),
    ],
)
def test_benchmark_csvs(tmp_path, filename, layout, rows, first_id):
    csv = shared_path("benchmarks", filename)
    records = read_records(DatasetSpec(csv, tmp_path, layout))
    assert len(records) == rows and records.skipped_rows == 0
    assert records.ids[0] == first_id
    assert records.paths[0] == tmp_path / first_id  # ids with folders (YFCC26k) stay relative paths
    assert records.coords.shape == (rows, 2) and records.coords.dtype == np.float64
    assert np.all(np.abs(records.coords[:, 0]) <= 90) and np.all(np.abs(records.coords[:, 1]) <= 180)
    assert "LAT" not in records.extras.columns and len(records.extras) == rows
    raw = pd.read_csv(csv)
    np.testing.assert_allclose(records.coords, raw[["LAT", "LON"]].to_numpy())


def test_dev_ground_truth_points_at_real_files(dev_dir):
    records = read_records(DatasetSpec(dev_dir / "ground_truth.csv", dev_dir), require_images=True)
    assert len(records) == 120 and records.name == "im2gps3k-dev"
    assert all(p.is_file() for p in records.paths)


def test_other_layouts_and_bad_rows(tmp_path):
    geoclip_csv = tmp_path / "train.csv"
    geoclip_csv.write_text("IMG_FILE,LAT,LON\na/1.jpg,10,20\na/2.jpg,,20\na/3.jpg,95,0\n,1,1\na/5.jpg,x,1\na/6.jpg,-5,179.5\n")
    records = read_records(DatasetSpec(geoclip_csv, tmp_path / "imgs", "geoclip"))
    assert records.ids == ["a/1.jpg", "a/6.jpg"] and records.skipped_rows == 4
    assert records.paths[1] == tmp_path / "imgs" / "a" / "6.jpg"

    osv = tmp_path / "osv.csv"
    osv.write_text("id,latitude,longitude,country\n0012,1.5,2.5,FR\n")
    records = read_records(DatasetSpec(osv, tmp_path, "osv5m"))
    assert records.ids == ["0012"] and records.paths == [tmp_path / "0012.jpg"]  # ids stay text
    assert records.extras["country"].tolist() == ["FR"]
    assert read_records(DatasetSpec(osv, tmp_path)).ids == ["0012"]  # auto finds id/latitude/longitude

    with pytest.raises(DatasetError, match="column .LAT. is missing"):
        read_records(DatasetSpec(osv, tmp_path, "yfcc4k"))
    with pytest.raises(DatasetError, match="unknown layout"):
        read_records(DatasetSpec(osv, tmp_path, "nope"))
    with pytest.raises(DatasetError, match="--images"):
        read_records(DatasetSpec(osv, None), require_images=True)
    coords_only = read_records(DatasetSpec(osv, None))
    assert coords_only.paths == [None]


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path, dev_dir, dev_truth):
    csv = make_image_folder(tmp_path, dev_dir, dev_truth, n=3)
    records = read_records(DatasetSpec(csv, tmp_path / "images"), require_images=True)
    assert len(records) == 5
    dataset = ImageDataset(records, transform=lambda image: __import__("torch").zeros(3, 8, 8))
    counter = SkipCounter()
    seen = 0
    for batch in DataLoader(dataset, batch_size=2, collate_fn=collate_samples, num_workers=0):
        for failure in batch.failures:
            counter.add(failure.key, failure.error)
        seen += len(batch.indices)
        assert batch.pixels.shape[0] == batch.latlon.shape[0] == len(batch.coords)
    assert seen == 3
    assert counter.total == 2 and counter.counts == {"missing": 1, "unreadable": 1}
    assert any(MISSING_NAME in e for e in counter.examples) and any(CORRUPT_NAME in e for e in counter.examples)
