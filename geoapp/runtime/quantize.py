"""int8 towers: ONNX Runtime static quantisation (QDQ format), calibrated on images, run by ONNX Runtime or OpenVINO.

Weights are quantised per output channel, activations per tensor, both symmetric int8, from ranges observed on
calibration images (symmetric activations were the stable choice on SatWorld's gate: asymmetric uint8 moved its
750 km accuracy by -1.6 to +0.1 points depending on which 32 calibration images were drawn, int8 by -0.4 to +0.3). Only matrix products with a weight operand (``MatMul`` with constant B, ``Gemm``, ``Conv``) are
quantised: attention's activation-by-activation products, softmax and layer norms stay fp32, which keeps ViT
accuracy while the weight matmuls (nearly all the FLOPs) run in int8. On x86 CPUs without VNNI the weights use
7 bits (``reduce_range``) so that the 16-bit intermediate sums of AVX2's u8×s8 instructions cannot saturate.
Nothing here decides whether an int8 tower may be used: that is the quality gate (:mod:`.gates`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from geoapp.fileio import atomic_write_path

CALIBRATION_IMAGES = 32


@dataclass(frozen=True)
class QuantSettings:
    reduce_range: bool  # 7-bit weights (x86 without VNNI)
    activation: str = "int8"  # "int8" (symmetric) | "uint8"
    per_channel: bool = True
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Conv")

    def to_dict(self) -> dict:
        return asdict(self)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def settings_for_this_cpu() -> QuantSettings:
    """7-bit weights where ONNX Runtime advises them (x86 without VNNI), from this CPU's instruction set."""
    import platform

    if platform.machine().lower() in ("aarch64", "arm64"):
        return QuantSettings(reduce_range=False)
    vnni = bool(_cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return QuantSettings(reduce_range=not vnni)


def quantize_int8(fp32_model: Path, out: Path, pixels: torch.Tensor,
                  settings: QuantSettings | None = None) -> tuple[Path, QuantSettings, float]:
    """Write the int8 (QDQ) model of ``fp32_model`` to ``out`` (atomically), calibrated on ``pixels`` [N, 3, S, S].

    Runs in a child process: ONNX Runtime's quantiser holds several copies of the model at once (ViT-L/14 went past
    10 GB in one process with the family loaded), so the caller keeps only its own memory. Returns (path, settings,
    seconds)."""
    import json
    import subprocess
    import sys
    import tempfile

    if len(pixels) == 0:
        raise ValueError("int8 calibration needs at least one image")
    settings = settings or settings_for_this_cpu()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geoapp-quantize-") as folder:
        images = Path(folder) / "calibration.npy"
        np.save(images, np.ascontiguousarray(pixels.numpy().astype(np.float32)))

        def write(name: str) -> None:
            command = [sys.executable, "-m", "geoapp.runtime.quantize", str(fp32_model), name, str(images),
                       json.dumps(settings.to_dict())]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"int8 quantisation of {fp32_model.name} failed (exit {done.returncode}): "
                                   f"{done.stderr.strip()[-2000:]}")

        atomic_write_path(out, write)
    return out, settings, time.perf_counter() - start


def _calibration_ranges(fp32_model: str, images: str, op_types: tuple[str, ...], scratch: Path) -> Path:
    """Min/max of every float input and output of the quantisable nodes over the calibration images, written as
    ONNX Runtime's calibration cache. Done here rather than with ORT's calibrator, which holds the model three
    times (ViT-L/14: ~10 GB): the graph gains those tensors as outputs, the model proto is freed before the session
    opens, and each image's tensors are reduced to two numbers at once."""
    import gc

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    model = onnx.load(fp32_model)
    weights = {init.name for init in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    names = sorted({name for node in model.graph.node if node.op_type in op_types
                    for name in (*node.input, *node.output) if name and name not in weights})
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in names if name not in outputs)
    augmented = scratch / "augmented.onnx"
    onnx.save(model, str(augmented))
    del model
    gc.collect()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor by its name
    session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
    lowest = {name: np.inf for name in names}
    highest = {name: -np.inf for name in names}
    pixels = np.load(images)
    input_name = session.get_inputs()[0].name
    for row in range(len(pixels)):  # one image at a time: a ViT-L/14 forward's tensors are ~0.3 GB
        for name, value in zip(names, session.run(names, {input_name: pixels[row:row + 1]})):
            if value.size and value.dtype.kind == "f":
                lowest[name] = min(lowest[name], float(value.min()))
                highest[name] = max(highest[name], float(value.max()))
    ranges = {name: (np.array([lowest[name]], np.float32), np.array([highest[name]], np.float32))
              for name in names if np.isfinite(lowest[name])}
    path = scratch / "ranges.json"
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), path)
    return path


def _quantize_here(fp32_model: str, out: str, images: str, settings: QuantSettings) -> None:
    """Calibrate (ranges to ORT's cache file), then quantise from the cached ranges, in this (child) process."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    ranges = _calibration_ranges(fp32_model, images, settings.op_types, Path(images).parent)
    quantize_static(fp32_model, out, None, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(settings.op_types),
                    per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                    activation_type=QuantType.QUInt8 if settings.activation == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    calibration_cache_path=str(ranges),
                    extra_options={"MatMulConstBOnly": True, "ActivationSymmetric": settings.activation == "int8"})


if __name__ == "__main__":  # the child process of quantize_int8
    import json
    import sys

    model, target, calibration, raw = sys.argv[1:5]
    data = json.loads(raw)
    _quantize_here(model, target, calibration, QuantSettings(**{**data, "op_types": tuple(data["op_types"])}))
