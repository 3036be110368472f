"""What makes a worker's model the one a ``predict`` call asks for, computed from the command line alone.

Two set-ups are the same when their identities are equal: the resolved family key (``auto`` resolved), the load
options as given (device, backbone weights, checkpoint, backbone, gallery; paths made absolute), the family options
given on ``serve``, a fingerprint of every weight file the family would read (path, size, modification time:
cheap, and a file replaced since the worker loaded it changes it), the geoapp code and Python that run it, and the
environment variables that steer loading. Nothing here loads a model or imports torch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

# Environment that can change what is loaded or computed (GEOAPP_* are added, except those below).
_ENVIRONMENT = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
                "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_NOT_MODEL_ENVIRONMENT = {"GEOAPP_ACTOR", "GEOAPP_DATABASE_URL", "GEOAPP_CASE_STORE",  # cases only
                          "GEOAPP_SERVE_DIR"}  # where workers are found
_MAX_FOLDER_ENTRIES = 1000
_CODE_SUFFIXES = (".py", ".json", ".csv")
_PACKAGE = Path(__file__).resolve().parents[2]  # geoapp/


def _stat(path: Path) -> list | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [str(path.resolve()), info.st_size, info.st_mtime_ns]


def _stat_tree(path: Path) -> list | None:
    """A file's stat, or a folder's files' (one level; dense galleries and variant folders)."""
    if not path.is_dir():
        return _stat(path)
    entries = sorted(p for p in path.iterdir() if p.is_file())[:_MAX_FOLDER_ENTRIES]
    return [_stat(p) for p in entries]


def _as_path(value: Any) -> Any:
    """Absolute path for a value that names an existing file or folder (relative to this process's cwd)."""
    if isinstance(value, (str, Path)) and str(value) not in ("", "random"):
        candidate = Path(str(value)).expanduser()
        if candidate.exists():
            return str(candidate.resolve())
    return value


def code_fingerprint() -> str:
    """SHA-256 over the package's source files' names, sizes and modification times (about 300 stats)."""
    digest = hashlib.sha256(sys.version.encode())
    for root, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(_CODE_SUFFIXES):
                path = os.path.join(root, name)
                info = os.stat(path)
                digest.update(f"{os.path.relpath(path, _PACKAGE)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def weights_fingerprint(spec, options) -> list:
    """[what, stat] for every weight file the family (and its members) would read with these options."""
    from geoapp.models.weights import find

    entries: list = [[w.key, _stat(p) if (p := find(w)) is not None else None] for w in spec.all_files()]
    checkpoint = options.checkpoint or (spec.variant.checkpoint if spec.variant is not None else None)
    if spec.variant is not None:
        entries.append(["variant", _stat_tree(Path(spec.variant.folder))])
    gallery = options.extras.get("gallery")
    if gallery is not None:
        from geoapp.galleries.dense import dense_folder, is_dense_option

        entries.append(["gallery", _stat_tree(dense_folder(gallery) if is_dense_option(gallery)
                                              else Path(str(gallery)).expanduser())])
    for what, value in (("checkpoint", checkpoint), ("backbone_weights", options.backbone_weights)):
        if value not in (None, "", "random"):
            entries.append([what, _stat_tree(Path(str(value)).expanduser())])
    return entries


def environment() -> dict[str, str]:
    names = [*_ENVIRONMENT, *(k for k in os.environ if k.startswith("GEOAPP_") and k not in _NOT_MODEL_ENVIRONMENT)]
    return {name: os.environ[name] for name in sorted(set(names)) if name in os.environ}


def model_identity(args: argparse.Namespace, info=None) -> dict:
    """The identity of the model set-up the command line describes (``info`` gets the notice of ``auto``)."""
    from geoapp.cli.family import family_extras, resolve_family_from_args
    from geoapp.cli.worker.protocol import PROTOCOL_VERSION
    from geoapp.version import __version__

    spec, options = resolve_family_from_args(args, info=info or (lambda _message: None))
    return {
        "protocol": PROTOCOL_VERSION,
        "geoapp": __version__,
        "python": sys.executable,
        "code": code_fingerprint(),
        "family": spec.key,
        "device": options.device,
        "backbone_weights": _as_path(options.backbone_weights),
        "checkpoint": _as_path(options.checkpoint),
        "extras": {key: _as_path(value) for key, value in sorted(options.extras.items())},
        "family_options": dict(sorted(family_extras(args).items())),
        "weights": weights_fingerprint(spec, options),
        "environment": environment(),
    }


def differences(mine: dict, theirs: dict) -> list[str]:
    """The identity fields that differ (for the note saying why a running worker is not used)."""
    return [key for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]
