"""One checkpoint convention for every model this project trains: a JSON config beside the tensors, one loader.

A checkpoint is one file holding

* ``format``: what it is and its version (``"geoapp.satworld.v1"``, ``"geoapp.translocator.v1"`` ...);
* ``config``: the architecture as data (what the family needs to build the network before loading tensors);
* ``meta``: everything else that is not a tensor: provenance (command, data, seed), metrics, geocells, flags;
* ``state``: a flat ``name -> tensor`` mapping.

Written as **safetensors** (:func:`save_checkpoint`): the tensors, and ``{"format", "config", "meta"}`` as one JSON
document in the file's metadata under the key ``"geoapp"``. Reading never runs code. Files written before this
convention (``torch.save`` of a dict with a ``"format"`` key: the shipped SatWorld and map-tile models, users'
trained variants) are read by the same :func:`load_checkpoint` with ``torch.load(weights_only=True)`` and mapped onto
the same fields, so families see one shape; ``python -m geoapp weights convert OLD.pt NEW.safetensors`` rewrites
one. Like open_clip's JSON model configs and timm's pretrained configs, the config travels with the weights, so a
file describes itself.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from geoapp.fileio import atomic_write
from geoapp.models.weights import WeightsMissingError

METADATA_KEY = "geoapp"
MAX_HEADER_BYTES = 64 * 1024 * 1024  # a safetensors header this large is not one of ours (refuse before parsing)


class CheckpointError(ValueError):
    """A file is not a usable checkpoint of the expected kind; the message names the file and what is wrong."""


@dataclass
class Checkpoint:
    format: str
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str = ""
    legacy: bool = False  # read from a torch.save file written before this convention

    def sub_state(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors under ``prefix.`` with the prefix removed (e.g. one module's state dict)."""
        start = prefix + "."
        return {key[len(start):]: value for key, value in self.state.items() if key.startswith(start)}


def save_checkpoint(path: str | Path, format: str, state: Mapping[str, torch.Tensor],
                    config: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> Path:
    """Write a safetensors checkpoint atomically (``config`` and ``meta`` must be JSON data)."""
    from safetensors.torch import save

    header = {"format": format, "config": dict(config or {}), "meta": dict(meta or {})}
    text = json.dumps(header, sort_keys=True, default=_json_default)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save(tensors, metadata={METADATA_KEY: text}))
    return path


def load_checkpoint(path: str | Path, formats: str | Iterable[str] | None = None, *,
                    what: str = "checkpoint") -> Checkpoint:
    """Read a checkpoint of one of ``formats`` (any when None); ``what`` names it in messages."""
    path = Path(path)
    if not path.is_file():
        raise WeightsMissingError(f"{what} not found: {path}")
    data = path.read_bytes()
    checkpoint = _from_safetensors(data, path) if _looks_like_safetensors(data) else _from_legacy(data, path, what)
    checkpoint.path = path
    checkpoint.sha256 = hashlib.sha256(data).hexdigest()
    wanted = {formats} if isinstance(formats, str) else set(formats or ())
    if wanted and checkpoint.format not in wanted:
        raise CheckpointError(f"{path} is a {checkpoint.format or 'unlabelled'} file, not a {what} "
                              f"(format {' or '.join(sorted(wanted))})")
    return checkpoint


def convert_checkpoint(source: str | Path, target: str | Path) -> Checkpoint:
    """Rewrite any readable checkpoint (an older ``.pt``) in the safetensors convention; returns the new one."""
    old = load_checkpoint(source)
    save_checkpoint(target, old.format, old.state, old.config, old.meta)
    return load_checkpoint(target, old.format)


def _json_default(value: Any) -> Any:
    """Provenance often holds numpy/torch scalars, tuples or paths: store them as numbers or text."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    return str(value)


def _looks_like_safetensors(data: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object. torch.save files start with "PK" (zip) or a pickle.
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    return 2 <= size <= min(MAX_HEADER_BYTES, len(data) - 8) and data[8:9] == b"{"


def _from_safetensors(data: bytes, path: Path) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
        document = json.loads((header.get("__metadata__") or {}).get(METADATA_KEY) or "{}")
        state = load(data)
    except (SafetensorError, ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path} is damaged or not a geoapp checkpoint ({error})") from error
    if not isinstance(document, dict) or "format" not in document:
        raise CheckpointError(f"{path} is a safetensors file without geoapp's checkpoint header "
                              "(format, config, meta): it was not written by geoapp")
    return Checkpoint(str(document["format"]), dict(document.get("config") or {}), dict(state),
                      dict(document.get("meta") or {}))


def _from_legacy(data: bytes, path: Path, what: str) -> Checkpoint:
    """A ``torch.save`` dict from before the convention: tensors (nested state dicts flattened) and JSON data."""
    import io

    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, TypeError) as error:
        raise CheckpointError(f"Could not read {what} {path} ({str(error).splitlines()[0][:200]}); the file is "
                              "damaged, or holds more than tensors and plain data (refused: loading it could run "
                              "code)") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str):
        raise CheckpointError(f"{path} is not a geoapp {what} (no format label)")
    state: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for key, value in payload.items():
        if key in ("format", "config"):
            continue
        if key == "state" and isinstance(value, Mapping):
            state.update(value)
        elif isinstance(value, torch.Tensor):
            state[key] = value
        elif isinstance(value, Mapping) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
            state.update({f"{key}.{name}": tensor for name, tensor in value.items()})
        else:
            meta[key] = value
    return Checkpoint(payload["format"], dict(payload.get("config") or {}), state, meta, legacy=True)
