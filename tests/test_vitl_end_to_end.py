"""The real ViT-L/14 architecture (random weights) through the whole pipeline."""

from __future__ import annotations

import pytest

from .conftest import shared_path

pytestmark = pytest.mark.vitl


@pytest.fixture(scope="module")
def vitl_locator(tiny_locator):
    from geoapp import Geolocator

    tiny_locator.candidate_set()  # the gallery cache (same heads) is shared with the tiny locator
    return Geolocator.load(backbone_weights="random", device="cpu")


def test_vitl_random_predictions_are_flagged_and_consistent(vitl_locator):
    photos = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[:2]
    assert vitl_locator.identity.backbone == "ViT-L-14"
    assert sum(p.numel() for p in vitl_locator.model.backbone.parameters()) > 400_000_000
    batch = vitl_locator.predict_batch(photos, top_k=3, batch_size=2)
    single = vitl_locator.predict(photos[1], top_k=3)
    assert all(p.ok and p.random_weights for p in batch)
    assert [c.probability for c in batch[1].candidates] == pytest.approx([c.probability for c in single.candidates], rel=1e-3)
    assert batch[0].to_dict()["model"]["backbone_weights"] == "random"


def test_vitl_gradcam_and_text(vitl_locator):
    from geoapp.api import gradcam_for_location

    photo = shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")
    cam = gradcam_for_location(vitl_locator, photo, 48.85, 2.35)
    assert cam.heatmap.shape == (224, 224) and cam.heatmap.std() > 0
    query = vitl_locator.text_map("snowy mountains", top_k=3)
    assert len(query.candidates) == 3 and query.random_weights
