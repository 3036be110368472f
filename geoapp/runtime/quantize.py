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
CALIBRATION_BATCH = 4  # MinMax calibration keeps only per-tensor minima/maxima per batch: memory stays small


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


class _Batches:
    """ONNX Runtime's calibration reader over preprocessed pixels."""

    def __init__(self, input_name: str, pixels: torch.Tensor, batch: int) -> None:
        array = np.ascontiguousarray(pixels.numpy().astype(np.float32))
        self._items = iter([{input_name: array[i:i + batch]} for i in range(0, len(array), batch)])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - ORT calls it only for some calibrators
        pass


def quantize_int8(fp32_model: Path, out: Path, pixels: torch.Tensor,
                  settings: QuantSettings | None = None) -> tuple[Path, QuantSettings, float]:
    """Write the int8 (QDQ) model of ``fp32_model`` to ``out`` (atomically), calibrated on ``pixels`` [N, 3, S, S].

    Returns (path, settings, seconds)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from geoapp.runtime.export import INPUT_NAME

    if len(pixels) == 0:
        raise ValueError("int8 calibration needs at least one image")
    settings = settings or settings_for_this_cpu()
    start = time.perf_counter()

    def write(name: str) -> None:
        quantize_static(str(fp32_model), name, _Batches(INPUT_NAME, pixels, CALIBRATION_BATCH),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(settings.op_types),
                        per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                        activation_type=QuantType.QUInt8 if settings.activation == "uint8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"MatMulConstBOnly": True,
                                       "ActivationSymmetric": settings.activation == "int8"})

    atomic_write_path(out, write)
    return out, settings, time.perf_counter() - start
