"""Where the engines' files and verdicts live, and what "this machine" means (torch-free).

``$GEOAPP_CACHE_DIR/onnx/``: exported towers (``<family>-<digest>.onnx``), int8 models (``…-int8.onnx``) and small
JSON verdicts: parity checks (``parity/``) and int8 quality gates (``gates/``). A verdict holds for one tower
(weights digest), one engine and one machine (CPU model, core count, engine versions): a different CPU or a new
engine release is checked again. Every file is written atomically (:mod:`geoapp.fileio`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from pathlib import Path

from geoapp.fileio import atomic_write
from geoapp.settings import get_settings


def onnx_dir() -> Path:
    return get_settings().cache_dir / "onnx"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def engine_versions() -> dict[str, str | None]:
    """Installed engine versions (None: not installed); part of the machine identity."""
    versions: dict[str, str | None] = {}
    for name, module in (("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
        try:
            versions[name] = __import__(module).__version__
        except ImportError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """What a parity or gate verdict depends on besides the weights."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(), "system": platform.system(),
            **{f"{k}_version": v for k, v in engine_versions().items()}}


def machine_id() -> str:
    return hashlib.sha256(json.dumps(machine(), sort_keys=True).encode()).hexdigest()[:16]


def verdict_path(kind: str, family: str, digest: str, engine: str, precision: str) -> Path:
    """One JSON verdict per (kind, family, tower digest, engine, precision, machine)."""
    safe = family.replace(":", "_").replace("/", "_")
    return onnx_dir() / kind / f"{safe}-{digest[:16]}-{engine}-{precision}-{machine_id()}.json"


def read_json(path: Path) -> dict | None:
    """A stored verdict, or None when absent or unreadable (a damaged file is checked again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_verdict(path: Path, digest: str, kind: type):
    """The verdict stored at ``path`` as ``kind`` for the tower ``digest``; None when absent, for other weights,
    damaged or written by another version (then it is checked again)."""
    data = read_json(path)
    if data is None or data.get("digest") != digest:
        return None
    try:
        return kind(**data)
    except TypeError:
        return None


def write_json(path: Path, data: dict) -> Path:
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def file_sha256(path: Path) -> str:
    """What an int8 gate records of the file it measured (runtime sits beside models/, so no shared helper)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
