"""Places365 scene labeller: random model, CSAIL checkpoint round trip, hierarchy, fast offline failure."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from geoapp.models import weights
from geoapp.families.translocator.places365 import PLACES365_CATEGORIES, PLACES365_NAMES, display_name
from geoapp.families.translocator.scenes import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SceneResult,
    load_scene_labeller,
    scene_hierarchy,
)
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

from ...conftest import shared_path


@pytest.fixture(scope="module")
def random_labeller():
    return load_scene_labeller("resnet18", weights="random", device="cpu")


def _csail_checkpoint(path, arch: str = "resnet18", legacy: bool = True) -> torch.nn.Module:
    """A random torchvision ResNet saved the way CSAIL's Places365 checkpoints are (DataParallel names)."""
    torch.manual_seed(1)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=365).eval()
    checkpoint = {"epoch": 90, "arch": arch, "best_prec1": 54.65,
                  "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)  # 2017 files are the legacy format
    return model


def test_random_labeller_output_is_sane(random_labeller):
    assert random_labeller.random_weights and random_labeller.warnings == [RANDOM_WEIGHTS_WARNING]
    assert random_labeller.identity["sha256"] == "random"
    results = random_labeller.predict(torch.randint(0, 256, (3, 3, 50, 70), dtype=torch.uint8))
    assert len(results) == 3 and all(isinstance(r, SceneResult) for r in results)
    _, _, names16, names3 = scene_hierarchy()
    for r in results:
        assert r.label365 == PLACES365_NAMES[r.index365] and r.top5[0] == (r.label365, r.probability)
        probabilities = [p for _, p in r.top5]
        assert len(r.top5) == 5 and probabilities == sorted(probabilities, reverse=True)
        # The chosen group's summed probability is at least that of the top category's own group.
        assert 0 < r.probability <= r.probability16 + 1e-6 and r.probability16 <= 1 + 1e-6
        assert r.label16 == names16[r.index16] and r.label3 == names3[r.index3] and r.label3 in ("indoor", "nature", "urban")
        assert 1 / 3 <= r.probability3 <= 1  # the largest of three shares that sum to one
    probs = random_labeller.probabilities(torch.rand(2, 3, 20, 20))
    assert probs.shape == (2, 365) and torch.allclose(probs.sum(-1), torch.ones(2))
    single = random_labeller.predict_pil(Image.new("RGBA", (64, 48), (10, 200, 30, 128)))
    assert isinstance(single, SceneResult) and isinstance(single.to_dict()["top5"], list)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        random_labeller.predict(torch.zeros(3, 20, 20))


@pytest.mark.parametrize("legacy", [True, False])
def test_csail_checkpoint_round_trip(tmp_path, legacy):
    path = tmp_path / "resnet18_places365.pth.tar"
    reference = _csail_checkpoint(path, legacy=legacy)
    labeller = load_scene_labeller("resnet18", weights=path, device="cpu")
    assert not labeller.random_weights and labeller.identity["source"] == f"local:{path}"
    assert len(labeller.identity["sha256"]) == 64
    images = torch.rand(2, 3, 224, 224)  # already at 224: the resize is the identity
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference((images - mean) / std).softmax(-1)
    assert torch.equal(labeller.probabilities(images), expected)


def test_default_checkpoint_found_in_torch_hub_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "w"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    assert weights.torch_hub_checkpoints_dir() == folder
    _csail_checkpoint(folder / "resnet18_places365.pth.tar")
    labeller = load_scene_labeller(device="cpu")
    assert labeller.identity["source"] == weights.PLACES365_RESNET18.source and not labeller.random_weights


def test_wrong_or_broken_checkpoints_are_readable_errors(tmp_path):
    _csail_checkpoint(tmp_path / "r50.pth.tar", arch="resnet50", legacy=False)
    with pytest.raises(ValueError, match="resnet50"):
        load_scene_labeller("resnet18", weights=tmp_path / "r50.pth.tar")
    (tmp_path / "broken.pth.tar").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_scene_labeller("resnet18", weights=tmp_path / "broken.pth.tar")
    with pytest.raises(weights.WeightsMissingError, match="not found"):
        load_scene_labeller("resnet18", weights=tmp_path / "absent.pth.tar")
    with pytest.raises(ValueError, match="resnet18, resnet50"):
        load_scene_labeller("vgg16")


def test_missing_checkpoint_fails_fast_with_url_and_command(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(weights.WeightsMissingError) as info:
        load_scene_labeller("resnet50")
    assert no_network == []
    message = str(info.value)
    assert "http://places2.csail.mit.edu/models_places365/resnet50_places365.pth.tar" in message
    assert "python -m geoapp weights download places365-resnet50" in message


def test_category_names():
    assert len(PLACES365_CATEGORIES) == 365 == len(set(PLACES365_CATEGORIES))
    assert list(PLACES365_CATEGORIES) == sorted(PLACES365_CATEGORIES)  # the official list is alphabetical
    assert PLACES365_CATEGORIES[0] == "/a/airfield" and PLACES365_NAMES[0] == "airfield"
    assert PLACES365_CATEGORIES[36] == "/b/bamboo_forest" and PLACES365_CATEGORIES[364] == "/z/zen_garden"
    assert display_name("/a/apartment_building/outdoor") == "apartment building (outdoor)"
    assert display_name("/u/underwater/ocean_deep") == "underwater (ocean deep)"


def test_hierarchy_covers_all_classes():
    map365to16, map16to3, names16, names3 = scene_hierarchy()
    assert map365to16.shape == (365,) and map16to3.shape == (16,)
    assert map365to16.min() >= 0 and map365to16.max() < 16 and len(names16) == 16
    assert names3 == ("indoor", "nature", "urban")
    # Places365's own level-2 order: 6 indoor, 4 natural, 6 man-made groups.
    assert map16to3.tolist() == [0] * 6 + [1] * 4 + [2] * 6
    names = dict(zip(PLACES365_CATEGORIES, map365to16))
    assert map16to3[names["/k/kitchen"]] == 0 and map16to3[names["/m/mountain"]] == 1
    assert map16to3[names["/d/downtown"]] == 2 and names3[map16to3[names["/b/beach"]]] == "nature"
    map365to16[0] = 99  # callers get copies
    assert scene_hierarchy()[0][0] != 99


def test_shipped_hierarchy_agrees_with_im2gps3k_labels():
    table = pd.read_csv(shared_path("benchmarks", "im2gps3k_places365.csv"))
    map365to16, map16to3, _, _ = scene_hierarchy()
    s365, s16, s3 = (table[c].to_numpy() for c in ("S365_Label", "S16_Label", "S3_Label"))
    assert np.mean(map365to16[s365] == s16) > 0.85
    assert np.mean(map16to3[s16] == s3) > 0.95
    assert np.mean(map16to3[map365to16[s365]] == s3) > 0.9


def test_shipped_hierarchy_is_what_the_script_derives():
    from training import scene_hierarchy as script

    paths = [shared_path("benchmarks", name) for name in script.DEFAULT_CSVS]
    derived = script.derive(paths)
    shipped365, shipped16, _, _ = scene_hierarchy()
    assert np.array_equal(derived.map365to16, shipped365) and np.array_equal(derived.map16to3, shipped16)
    assert script.main(["--check"]) == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_labeller_matches_cpu(random_labeller):
    gpu = load_scene_labeller("resnet18", weights="random", device="cuda")
    images = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(gpu.probabilities(images).cpu(), random_labeller.probabilities(images),
                               atol=1e-4, rtol=1e-3)
    assert [r.index3 for r in gpu.predict(images)] == [r.index3 for r in random_labeller.predict(images)]
