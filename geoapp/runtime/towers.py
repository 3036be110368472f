"""The one hook families call: ``image_tower(source, request, device)`` -> the engine that runs their tower.

* ``torch`` / fp32: the module itself (nothing exported, nothing checked).
* ``onnx`` / ``openvino`` fp32: the tower exported once (cached by digest), checked once against torch on this
  machine (:mod:`.parity`); an export that fails the check is not used: a warning is logged and torch runs, and
  the result's identity says so.
* ``auto``: the fastest engine (batch-1 timings of the parity checks) among those that passed; torch when none is
  faster or none passed; on a GPU, torch.
* ``int8``: only the int8 model a passed quality gate measured (:mod:`.gates`); otherwise refused with the reason
  and the command that runs the gate. Never a silent fall back to fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from geoapp.runtime.engines import ImageTower, TorchTower, TowerSource, installed_engines, open_engine
from geoapp.runtime.export import ensure_fp32
from geoapp.runtime.gates import require_gate
from geoapp.runtime.images import tower_images
from geoapp.runtime.parity import ParityResult, check_parity, store_parity, stored_parity
from geoapp.runtime.request import ENGINE_LABELS, RuntimeRequest, RuntimeUnavailableError
from geoapp.runtime.store import machine

log = logging.getLogger("geoapp.runtime")


def image_tower(source: TowerSource, request: RuntimeRequest, device: torch.device | str = "cpu") -> ImageTower:
    """The tower engine for ``request`` (see the module docstring); RuntimeUnavailableError when it cannot be had."""
    if request.default:
        return TorchTower(source)
    if torch.device(device).type != "cpu":
        if request.runtime == "auto" and request.precision == "fp32":
            return TorchTower(source, note=f"--runtime auto on {device}: the exported engines run on the CPU")
        raise RuntimeUnavailableError(f"--runtime {request.runtime} --precision {request.precision} runs on the CPU; "
                                      f"add --device cpu, or use --runtime torch on {device}")
    engines = installed_engines() if request.runtime == "auto" else [request.runtime]
    if request.runtime != "auto" and request.runtime not in installed_engines():
        raise RuntimeUnavailableError(f"--runtime {request.runtime} is not installed here: pip install -r "
                                      "requirements.txt (pins onnxruntime and openvino)")
    if request.precision == "int8":
        return _int8_tower(source, engines, auto=request.runtime == "auto")
    return _fp32_tower(source, engines, auto=request.runtime == "auto")


def verdict(source: TowerSource, engine: str, images: str | None = None) -> tuple[ParityResult, ImageTower | None]:
    """The stored parity verdict of ``engine`` for this tower, or a new check (export once, compare, store).

    Returns the verdict and, when a check ran now, the opened engine (so it is not opened twice)."""
    stored = stored_parity(source, engine)
    if stored is not None:
        return stored, None
    checked = tower_images(source, images)
    try:
        try:
            tower = open_engine(engine, source, ensure_fp32(source))
        except (RuntimeError, OSError):  # a damaged cached file: export again once
            tower = open_engine(engine, source, ensure_fp32(source, refresh=True))
        result = check_parity(source, tower, engine, checked.pixels, checked.description)
    except (RuntimeError, OSError, ValueError) as error:  # export errors are RuntimeErrors
        tower, result = None, ParityResult(source.family, source.digest, engine, "fp32", False, float("-inf"),
                                           f"no comparison: export or engine failed ({error})", 0.0, 0.0,
                                           machine=machine())
    store_parity(result)
    return result, tower if result.passed else None


def _fp32_tower(source: TowerSource, engines: list[str], auto: bool) -> ImageTower:
    passed: list[tuple[ParityResult, ImageTower | None]] = []
    refused: list[str] = []
    for engine in engines:
        result, tower = verdict(source, engine)
        if result.passed:
            passed.append((result, tower))
        else:
            refused.append(f"{ENGINE_LABELS[engine]} export refused by the parity gate ({result.reason})")
    for message in refused:
        log.warning("%s: %s; %s", source.family, message, "torch is used" if not auto or not passed else
                    "another engine is used")
    if auto:
        faster = [(r, t) for r, t in passed if r.engine_ms < r.torch_ms]
        if not faster:
            return TorchTower(source, note="--runtime auto: " + ("; ".join(refused) or
                                                                 "torch was fastest in the parity checks"))
        passed = [min(faster, key=lambda rt: rt[0].engine_ms)]
    if not passed:
        return TorchTower(source, note="; ".join(refused) + "; torch used")
    result, tower = passed[0]
    if tower is None:
        tower = open_engine(result.engine, source, ensure_fp32(source))
    tower.note = f"parity gate passed ({result.reason})"
    return tower


def _int8_tower(source: TowerSource, engines: list[str], auto: bool) -> ImageTower:
    gated, refusals = [], []
    for engine in engines:
        try:
            gated.append(require_gate(source, engine))
        except RuntimeUnavailableError as error:
            refusals.append(str(error))
    if not gated:
        raise RuntimeUnavailableError(" ".join(refusals) if refusals else
                                      "--runtime auto --precision int8: neither onnxruntime nor openvino is installed")
    gate = min(gated, key=lambda g: g.int8_ms or float("inf")) if auto else gated[0]
    return open_engine(gate.engine, source, Path(gate.int8_file), "int8", note=f"int8 quality gate passed: "
                                                                                 f"{gate.reason()}")
