"""Fixtures for the training tests: small image folders built from ../shared photos, toy features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ..conftest import shared_path

CORRUPT_NAME = "corrupt.jpg"
MISSING_NAME = "missing.jpg"


@pytest.fixture(scope="session")
def dev_dir() -> Path:
    return shared_path("im2gps3k-dev")


@pytest.fixture(scope="session")
def dev_truth(dev_dir: Path) -> pd.DataFrame:
    return pd.read_csv(dev_dir / "ground_truth.csv", dtype={"IMG_ID": str})


def make_image_folder(root: Path, dev_dir: Path, dev_truth: pd.DataFrame, n: int, corrupt: bool = True,
                      missing: bool = True) -> Path:
    """``root/images`` with ``n`` dev photos (symlinks, nothing copied), a corrupt JPEG, and a CSV that
    also lists a missing file. Returns the CSV path (Im2GPS3k layout)."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = dev_truth.head(n).copy()
    for name in rows["IMG_ID"]:
        link = images / name
        if not link.exists():
            link.symlink_to(dev_dir / name)
    extra = []
    if corrupt:
        # A JPEG header followed by garbage: the decoder must fail on it.
        (images / CORRUPT_NAME).write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
        extra.append({"IMG_ID": CORRUPT_NAME, "AUTHOR": "x", "LAT": 10.0, "LON": 20.0})
    if missing:
        extra.append({"IMG_ID": MISSING_NAME, "AUTHOR": "x", "LAT": -10.0, "LON": -20.0})
    frame = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
    csv = root / "truth.csv"
    frame.to_csv(csv, index=False)
    return csv


def toy_features(n: int = 256, dim: int = 768, seed: int = 0, clusters: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Features that carry their location: a fixed random projection of the location's 3-D unit vector
    plus noise, for points around ``clusters`` world cities. A toy problem the heads can learn."""
    rng = np.random.default_rng(seed)
    centres = np.array([[48.85, 2.35], [40.71, -74.0], [35.68, 139.69], [-33.87, 151.21], [-22.9, -43.2],
                        [30.04, 31.24], [55.75, 37.62], [1.35, 103.82]])[:clusters]
    which = rng.integers(0, len(centres), n)
    coords = centres[which] + rng.normal(0, 0.5, (n, 2))
    lat, lon = np.radians(coords).T
    unit = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
    projection = rng.normal(0, 1, (3, dim))
    features = unit @ projection + rng.normal(0, 0.1, (n, dim))
    return features.astype(np.float32), coords.astype(np.float32)


@pytest.fixture()
def toy_store(tmp_path: Path) -> Path:
    from training.features import write_feature_store

    features, coords = toy_features()
    out = tmp_path / "toy-features"
    write_feature_store(out, features, coords, unit_size=100)
    return out


@pytest.fixture()
def small_toy_store(tmp_path: Path) -> Path:
    """96 toy samples: for tests that run whole epochs."""
    from training.features import write_feature_store

    features, coords = toy_features(n=96, seed=1)
    out = tmp_path / "small-toy-features"
    write_feature_store(out, features, coords, unit_size=50)
    return out


@pytest.fixture(scope="session")
def small_gallery_csv(tmp_path_factory: pytest.TempPathFactory, dev_truth: pd.DataFrame) -> Path:
    """A 400-point gallery: 300 of GeoCLIP's 100K points plus points near the dev photos' truths."""
    from geoapp.galleries.gallery import Gallery

    rng = np.random.default_rng(0)
    coords = Gallery.default().coords
    picked = coords[rng.choice(len(coords), 300, replace=False)]
    near = dev_truth[["LAT", "LON"]].to_numpy()[:100] + rng.normal(0, 0.05, (100, 2))
    path = tmp_path_factory.mktemp("gallery") / "small_gallery.csv"
    pd.DataFrame(np.concatenate([picked, near]), columns=["LAT", "LON"]).to_csv(path, index=False)
    return path
