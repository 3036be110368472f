"""The int8 quality gate: quantise, judge, store; ``--precision int8`` runs only behind a passed verdict."""

from __future__ import annotations

import pytest
import torch

from geoapp.runtime.engines import TorchTower
from geoapp.runtime.gates import MAX_DROP_POINTS, judge, run_gate, stored_gate
from geoapp.runtime.images import ImageSet
from geoapp.runtime.parity import cosines
from geoapp.runtime.request import RuntimeRequest, RuntimeUnavailableError
from geoapp.runtime.towers import image_tower

FP32 = {"200": 40.0, "750": 60.0, "2500": 80.0}


def calibration() -> ImageSet:
    pixels = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    return ImageSet(pixels, "8 random test images", [])


def scorer(int8_drop_at_750: float):
    """Accuracy by precision: fp32 gets FP32, int8 the same minus ``int8_drop_at_750`` points at 750 km."""

    def evaluate(tower) -> dict[str, float]:
        if tower.precision == "fp32":
            return dict(FP32)
        return {**FP32, "750": FP32["750"] - int8_drop_at_750}

    return evaluate


def gate(source, engine: str, drop: float):
    return run_gate(source, engine, scorer(drop), calibration(), dataset="test data", images=10,
                    command="python -m geoapp runtime gate --model tiny", log=lambda message: None)


def test_judge_allows_at_most_one_point():
    assert MAX_DROP_POINTS == 1.0
    assert judge(FP32, {**FP32, "750": 59.0})
    assert not judge(FP32, {**FP32, "750": 58.99})
    assert judge(FP32, {**FP32, "2500": 95.0})  # better is fine


def test_no_gate_refuses_int8_and_names_the_command(source):
    with pytest.raises(RuntimeUnavailableError) as caught:
        image_tower(source, RuntimeRequest("onnx", "int8"), "cpu")
    message = str(caught.value)
    assert "has not been run" in message
    assert "python -m geoapp runtime gate --model tiny --precision int8 --runtime onnx" in message


@pytest.mark.parametrize("engine,label", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_passed_gate_runs_int8(source, engine, label):
    result = gate(source, engine, drop=0.5)
    assert result.passed and result.int8_accuracy["750"] == 59.5 and result.images == 10
    assert stored_gate(source, engine).passed
    tower = image_tower(source, RuntimeRequest(engine, "int8"), "cpu")
    assert (tower.runtime, tower.precision) == (label, "int8")
    assert "int8 quality gate passed" in tower.note
    pixels = calibration().pixels
    assert cosines(TorchTower(source)(pixels), tower(pixels)).min() > 0.9  # an int8 version of the same tower


def test_failed_gate_refuses_int8_with_the_reason(source):
    result = gate(source, "onnx", drop=2.5)
    assert not result.passed
    with pytest.raises(RuntimeUnavailableError) as caught:
        image_tower(source, RuntimeRequest("onnx", "int8"), "cpu")
    message = str(caught.value)
    assert "gate failed" in message and "2.50 points below fp32" in message and "at 750 km" in message


def test_changed_int8_file_is_refused(source):
    result = gate(source, "onnx", drop=0.0)
    with open(result.int8_file, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(RuntimeUnavailableError, match="missing or was changed"):
        image_tower(source, RuntimeRequest("onnx", "int8"), "cpu")


def test_auto_int8_uses_an_engine_whose_gate_passed(source):
    gate(source, "onnx", drop=3.0)  # failed
    gate(source, "openvino", drop=0.0)  # passed
    tower = image_tower(source, RuntimeRequest("auto", "int8"), "cpu")
    assert (tower.runtime, tower.precision) == ("openvino", "int8")
