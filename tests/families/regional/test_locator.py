"""The regional family through the registry: contract, region restriction, errors, reference evidence."""

from __future__ import annotations

import subprocess
import sys

import pytest

from geoapp.families import registry
from geoapp.families.registry import LoadOptions
from geoapp.geo.regions import RegionError
from geoapp.models.weights import WeightsMissingError
from tests.conftest import REPO, shared_path


@pytest.fixture(scope="module")
def photo():
    return shared_path("exif-samples", "jpg", "gps", "DSCN0010.jpg")


def random_family(method: str = "cells"):
    spec = registry.get("regional")
    return spec.load(LoadOptions(device="cpu", backbone_weights="random"), **{**spec.test_options, "method": method})


def test_spec_and_cells_import_without_torch():
    code = ("import sys, geoapp.families.regional, geoapp.geo.regional_cells; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


def test_registered_and_plain_key_says_how_to_build():
    spec = registry.get("regional")
    assert "regional" in registry.keys(include_variants=False)
    assert "training.regional build" in (spec.problem() or "")
    with pytest.raises(WeightsMissingError, match="python -m training.regional build"):
        spec.load(LoadOptions(device="cpu"))


@pytest.mark.parametrize("method", ["classifier", "offset", "cells", "hybrid", "retrieval"])
def test_random_model_predicts_with_evidence_and_flags(photo, method):
    family = random_family(method)
    prediction = family.predict(photo, top_k=3, region="CH")
    assert prediction.ok and prediction.random_weights
    assert prediction.top is not None and prediction.top.country_code == "CH"
    assert 0 < sum(c.probability for c in prediction.candidates) <= 1 + 1e-9
    assert [item.key for item in prediction.evidence] == ["reference_matches"]
    assert prediction.to_dict()["model"]["family"] == "regional"


def test_region_outside_the_countries_and_unreadable_files(photo, tmp_path):
    family = random_family()
    with pytest.raises(RegionError, match="covers SE, CH only"):
        family.restrict("France")
    assert family.restrict("SE").size > 0
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    records = family.predict_batch([broken, photo], top_k=2)
    assert records[0].error and records[1].ok


def test_automatic_backbone_is_clip_when_its_weights_are_here_else_satworld(tmp_path, monkeypatch):
    from geoapp.families.regional.backbone import resolve_backbone
    from geoapp.models import weights

    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert resolve_backbone("auto") == "satworld"
    (tmp_path / weights.CLIP_VIT_L14_OPENAI.filename).write_bytes(b"weights")  # found in the weights dir
    assert weights.find(weights.CLIP_VIT_L14_OPENAI) is not None
    assert resolve_backbone("auto") == "ViT-L-14"
    assert resolve_backbone("satworld") == "satworld"  # an explicit choice stays
