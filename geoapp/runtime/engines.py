"""A family's frozen image tower and the engines that run it: torch, ONNX Runtime (CPU provider), OpenVINO.

A family describes its tower once as a :class:`TowerSource` (the torch module mapping normalised pixels
``[B, 3, S, S]`` to embeddings ``[B, D]``, and how a PIL image becomes those pixels); every engine gives an
:class:`ImageTower`: called with pixels, it returns float32 embeddings on the CPU, and it says which engine and
precision produced them (results record it). Which engine a family gets is decided in :mod:`.towers`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

# Bumped when the export recipe changes, so towers exported by an older recipe are exported again.
EXPORT_RECIPE = "geoapp-onnx-1"


@dataclass(eq=False)
class TowerSource:
    """A family's frozen image tower as torch defines it (the reference every engine is checked against)."""

    family: str  # registry key, for file names and messages
    module: nn.Module  # pixels [B, 3, S, S] -> embeddings [B, D]; frozen, eval mode
    image_size: int  # S
    preprocess: Callable[[Image.Image], torch.Tensor]  # PIL image -> normalised pixels [1, 3, S, S]

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of the architecture (module repr), the input size and every tensor: the cache key of its
        exports and verdicts (a retrained checkpoint or other random weights get their own)."""
        digest = hashlib.sha256(f"{EXPORT_RECIPE}|{self.image_size}|{self.module!r}".encode())
        for name, tensor in sorted(self.module.state_dict().items()):
            value = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy())  # the bytes, without a copy
        return digest.hexdigest()

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, 3, self.image_size, self.image_size)


class ImageTower(Protocol):
    """What a family calls instead of its torch tower."""

    source: TowerSource
    runtime: str  # torch | onnxruntime | openvino
    precision: str  # fp32 | int8
    note: str | None  # why this engine runs and not the requested one (a failed parity check ...), or None

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels [B, 3, S, S] -> float32 embeddings [B, D] on the CPU."""


class TorchTower:
    """The module itself (the default, and the fallback when an export is refused)."""

    runtime, precision = "torch", "fp32"

    def __init__(self, source: TowerSource, note: str | None = None) -> None:
        self.source, self.note = source, note

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        device = next(self.source.module.parameters()).device
        return self.source.module(pixels.to(device)).float().cpu()


def _numpy(pixels: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy())


class OnnxRuntimeTower:
    """An exported tower run by ONNX Runtime's CPU provider with as many threads as torch uses."""

    runtime = "onnxruntime"

    def __init__(self, source: TowerSource, path: Path, precision: str = "fp32", note: str | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # --cpus-per-worker and the like apply here too
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.source, self.path, self.precision, self.note = source, Path(path), precision, note

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: _numpy(pixels)})[0].astype(np.float32))


class OpenVinoTower:
    """An exported tower compiled by OpenVINO for the CPU (fp32 arithmetic outside int8 layers: a CPU with bf16
    support would otherwise run fp32 models in bf16 and miss the parity gate)."""

    runtime = "openvino"

    def __init__(self, source: TowerSource, path: Path, precision: str = "fp32", note: str | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.source, self.path, self.precision, self.note = source, Path(path), precision, note

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        request = self.compiled.create_infer_request()  # one per call: the app runs requests on several threads
        return torch.from_numpy(np.array(request.infer([_numpy(pixels)])[0], dtype=np.float32))


class EngineLoadError(RuntimeError):
    """An engine could not load an exported model (a damaged file, an operator it lacks ...)."""


ENGINES: dict[str, type] = {"onnx": OnnxRuntimeTower, "openvino": OpenVinoTower}
ENGINE_MODULES = {"onnx": "onnxruntime", "openvino": "openvino"}


def installed_engines() -> list[str]:
    """The exported-tower engines importable here (``onnx``, ``openvino``), in preference order."""
    import importlib.util

    return [name for name in ENGINES if importlib.util.find_spec(ENGINE_MODULES[name]) is not None]


def open_engine(engine: str, source: TowerSource, path: Path, precision: str = "fp32",
                note: str | None = None) -> ImageTower:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine not in installed_engines():
        raise ImportError(f"--runtime {engine} needs the {ENGINE_MODULES[engine]} package: "
                          f"pip install -r requirements.txt (it pins {ENGINE_MODULES[engine]})")
    try:
        return ENGINES[engine](source, path, precision, note)
    except Exception as error:  # the engines raise their own exception types (ORT's derive from Exception only)
        raise EngineLoadError(f"{ENGINE_MODULES[engine]} cannot load {path}: {error}") from error
