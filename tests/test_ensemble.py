"""Ensemble of TransLocator and GeoCLIP: the mixing rule, and the ensemble end to end on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geoapp.families.ensemble.locator import ENSEMBLE_RULE, EnsembleGeolocator, mixture
from geoapp.api import gradcam_for_location
from geoapp.geo.regions import parse_region
from geoapp.imaging import ImageLoadError
from geoapp.families.translocator.segmentation import load_segmenter
from geoapp.families.translocator.network import TransLocatorConfig
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING
from geoapp.families.translocator.locator import TransLocatorGeolocator
from geoapp.families.translocator.results import TransLocatorPrediction

from .conftest import shared_path

PHOTO = "1008845063_ace4ef829f_1204_97522422@N00.jpg"


def test_mixture_shares_cell_mass_and_mixes_linearly():
    logits = np.array([2.0, 0.0, 0.0, 1.0])
    cells = np.array([0, 0, 1, 2])  # two pool points share cell 0
    cell_probability = np.array([0.6, 0.3, 0.1, 0.0])
    p, q_geoclip, q_translocator = mixture(logits, cells, cell_probability, 0.5)
    assert q_geoclip == pytest.approx(np.exp(logits) / np.exp(logits).sum())
    # Cell 0's 0.6 is split between its two points, not counted twice.
    assert q_translocator == pytest.approx(np.array([0.3, 0.3, 0.3, 0.1]))
    assert p == pytest.approx(0.5 * q_geoclip + 0.5 * q_translocator)
    assert p.sum() == pytest.approx(1.0)
    assert mixture(logits, cells, cell_probability, 1.0)[0] == pytest.approx(q_geoclip)
    assert mixture(logits, cells, cell_probability, 0.0)[0] == pytest.approx(q_translocator)
    # No pool point in a cell with mass: GeoCLIP alone decides (no division by zero).
    p_only, _, q_none = mixture(logits, np.array([3, 3, 3, 3]), cell_probability, 0.5)
    assert p_only == pytest.approx(q_geoclip) and not q_none.any()
    with pytest.raises(ValueError, match="geoclip_weight"):
        mixture(logits, cells, cell_probability, 1.5)


@pytest.fixture(scope="module")
def cell_locator():
    torch.manual_seed(0)
    return TransLocatorGeolocator.load(backbone_weights="random", config=TransLocatorConfig.tiny(img_size=64, patch_size=16),
                                       segmenter=load_segmenter("tiny-test", weights="random", device="cpu"), device="cpu")


@pytest.fixture(scope="module")
def ensemble(tiny_locator, cell_locator):
    return EnsembleGeolocator(tiny_locator, cell_locator)


def test_ensemble_end_to_end_with_random_weights(ensemble, tmp_path):
    photo = shared_path("im2gps3k-dev", PHOTO)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    result, failed = ensemble.predict_batch([photo, broken], top_k=5)
    assert not failed.ok and failed.error and failed.model["model"] == "ensemble"  # recorded, batch carried on
    assert isinstance(result, TransLocatorPrediction) and result.ok
    assert result.random_weights and RANDOM_WEIGHTS_WARNING in result.warnings
    assert 1 <= len(result.candidates) <= 5
    probabilities = [c.probability for c in result.candidates]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-9
    assert len(result.surface) == result.parameters["candidate_points"] <= 256 + 64
    assert result.surface.probability.sum() == pytest.approx(1.0)
    # TransLocator's evidence rides along.
    assert result.segmentation is not None and result.scene is not None and result.branch_weights
    data = json.loads(json.dumps(result.to_dict()))
    assert data["model"]["model"] == "ensemble" and data["model"]["rule"] == ENSEMBLE_RULE
    assert set(data["model"]["members"]) == {"geoclip", "translocator"}
    with pytest.raises(ImageLoadError):
        ensemble.predict(broken)


def test_geoclip_weight_one_ranks_by_geoclip_similarity(tiny_locator, cell_locator):
    photo = shared_path("im2gps3k-dev", PHOTO)
    only_geoclip = EnsembleGeolocator(tiny_locator, cell_locator, geoclip_weight=1.0)
    result = only_geoclip.predict(photo, top_k=3, merge_km=0)
    pool = np.stack([result.surface.lat, result.surface.lon], axis=1)
    embedding = tiny_locator.image_embeddings(tiny_locator.pixels(tiny_locator.load_image(photo)))
    logits = tiny_locator.location_logits(embedding, pool)[0].numpy()
    best = pool[int(np.argmax(logits))]
    assert (result.top.lat, result.top.lon) == pytest.approx(tuple(best), abs=1e-4)
    mixed = EnsembleGeolocator(tiny_locator, cell_locator, geoclip_weight=0.0).predict(photo, top_k=3, merge_km=0)
    # Pure TransLocator share: the top point lies in one of TransLocator's most likely cells.
    cells = cell_locator.predict(photo, top_k=10, merge_km=0)
    top_cells = {int(cell_locator.cells.fine.assign([c.lat], [c.lon])[0]) for c in cells.candidates}
    assert int(cell_locator.cells.fine.assign([mixed.top.lat], [mixed.top.lon])[0]) in top_cells
    with pytest.raises(ValueError):
        EnsembleGeolocator(tiny_locator, cell_locator, geoclip_weight=-0.1)
    with pytest.raises(ValueError, match="TransLocator"):
        EnsembleGeolocator(tiny_locator, tiny_locator)


def test_ensemble_region_and_gradcam(ensemble):
    photo = shared_path("im2gps3k-dev", PHOTO)
    europe = parse_region("Europe")
    result = ensemble.predict(photo, top_k=5, region="Europe")
    assert result.ok and result.region is not None
    lat = np.array([c.lat for c in result.candidates])
    lon = np.array([c.lon for c in result.candidates])
    assert np.asarray(europe.contains(lat, lon)).all()
    cam = gradcam_for_location(ensemble, photo, result.top.lat, result.top.lon)
    assert np.isfinite(cam.heatmap).all() and cam.heatmap.max() == pytest.approx(1.0)
    assert cam.heatmap.std() > 0 and cam.random_weights
