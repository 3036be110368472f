"""SatWorld: renderer, splits, the shipped model through Geolocator, and a tiny end-to-end training run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from geoapp.geo.distance import pairwise_haversine_km
from training.satworld.render import Augmentation, augmented_batch, render_batch, render_crop
from training.satworld.splits import SplitConfig, make_splits


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# ---------------------------------------------------------------- renderer
def test_render_crop_shape_and_determinism() -> None:
    first = render_crop(48.85, 2.35, window_km=600, pixels=96)
    second = render_crop(48.85, 2.35, window_km=600, pixels=96)
    assert first.size == (96, 96) and first.mode == "RGB"
    assert np.array_equal(_pixels(first), _pixels(second))
    assert _pixels(first).std() > 5  # real imagery, not a flat colour
    relief = render_crop(48.85, 2.35, window_km=600, pixels=96, raster="relief")
    assert not np.array_equal(_pixels(relief), _pixels(first))


def test_augmented_batches_are_seeded() -> None:
    lat, lon = np.array([10.0, -30.0, 60.0]), np.array([20.0, 150.0, -100.0])
    one = augmented_batch(lat, lon, 600, 32, np.random.default_rng(7), Augmentation(relief_probability=0.5))
    two = augmented_batch(lat, lon, 600, 32, np.random.default_rng(7), Augmentation(relief_probability=0.5))
    other = augmented_batch(lat, lon, 600, 32, np.random.default_rng(8), Augmentation(relief_probability=0.5))
    assert one.shape == (3, 32, 32, 3) and one.dtype == np.uint8
    assert np.array_equal(one, two) and not np.array_equal(one, other)


def test_antimeridian_is_seamless() -> None:
    # Fiji straddles 180°: centring at +180 and -180 is the same place, and stepping across the
    # antimeridian changes the crop as little as stepping anywhere else.
    east = _pixels(render_crop(-17.5, 180.0, 800, 64))
    west = _pixels(render_crop(-17.5, -180.0, 800, 64))
    assert np.abs(east - west).max() <= 1
    across = np.abs(_pixels(render_crop(-17.5, 179.95, 800, 64)) - _pixels(render_crop(-17.5, -179.95, 800, 64))).mean()
    inland = np.abs(_pixels(render_crop(-17.5, 178.0, 800, 64)) - _pixels(render_crop(-17.5, 178.1, 800, 64))).mean()
    assert across <= inland + 1.0
    # Chukotka's crop centred on the antimeridian has no seam column.
    crop = _pixels(render_crop(66.0, 180.0, 800, 64)).astype(np.float64)
    column_steps = np.abs(np.diff(crop, axis=1)).mean(axis=(0, 2))
    assert column_steps[31] <= 3 * np.median(column_steps) + 2


def test_window_scale() -> None:
    # Doubling the window at twice the pixels keeps km per pixel: its centre half is the small crop.
    small = _pixels(render_crop(35.0, 139.0, 400, 64))
    large = _pixels(render_crop(35.0, 139.0, 800, 128))
    assert np.abs(large[32:96, 32:96] - small).max() <= 1
    # At the same pixel count the centre region appears at half size.
    doubled = _pixels(render_crop(35.0, 139.0, 800, 64)).astype(np.float64)
    shrunk = np.asarray(render_crop(35.0, 139.0, 400, 64).resize((32, 32), resample=2), dtype=np.float64)
    matched = np.abs(doubled[16:48, 16:48] - shrunk).mean()
    shifted = np.abs(doubled[0:32, 0:32] - shrunk).mean()
    assert matched < 6 and matched < shifted / 2


def test_rotation_and_poles() -> None:
    upright = render_batch(np.array([-5.0]), np.array([120.0]), 600, 48)[0].astype(np.int16)
    turned = render_batch(np.array([-5.0]), np.array([120.0]), 600, 48, rotation_deg=180.0)[0].astype(np.int16)
    assert np.abs(np.rot90(upright, 2) - turned).max() <= 1
    quarter = render_batch(np.array([-5.0]), np.array([120.0]), 600, 48, rotation_deg=90.0)[0].astype(np.int16)
    assert np.abs(np.rot90(upright, 1) - quarter).max() <= 1  # +90° = counter-clockwise
    for lat in (90.0, -90.0):
        pole = _pixels(render_crop(lat, 0.0, 1500, 32))
        assert pole.shape == (32, 32, 3)
    with pytest.raises(ValueError):
        render_crop(95.0, 0.0)


# ---------------------------------------------------------------- splits
@pytest.fixture(scope="module")
def small_gallery() -> np.ndarray:
    rng = np.random.default_rng(0)
    # Clustered like photo locations: a few dense cities plus scattered points.
    centres = np.array([[48.9, 2.3], [40.7, -74.0], [35.7, 139.7], [-33.9, 151.2], [51.5, -0.1]])
    clusters = centres[rng.integers(0, len(centres), 1500)] + rng.normal(0, 1.5, (1500, 2))
    scattered = np.stack([rng.uniform(-60, 70, 1500), rng.uniform(-180, 180, 1500)], axis=1)
    return np.concatenate([clusters, scattered]).astype(np.float32)


def test_splits_are_disjoint_and_buffered(small_gallery: np.ndarray) -> None:
    config = SplitConfig(seed=3, land_points=500, val_size=100, test_size=150, buffer_km=200.0)
    splits = make_splits(small_gallery, config)
    assert len(splits.test) == 150 and len(splits.val) == 100 and len(splits.train) > 1000
    # Every held-out location is at least buffer_km from every training location.
    for held_out in (splits.test, splits.val):
        nearest = pairwise_haversine_km(held_out, splits.train).min(axis=1)
        assert nearest.min() >= config.buffer_km - 0.5
    as_set = lambda a: {tuple(p) for p in a.tolist()}  # noqa: E731
    assert not as_set(splits.test) & as_set(splits.train)
    assert not as_set(splits.test) & as_set(splits.val)


def test_splits_are_seeded(small_gallery: np.ndarray) -> None:
    config = SplitConfig(seed=1, land_points=300, val_size=50, test_size=80)
    one, two = make_splits(small_gallery, config), make_splits(small_gallery, config)
    assert np.array_equal(one.test, two.test) and np.array_equal(one.train, two.train)
    other = make_splits(small_gallery, replace(config, seed=2))
    assert not np.array_equal(one.test, other.test)


# ---------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def satworld_locator():
    from geoapp import Geolocator
    from geoapp.galleries.gallery import Gallery

    full = Gallery.default()
    # Every 40th gallery point: the real distribution, quick to encode in a test.
    gallery = Gallery("mp16-every-40th", np.ascontiguousarray(full.coords[::40]), full.source)
    return Geolocator.load("satworld", device="cpu", gallery=gallery)


def test_geolocator_satworld_predicts_rendered_crop(satworld_locator) -> None:
    assert satworld_locator.describe().family == "satworld" and not satworld_locator.random_weights
    crop = render_crop(23.0, 12.0, window_km=600, pixels=224)  # the Sahara, as a user would upload it
    prediction = satworld_locator.predict(crop, top_k=5)
    assert prediction.error is None and len(prediction.candidates) == 5
    assert prediction.model["model"] == "satworld"
    region = satworld_locator.predict(crop, top_k=3, region="country:Brazil")
    from geoapp.geo.regions import parse_region

    brazil = parse_region("country:Brazil")
    assert region.region is not None
    for candidate in region.candidates:
        assert bool(np.asarray(brazil.contains(np.array([candidate.lat]), np.array([candidate.lon])))[0])
    tencrop = satworld_locator.predict(crop, top_k=3, tencrop=True)
    assert len(tencrop.candidates) == 3


def test_geolocator_satworld_text_and_gradcam(satworld_locator) -> None:
    with pytest.raises(ValueError, match="cannot map text"):
        satworld_locator.text_map("a desert")
    from geoapp.api import gradcam_for_location

    crop = render_crop(-3.0, -60.0, window_km=600, pixels=128)
    result = gradcam_for_location(satworld_locator, crop, -3.0, -60.0)
    size = satworld_locator.model.backbone.spec.preprocess.image_size
    assert result.heatmap.shape == (size, size) and np.isfinite(result.heatmap).all()
    assert result.heatmap.max() > result.heatmap.min()  # a real map over the 4x4 ViT patch grid


# ---------------------------------------------------------------- training
def test_tiny_training_beats_most_common_location(tmp_path) -> None:
    from training.satworld.train import TINY, run

    metrics = run(TINY, tmp_path / "tiny.pt", cache_dir=None)
    test = metrics["test"]
    model, baseline = test["satworld"], test["baseline_most_common"]
    assert model["geoguessr_score"] > 1.3 * baseline["geoguessr_score"]
    assert model["accuracy"]["2500"] > baseline["accuracy"]["2500"]
    assert model["accuracy"]["750"] >= 2 * baseline["accuracy"]["750"]
    assert (tmp_path / "tiny.pt").stat().st_size < 2_000_000
