"""TransLocator predictor end to end (tiny random model + tiny random segmenter, real photos) and Grad-CAM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geoapp import Geolocator
from geoapp.api import gradcam_for_location
from geoapp.families.translocator.explain import gradcam_translocator
from geoapp.geo.regions import RegionError, parse_region
from geoapp.imaging import ImageLoadError
from geoapp.families.translocator.places365 import SCENE3_NAMES
from geoapp.families.translocator.segmentation import load_segmenter
from geoapp.families.translocator.network import TransLocatorConfig, build_translocator, save_translocator_checkpoint
from geoapp.models.weights import WeightsMissingError
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING
from geoapp.families.translocator.locator import TransLocatorGeolocator
from geoapp.families.translocator.results import TransLocatorPrediction

from .conftest import shared_path
from .families.translocator.test_network import tiny_cells

PHOTOS = ("1008845063_ace4ef829f_1204_97522422@N00.jpg", "103404365_f852148f5b_34_73293249@N00.jpg",
          "104138228_eac9608bce_34_19355699@N00.jpg")
TINY = TransLocatorConfig.tiny(img_size=64, patch_size=16)


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter("tiny-test", weights="random", device="cpu")


@pytest.fixture(scope="module")
def locator(segmenter):
    """A random tiny TransLocator over the default cells (GeoCLIP gallery through the partitioner)."""
    torch.manual_seed(0)
    return TransLocatorGeolocator.load(backbone_weights="random", config=TINY, segmenter=segmenter, device="cpu")


def photo(index: int = 0):
    return shared_path("im2gps3k-dev", PHOTOS[index])


def test_predict_batch_end_to_end_with_random_weights(locator, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    paths = [photo(0), broken, photo(1), photo(2)]
    results = locator.predict_batch(paths, top_k=5, batch_size=2)
    assert [r.source for r in results] == [str(p) for p in paths]
    assert not results[1].ok and results[1].error and not results[1].candidates  # recorded, batch carried on
    for result in (results[0], results[2], results[3]):
        assert isinstance(result, TransLocatorPrediction) and result.ok
        assert result.random_weights and RANDOM_WEIGHTS_WARNING in result.warnings
        assert 1 <= len(result.candidates) <= 5
        probabilities = [c.probability for c in result.candidates]
        assert sum(probabilities) <= 1 + 1e-9 and probabilities == sorted(probabilities, reverse=True)
        assert result.candidates[0].place_label  # place names on cell centres
        # The surface is the softmax over every fine cell.
        assert len(result.surface) == len(locator.cells.fine)
        assert result.surface.probability.sum() == pytest.approx(1.0)
        seg = result.segmentation
        assert seg.class_map.shape == (64, 64) and seg.colour_map.shape == (64, 64, 3) and seg.random_weights
        assert seg.legend and sum(share for _, share in seg.shares) == pytest.approx(1.0)
        assert seg.png().startswith(b"\x89PNG")
        assert result.scene.label3 in SCENE3_NAMES and 0 < result.scene.probability <= 1
        assert sum(result.branch_weights.values()) == pytest.approx(1.0)
        data = json.loads(json.dumps(result.to_dict()))
        assert data["scene"]["label365"] == result.scene.label365 and data["segmentation"]["legend"]
        assert data["random_weights"] and data["model"]["model"] == "translocator"
    described = locator.describe().to_dict()
    assert described["random_weights"] and described["geocells"]["fine"] == len(locator.cells.fine)
    with pytest.raises(ImageLoadError):
        locator.predict(broken)


def test_region_restriction_keeps_cells_inside_and_renormalises(locator):
    world = locator.predict(photo(0), top_k=3)
    france = locator.predict(photo(0), top_k=3, region="FR")
    region = parse_region("FR")
    inside = np.asarray(region.contains(locator.cells.fine.lat, locator.cells.fine.lon), dtype=bool)
    assert 0 < inside.sum() < inside.size
    assert len(france.surface) == int(inside.sum()) and france.surface.probability.sum() == pytest.approx(1.0)
    assert all(region.contains(c.lat, c.lon) for c in france.candidates)
    # Same as the worldwide probabilities restricted to the cells inside, renormalised.
    expected = world.surface.probability[inside] / world.surface.probability[inside].sum()
    assert np.allclose(np.sort(france.surface.probability), np.sort(expected))
    assert france.parameters["region"] == "country:FR" and france.region == region
    with pytest.raises(RegionError, match="no|none"):
        locator.predict(photo(0), region="circle:-45,-140,50")  # open Pacific: no cell centre


def test_tencrop_averages_logits_before_the_softmax(locator):
    loaded = locator.load_image(photo(1), tencrop=True)
    crops = locator.crops(loaded.image, tencrop=True)
    assert crops.shape == (10, 3, 64, 64) and crops.dtype == torch.uint8
    rgb, seg, _ = locator.model_inputs(crops)
    per_crop = locator.forward(rgb, seg, 1)["fine"]
    averaged = locator.forward(rgb, seg, 10)["fine"][0]
    assert torch.allclose(averaged, per_crop.mean(dim=0), atol=1e-5)
    result = locator.predict(photo(1), tencrop=True)
    assert np.allclose(result.surface.probability, averaged.double().softmax(dim=0).numpy(), atol=1e-6)
    assert result.parameters["tencrop"] and result.segmentation.class_map.shape == (64, 64)


def test_geolocator_load_dispatches_to_a_checkpoint(tmp_path, segmenter):
    cells = tiny_cells()
    model = build_translocator(TransLocatorConfig.tiny(img_size=64, patch_size=16, cell_counts=cells.sizes), "random")
    path = save_translocator_checkpoint(model, tmp_path / "translocator.pt", cells, random_weights=False)
    loaded = Geolocator.load("translocator", device="cpu", checkpoint=path, segmenter=segmenter)
    assert isinstance(loaded, TransLocatorGeolocator) and loaded.cells.sizes == cells.sizes
    assert not loaded.model.random_weights
    result = loaded.predict(photo(2), top_k=2)
    assert result.model["checkpoint"] == str(path) and result.model["heads_sha256"] != "random"
    assert result.random_weights  # the segmenter is random: still flagged
    assert result.candidates[0].lat == pytest.approx(float(cells.fine.lat[int(np.argmax(result.surface.probability))]))
    same = Geolocator.load("translocator", device="cpu", backbone_weights=str(path), segmenter=segmenter)
    assert same.weights_sha256 == loaded.weights_sha256


def test_missing_trained_checkpoint_fails_fast_with_the_fix(monkeypatch, tmp_path, no_network):
    import geoapp.families.translocator.locator as module

    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(module, "ASSET_CHECKPOINT", tmp_path / "assets" / "translocator.pt")
    with pytest.raises(WeightsMissingError) as error:
        Geolocator.load("translocator", device="cpu")
    assert no_network == []
    assert "translocator.pt" in str(error.value) and "random" in str(error.value)


def test_vit_mt_predictor_needs_no_segmenter():
    torch.manual_seed(0)
    locator = TransLocatorGeolocator.load(backbone_weights="random", device="cpu",
                                          config=TransLocatorConfig.tiny(img_size=64, patch_size=16, dual_branch=False))
    result = locator.predict(photo(0), top_k=2)
    assert result.segmentation is None and result.branch_weights == {"rgb": 1.0, "segmentation": 0.0}
    assert result.model["variant"] == "translocator-vit-mt" and result.random_weights
    cams = gradcam_translocator(locator, photo(0))
    assert cams.segmentation is None and np.isfinite(cams.rgb.heatmap).all()


def _check_heatmap(heat: np.ndarray) -> None:
    assert heat.shape == (64, 64) and np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat.std() > 1e-3  # not constant


def test_gradcam_on_both_branches(locator):
    top = locator.predict(photo(0), top_k=1)
    cams = gradcam_translocator(locator, photo(0))
    fine_top = int(np.argmax(top.surface.probability))
    assert cams.cell_index == fine_top
    for result in (cams.rgb, cams.segmentation):
        _check_heatmap(result.heatmap)
        assert result.random_weights and result.overlay.size == (64, 64)
    assert "RGB" in cams.rgb.target and "segmentation" in cams.segmentation.target
    assert not np.allclose(cams.rgb.heatmap, cams.segmentation.heatmap)
    other = gradcam_translocator(locator, photo(0), cell_index=(fine_top + 7) % len(locator.cells.fine))
    assert not np.allclose(other.rgb.heatmap, cams.rgb.heatmap)  # the target changes the explanation
    # The generic entry point picks the cell nearest to the candidate and returns the RGB map.
    via_location = gradcam_for_location(locator, photo(0), cams.lat, cams.lon)
    assert np.allclose(via_location.heatmap, cams.rgb.heatmap)
    with pytest.raises(ValueError, match="cell_index"):
        gradcam_translocator(locator, photo(0), cell_index=10**6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_prediction_matches_cpu_and_gradcam_runs(locator):
    import copy

    gpu_segmenter = load_segmenter("tiny-test", weights="random", device="cuda")  # seeded: same weights as on CPU
    gpu = TransLocatorGeolocator(copy.deepcopy(locator.model), locator.cells, gpu_segmenter, torch.device("cuda"),
                                 locator.weights_sha256, locator.source)
    on_gpu, on_cpu = gpu.predict(photo(0), top_k=3), locator.predict(photo(0), top_k=3)
    assert on_gpu.model["device"].startswith("cuda")
    np.testing.assert_allclose(on_gpu.surface.probability, on_cpu.surface.probability, atol=2e-3)
    assert gpu.predict(photo(0), tencrop=True).ok
    cams = gradcam_translocator(gpu, photo(0))
    assert np.isfinite(cams.rgb.heatmap).all() and np.isfinite(cams.segmentation.heatmap).all()
