"""WebDataset-style shards: write, read back, resume, damaged shards, rank/worker splits."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from PIL import Image

from training.data import DatasetSpec, SkipCounter, collate_samples, read_records
from training.shards import ShardImageDataset, iter_shard, list_shards, split_for_worker, write_shards

from .conftest import make_image_folder


@pytest.fixture()
def records(tmp_path, dev_dir, dev_truth):
    csv = make_image_folder(tmp_path / "src", dev_dir, dev_truth, n=4)
    # One PNG too: it must be re-encoded as JPEG.
    png = tmp_path / "src" / "images" / "picture.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(png)
    with open(csv, "a") as f:
        f.write("picture.png,someone,1.5,2.5,,,,,,\n")
    return read_records(DatasetSpec(csv, tmp_path / "src" / "images"), require_images=True)


def test_round_trip(tmp_path, records):
    out = tmp_path / "shards"
    manifest = write_shards(records, out, shard_size=3)
    files = list_shards(out)
    assert [f.name for f in files] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]  # 7 rows
    assert sum(s["written"] for s in manifest["shards"]) == 5  # 4 photos + the PNG
    assert sum(s["skipped"]["total"] for s in manifest["shards"]) == 2  # corrupt + missing
    assert json.loads((out / "shards.json").read_text())["samples"] == 7

    with tarfile.open(files[0]) as tar:
        names = tar.getnames()
    assert names[:2] == ["000000000.jpg", "000000000.json"]  # WebDataset pairs: {key}.jpg then {key}.json

    items = [item for f in files for item in iter_shard(f)]
    assert len(items) == 5
    first = items[0]
    assert first.image == records.paths[0].read_bytes()  # JPEGs stored byte for byte
    assert first.meta["id"] == records.ids[0]
    assert (first.meta["lat"], first.meta["lon"]) == tuple(records.coords[0])
    assert first.meta["AUTHOR"] == records.extras["AUTHOR"][0]
    png_item = next(i for i in items if i.meta["id"] == "picture.png")
    assert png_item.image[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(png_item.image)).size == (40, 30)

    # Streaming dataset: decoded, transformed, collated.
    dataset = ShardImageDataset(files, transform=lambda image: __import__("torch").zeros(3, 4, 4))
    batch = collate_samples(list(dataset))
    assert batch.pixels.shape == (5, 3, 4, 4) and batch.failures == []


def test_resume_keeps_finished_shards(tmp_path, records):
    out = tmp_path / "shards"
    write_shards(records, out, shard_size=3)
    first = out / "shard-000000.tar"
    stamp = first.stat().st_mtime_ns
    (out / "shard-000001.tar").unlink()
    manifest = write_shards(records, out, shard_size=3)
    assert first.stat().st_mtime_ns == stamp and manifest["shards"][0]["resumed"]
    assert (out / "shard-000001.tar").is_file() and not list(out.glob("*.tmp"))


def test_damaged_shard_is_counted_not_fatal(tmp_path, records):
    out = tmp_path / "shards"
    write_shards(records, out, shard_size=10)
    shard = out / "shard-000000.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated mid-file
    skipped = SkipCounter()
    items = list(iter_shard(shard, skipped))
    assert 0 < len(items) < 5 and skipped.total >= 1

    # An image member that does not decode comes back as a failed sample.
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        for name, payload in (("k1.jpg", b"\xff\xd8\xffnot a jpeg"), ("k1.json", b'{"id": "x", "lat": 1, "lon": 2}'),
                              ("k2.json", b'{"id": "lonely", "lat": 1, "lon": 2}')):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    batch = collate_samples(list(ShardImageDataset([bad], transform=lambda image: image)))
    assert batch.latlon.shape[0] == 0 and len(batch.failures) == 2  # undecodable + incomplete pair


def test_split_for_rank():
    items = list(range(10))
    shares = [split_for_worker(items, rank, 3) for rank in range(3)]
    assert sorted(i for share in shares for i in share) == items
    assert shares[1] == [1, 4, 7]
