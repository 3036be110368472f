"""The engines behind the family contract: same top places as torch on the shared photos, the runtime in every
result's identity, int8 refused without a passed gate (API and CLI), Grad-CAM saying it runs on torch."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import numpy as np
import pytest
import torch

from geoapp import Geolocator
from geoapp.results import formats
from geoapp.families import LoadOptions, registry
from geoapp.runtime.gates import run_gate
from geoapp.runtime.images import ImageSet
from geoapp.runtime.request import RuntimeUnavailableError
from tests.conftest import shared_path

ENGINES = (("onnx", "onnxruntime"), ("openvino", "openvino"))


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory):
    """One engine cache for the module (each tower is exported and checked once) and a small gallery."""
    folder = tmp_path_factory.mktemp("runtime-families")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEOAPP_CACHE_DIR", str(folder / "cache"))
        from geoapp.galleries.gallery import Gallery

        gallery = folder / "gallery.csv"
        coords = Gallery.default().coords[::50]  # 2,000 real photo locations: quick to embed
        gallery.write_text("LAT,LON\n" + "".join(f"{lat:.6f},{lon:.6f}\n" for lat, lon in coords))
        yield gallery


def photos() -> list[str]:
    return [str(p) for p in sorted(shared_path("streetview").glob("*.jpg"))]


def places(predictions) -> list[list[tuple[float, float]]]:
    return [[(round(c.lat, 4), round(c.lon, 4)) for c in p.candidates] for p in predictions]


def load(model: str, gallery, **extras):
    options = {"backbone": "tiny-test", "backbone_weights": "random"} if model == "geoclip" else {}
    torch.manual_seed(0)  # random test weights: the same model for every engine
    return Geolocator.load(model, device="cpu", gallery=str(gallery), **options, **extras)


@pytest.mark.parametrize("model", ["satworld", "geoclip"])
@pytest.mark.parametrize("engine,label", ENGINES)
def test_same_top_places_as_torch_on_the_shared_photos(engine_cache, no_network, model, engine, label):
    torch_family = load(model, engine_cache)
    engine_family = load(model, engine_cache, runtime=engine)
    assert engine_family.tower.runtime == label
    inputs = photos()
    expected = torch_family.predict_batch(inputs, top_k=5)
    got = engine_family.predict_batch(inputs, top_k=5)
    assert all(p.ok for p in got) and len(got) == len(inputs) == 6
    assert places(got) == places(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose([c.probability for c in a.candidates], [c.probability for c in b.candidates],
                                   atol=1e-4)


def test_runtime_is_in_every_shown_identity(engine_cache):
    family = load("satworld", engine_cache, runtime="onnx")
    prediction = family.predict(photos()[0], top_k=2)
    assert (prediction.model["runtime"], prediction.model["precision"]) == ("onnxruntime", "fp32")
    assert prediction.model["runtime_note"].startswith("parity gate passed")
    shown = "[fp32 image tower on onnxruntime]"
    assert prediction.model["weights"].endswith(shown) and shown in family.describe().summary()
    record = formats.to_records([prediction])[0]
    assert shown in record["weights"] and json.loads(record["model_json"])["runtime"] == "onnxruntime"
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([prediction]))))
    assert all(shown in row["backbone_weights"] for row in rows)
    default = load("satworld", engine_cache).predict(photos()[0], top_k=2)
    assert (default.model["runtime"], default.model["precision"]) == ("torch", "fp32")
    assert "image tower" not in default.model["weights"]


def test_map_tile_photo_encoder_runs_on_an_engine(engine_cache):
    spec = registry.get("maptiles")
    extras = {**spec.test_options, "cache_dir": None}
    torch_family = spec.load(LoadOptions(device="cpu", backbone_weights="random", extras=extras))
    engine_family = spec.load(LoadOptions(device="cpu", backbone_weights="random",
                                          extras={**extras, "runtime": "openvino"}))
    assert engine_family.describe().runtime == "openvino"
    inputs = photos()[:3]
    assert places(engine_family.predict_batch(inputs, top_k=3)) == places(torch_family.predict_batch(inputs, top_k=3))


def test_gradcam_says_it_runs_on_torch(engine_cache):
    family = load("satworld", engine_cache, runtime="onnx")
    maps = family.explain(photos()[0], 48.85, 2.35)
    assert "Grad-CAM computed on the torch fp32 model; predictions ran on onnxruntime fp32" in maps["photo"].target
    plain = load("satworld", engine_cache).explain(photos()[0], 48.85, 2.35)
    assert "Grad-CAM computed" not in plain["photo"].target


def run_main(*args: str) -> tuple[int, str, str]:
    from geoapp.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def satworld_gate(engine_cache):
    """SatWorld's int8 gate file on onnx: absent before the test and removed after it (tests run in any order)."""
    from geoapp.runtime.gates import gate_path

    path = gate_path(load("satworld", engine_cache).tower.source, "onnx")
    path.unlink(missing_ok=True)
    yield
    path.unlink(missing_ok=True)


def test_int8_is_refused_without_a_passed_gate(engine_cache, satworld_gate):
    with pytest.raises(RuntimeUnavailableError, match="quality gate has not been run"):
        load("satworld", engine_cache, runtime="onnx", precision="int8")
    code, out, err = run_main("predict", "--model", "satworld", "--gallery", str(engine_cache), "--runtime", "onnx",
                              "--precision", "int8", photos()[0])
    assert code == 2 and out == ""
    assert "int8 quality gate has not been run" in err
    assert "python -m geoapp runtime gate --model satworld --precision int8 --runtime onnx" in err


def test_int8_after_a_passed_gate_says_int8_everywhere(engine_cache, satworld_gate):
    family = load("satworld", engine_cache)
    pixels = family.tower.source.preprocess  # calibration: the shared photos, as the tower sees them
    from geoapp.imaging import load_image

    calibration = ImageSet(torch.cat([pixels(load_image(p).image) for p in photos()[:4]]), "4 shared photos", [])
    result = run_gate(family.tower.source, "onnx", lambda tower: {"200": 1.0, "750": 2.0, "2500": 3.0}, calibration,
                      dataset="test", images=1, command="test", log=lambda message: None)
    assert result.passed
    int8 = load("satworld", engine_cache, runtime="onnx", precision="int8")
    prediction = int8.predict(photos()[0], top_k=2)
    assert (prediction.model["runtime"], prediction.model["precision"]) == ("onnxruntime", "int8")
    assert "[int8 image tower on onnxruntime]" in prediction.model["weights"]
    assert "[int8 image tower on onnxruntime]" in formats.to_records([prediction])[0]["weights"]
    code, out, err = run_main("predict", "--model", "satworld", "--gallery", str(engine_cache), "--runtime", "onnx",
                              "--precision", "int8", "--format", "csv", photos()[0])
    assert code == 0, err
    assert all("int8 image tower" in row["backbone_weights"] for row in csv.DictReader(io.StringIO(out)))


def test_family_without_an_exported_tower_refuses_int8(engine_cache):
    from tests.families import toy

    registry.register(toy.SPEC)
    try:
        with pytest.raises(RuntimeUnavailableError, match="has no int8 image tower"):
            registry.get("toy").load(LoadOptions(extras={"runtime": "onnx", "precision": "int8"}))
        assert registry.get("toy").load(LoadOptions(extras={"runtime": "onnx"})).describe().runtime == "torch"
    finally:
        registry.unregister("toy")
