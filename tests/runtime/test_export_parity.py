"""Export once, the parity gate, fallback to torch for a broken export, and how ``auto`` chooses."""

from __future__ import annotations

import logging

import pytest
import torch

from geoapp.runtime import export as export_module
from geoapp.runtime.engines import TorchTower
from geoapp.runtime.export import export_onnx, fp32_path
from geoapp.runtime.parity import MIN_COSINE, ParityResult, cosines, store_parity, stored_parity
from geoapp.runtime.request import ENGINE_LABELS, RuntimeRequest, RuntimeUnavailableError
from geoapp.runtime.towers import image_tower
from tests.runtime.conftest import tiny_source

ENGINES = ("onnx", "openvino")


def pixels(batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("engine", ENGINES)
def test_export_passes_parity_and_is_cached(source, engine, monkeypatch):
    tower = image_tower(source, RuntimeRequest(engine), "cpu")
    assert tower.runtime == ENGINE_LABELS[engine] and tower.precision == "fp32"
    assert tower.note.startswith("parity gate passed")
    batch = pixels(3)  # exported at batch 1: the batch axis is dynamic
    assert cosines(TorchTower(source)(batch), tower(batch)).min() >= MIN_COSINE
    verdict = stored_parity(source, engine)
    assert verdict.passed and verdict.min_cosine >= MIN_COSINE and verdict.digest == source.digest

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported twice")

    monkeypatch.setattr(export_module, "export_onnx", no_second_export)
    again = image_tower(tiny_source(), RuntimeRequest(engine), "cpu")  # same weights, new objects: same digest
    assert again.runtime == ENGINE_LABELS[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_broken_export_is_refused_and_torch_used(source, engine, caplog):
    # A "broken" export: the graph of other weights under this tower's name.
    export_onnx(tiny_source(seed=1), fp32_path(source))
    with caplog.at_level(logging.WARNING, logger="geoapp.runtime"):
        tower = image_tower(source, RuntimeRequest(engine), "cpu")
    assert tower.runtime == "torch"
    assert "refused by the parity gate" in tower.note and "torch used" in tower.note
    assert any("refused by the parity gate" in r.getMessage() and "torch is used" in r.getMessage()
               for r in caplog.records)
    verdict = stored_parity(source, engine)
    assert not verdict.passed and verdict.min_cosine < MIN_COSINE


def test_damaged_cached_export_is_exported_again(source):
    path = fp32_path(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx file")
    tower = image_tower(source, RuntimeRequest("onnx"), "cpu")
    assert tower.runtime == "onnxruntime"
    assert path.read_bytes()[:16] != b"not an onnx file"


def _verdict(source, engine: str, passed: bool, engine_ms: float, torch_ms: float = 10.0) -> None:
    store_parity(ParityResult(source.family, source.digest, engine, "fp32", passed, 1.0 if passed else 0.5,
                              "test", torch_ms, engine_ms))


def test_auto_picks_the_fastest_engine_that_passed(source):
    _verdict(source, "onnx", True, 5.0)
    _verdict(source, "openvino", True, 3.0)
    assert image_tower(source, RuntimeRequest("auto"), "cpu").runtime == "openvino"
    _verdict(source, "openvino", False, 1.0)  # fastest, but refused
    assert image_tower(source, RuntimeRequest("auto"), "cpu").runtime == "onnxruntime"


def test_auto_keeps_torch_when_no_engine_is_faster_or_none_passed(source):
    _verdict(source, "onnx", True, 12.0)
    _verdict(source, "openvino", False, 1.0)
    tower = image_tower(source, RuntimeRequest("auto"), "cpu")
    assert tower.runtime == "torch" and "auto" in tower.note


def test_exported_engines_run_on_the_cpu_only(source):
    with pytest.raises(RuntimeUnavailableError, match="--device cpu"):
        image_tower(source, RuntimeRequest("onnx"), "cuda")
    tower = image_tower(source, RuntimeRequest("auto"), "cuda")
    assert tower.runtime == "torch" and "CPU" in tower.note


def test_requests_are_checked():
    with pytest.raises(ValueError, match="unknown runtime"):
        RuntimeRequest("tensorrt")
    with pytest.raises(ValueError, match="--runtime onnx, openvino or auto"):
        RuntimeRequest("torch", "int8")
    assert RuntimeRequest.from_extras({"runtime": "onnx"}) == RuntimeRequest("onnx", "fp32")
    assert RuntimeRequest.from_extras({}).default


def test_digest_follows_the_weights():
    first, rebuilt = tiny_source(seed=0), tiny_source(seed=0)  # two separate builds of the same weights
    assert first is not rebuilt and first.digest == rebuilt.digest
    assert tiny_source(seed=0).digest != tiny_source(seed=1).digest
