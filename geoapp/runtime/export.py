"""Export a tower to ONNX once, cached by its digest in ``$GEOAPP_CACHE_DIR/onnx/<family>-<digest>.onnx``.

TorchScript-based exporter (opset 17, batch axis dynamic): it needs no extra package and handles open_clip's
vision towers. PyTorch's fused multi-head-attention fast path has no ONNX equivalent, so it is switched off while
tracing (the exported graph computes the same attention). Files are written atomically: an interrupted export
never leaves a half file under the real name. Towers above 2 GB of weights would need ONNX external data (ViT-L/14
is 1.2 GB in fp32).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import torch

from geoapp.fileio import atomic_write_path
from geoapp.runtime.engines import TowerSource
from geoapp.runtime.store import onnx_dir

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pixels", "embedding"
log = logging.getLogger("geoapp.runtime")


def fp32_path(source: TowerSource) -> Path:
    safe = source.family.replace(":", "_").replace("/", "_")
    return onnx_dir() / f"{safe}-{source.digest[:16]}.onnx"


def int8_path(source: TowerSource, engine: str) -> Path:
    """The int8 model a quality gate measured (one per tower and engine: each engine's gate quantises its own)."""
    return fp32_path(source).with_name(fp32_path(source).stem + f"-int8-{engine}.onnx")


@contextlib.contextmanager
def _exportable_attention():
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def export_onnx(source: TowerSource, path: Path) -> Path:
    """Trace ``source.module`` into an ONNX file at ``path`` (atomically)."""
    module = source.module
    device = next(module.parameters()).device
    example = source.example(1).to(device)

    def write(name: str) -> None:
        with _exportable_attention(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy-exporter and tracer warnings say nothing about this graph
            torch.onnx.export(module, (example,), name, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})

    return atomic_write_path(path, write)


def ensure_fp32(source: TowerSource, refresh: bool = False) -> Path:
    """The tower's fp32 ONNX file, exported now if it is not cached (or ``refresh``)."""
    path = fp32_path(source)
    if path.is_file() and not refresh:
        return path
    start = time.perf_counter()
    log.warning("Exporting the %s image tower to ONNX once (cached in %s) ...", source.family, path.parent)
    export_onnx(source, path)
    log.warning("Exported %s in %.0f s (%.0f MB)", path.name, time.perf_counter() - start, path.stat().st_size / 1e6)
    return path
