"""User-trained variants: ``<variants dir>/<tag>/manifest.json`` -> a ``family:tag`` spec.

A manifest (JSON) written by a trainer (``training.regional build``, a TransLocator run ...)::

    {"format": "geoapp-variant/1", "family": "geoclip", "tag": "my-area",
     "label": "GeoCLIP heads trained on my area", "description": "...",
     "checkpoint": "model.pt", "created": "2026-12-01T12:00:00Z", "metrics": {...}}

The variant is the family's spec with its key, label and description replaced and the
checkpoint set; nothing else changes, so the CLI, the UI and the case store offer it at once.
A broken manifest is skipped with a log line (one bad folder must not hide the others).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoapp.fileio import atomic_write
from geoapp.settings import get_settings

if TYPE_CHECKING:
    from geoapp.families.registry import FamilySpec

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
FORMAT = "geoapp-variant/1"
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Variant:
    """A user-trained checkpoint of a family, found through its manifest."""

    tag: str
    folder: Path
    manifest: Mapping[str, Any]

    @property
    def checkpoint(self) -> Path | None:
        name = self.manifest.get("checkpoint")
        return (self.folder / str(name)) if name else None


def variants_dir() -> Path:
    return get_settings().model_variants_dir


def check_tag(tag: str) -> str:
    if not TAG_PATTERN.match(str(tag or "")):
        raise ValueError(f"invalid variant name {tag!r}: use 1-64 letters, digits, '.', '_' or '-' "
                         "(starting with a letter or digit)")
    return str(tag)


def discover(specs: Mapping[str, FamilySpec], folder: Path | None = None) -> list[FamilySpec]:
    """One spec per valid manifest under ``folder`` (default: the variants dir), sorted by key."""
    root = folder or variants_dir()
    if not root.is_dir():
        return []
    found: list[FamilySpec] = []
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} manifest")
            family = str(manifest.get("family", ""))
            tag = check_tag(manifest.get("tag") or path.parent.name)
            base = specs.get(family)
            if base is None:
                raise ValueError(f"unknown family {family!r}")
        except (OSError, ValueError) as error:
            log.warning("skipping model variant %s: %s", path, error)
            continue
        label = str(manifest.get("label") or f"{base.label} — {tag}")
        description = str(manifest.get("description") or base.description)
        found.append(replace(base, key=f"{family}:{tag}", label=label, description=description,
                             auto_priority=None, variant=Variant(tag, path.parent, manifest)))
    return found


def signature(folder: Path | None = None) -> tuple[tuple[str, int, int], ...]:
    """What the variants folder holds now: (tag folder, manifest mtime, manifest size) per manifest. It changes
    when a model is built, rebuilt or removed, so a long-running app knows when to list its models again
    (a few ``stat`` calls, no parsing)."""
    root = folder or variants_dir()
    if not root.is_dir():
        return ()
    found = []
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            info = path.stat()
        except OSError:
            continue  # removed while we looked
        found.append((path.parent.name, info.st_mtime_ns, info.st_size))
    return tuple(found)


def write_manifest(folder: Path, family: str, tag: str, checkpoint: str, *, label: str = "",
                   description: str = "", extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``folder/manifest.json`` (atomically) for a trained checkpoint that sits in ``folder``."""
    check_tag(tag)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "family": family, "tag": tag, "label": label, "description": description,
                "checkpoint": checkpoint, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **dict(extra or {})}
    return atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False), durable=True)
