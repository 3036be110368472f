"""Which engine runs a family's frozen image tower, and at which precision (torch-free: the registry and the
CLI's ``--help`` import this).

* ``runtime``: ``torch`` (default), ``onnx`` (ONNX Runtime, CPU provider), ``openvino``, or ``auto`` (the fastest
  installed engine whose export passed its parity check on this machine; torch when none did).
* ``precision``: ``fp32`` (default) or ``int8`` (opt-in; only where the family's int8 quality gate has passed on
  this machine for that engine: ``python -m geoapp runtime gate --model KEY --precision int8``).

Families read it from ``LoadOptions.extras`` (``runtime``, ``precision``), so the CLI, the app, the Ray engine and
``Geolocator.load(..., runtime="onnx")`` all pass it the same way. Grad-CAM and the location encoder stay on torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RUNTIMES = ("torch", "onnx", "openvino", "auto")
PRECISIONS = ("fp32", "int8")
# What a result's identity says ran the tower (the CLI's "onnx" is the ONNX Runtime engine).
ENGINE_LABELS = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino"}
GATE_COMMAND = "python -m geoapp runtime gate --model {family} --precision int8 --runtime {runtime}"

log = logging.getLogger("geoapp.runtime")


class RuntimeUnavailableError(ValueError):
    """The requested engine or precision cannot run this family here; the message says why and what to run."""


@dataclass(frozen=True)
class RuntimeRequest:
    """What the caller asked for (``auto`` is resolved by :func:`geoapp.runtime.towers.image_tower`)."""

    runtime: str = "torch"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.precision == "int8" and self.runtime == "torch":
            raise ValueError("--precision int8 runs on an exported engine: add --runtime onnx, openvino or auto")

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any] | None) -> RuntimeRequest:
        extras = extras or {}
        return cls(str(extras.get("runtime") or "torch"), str(extras.get("precision") or "fp32"))

    @property
    def default(self) -> bool:
        return self.runtime == "torch" and self.precision == "fp32"


def check_family_runtime(family: Any, extras: Mapping[str, Any] | None) -> None:
    """After a family has loaded: int8 that the family did not deliver is an error (never silently fp32); an
    engine it does not support is logged (torch ran). Families with an exported tower say so in ``describe()``."""
    request = RuntimeRequest.from_extras(extras)
    if request.default:
        return
    identity = family.describe()
    if request.precision == "int8" and identity.precision != "int8":
        raise RuntimeUnavailableError(
            f"{identity.label} has no int8 image tower (only families with an exported tower do: "
            "`python -m geoapp runtime status` lists them); drop --precision int8")
    if request.runtime not in ("torch", "auto") and identity.runtime == "torch" and not identity.runtime_note:
        log.warning("%s runs on torch: it has no exported image tower for --runtime %s", identity.label,
                    request.runtime)


def add_runtime_arguments(parser) -> None:
    """``--runtime`` and ``--precision`` (the CLI's model commands and the app share them)."""
    parser.add_argument("--runtime", default=None, choices=RUNTIMES,
                        help="engine for the family's frozen image tower: torch (default), onnx (ONNX Runtime, CPU), "
                             "openvino, or auto (the fastest engine that passed its parity check on this machine). "
                             "The first use exports the tower once (cached in $GEOAPP_CACHE_DIR/onnx) and checks it "
                             "against torch (cosine >= 0.9999); an export that fails is not used. Grad-CAM stays on torch")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="fp32 (default) or int8 (with --runtime onnx/openvino/auto; only after the family's "
                             "int8 quality gate passed on this machine: python -m geoapp runtime gate --model KEY "
                             "--precision int8 --runtime ENGINE)")
