"""Galleries from CSV and the location-embedding cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

from geoapp.galleries.gallery import Gallery, GalleryError, LocationEmbeddingCache


def test_default_gallery_is_the_packaged_100k():
    gallery = Gallery.default()
    assert len(gallery) == 100_000 and gallery.coords.dtype == np.float32
    assert gallery.skipped_rows == 0
    assert np.all(np.abs(gallery.coords[:, 0]) <= 90) and np.all(np.abs(gallery.coords[:, 1]) <= 180)


def test_csv_gallery_column_names_and_bad_rows(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("id,Latitude,Longitude\n1,48.85,2.35\n2,not-a-number,3\n3,95,0\n4,-33.9,151.2\n5,,\n6,nan,1\n")
    gallery = Gallery.from_csv(path)
    np.testing.assert_allclose(gallery.coords, [[48.85, 2.35], [-33.9, 151.2]], rtol=1e-6)
    assert gallery.skipped_rows == 4 and gallery.name == "g"


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("a,b\n1,2\n", "latitude and longitude"),
    ("lat,lon\nx,y\n", "no valid coordinates"),
])
def test_csv_gallery_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(GalleryError, match=message):
        Gallery.from_csv(path)


def test_cache_computes_once_and_reuses_from_disk(tmp_path):
    coords = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    calls = []

    def compute(c):
        calls.append(len(c))
        return np.ones((len(c), 4), dtype=np.float32)

    cache = LocationEmbeddingCache(tmp_path, "enc-a")
    first = cache.get(coords, compute)
    again = LocationEmbeddingCache(tmp_path, "enc-a").get(coords, compute)  # new process, same disk
    assert calls == [2] and np.array_equal(first, again)
    # Other weights -> other key -> recomputed.
    LocationEmbeddingCache(tmp_path, "enc-b").get(coords, compute)
    assert calls == [2, 2]
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_survives_corrupt_file_and_read_only_folder(tmp_path):
    coords = np.zeros((3, 2), dtype=np.float32)
    cache = LocationEmbeddingCache(tmp_path, "enc")
    cache.path_for(coords).write_bytes(b"not a numpy file")
    out = cache.get(coords, lambda c: np.zeros((3, 8), dtype=np.float32))
    assert out.shape == (3, 8)

    read_only = tmp_path / "ro"
    read_only.mkdir()
    os.chmod(read_only, 0o500)
    try:
        out = LocationEmbeddingCache(read_only / "sub", "enc").get(coords, lambda c: np.ones((3, 8), dtype=np.float32))
        assert out.shape == (3, 8)
    finally:
        os.chmod(read_only, 0o700)
