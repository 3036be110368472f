"""Presets as data: a family's named architectures live in a ``presets.json`` beside its code (like open_clip's
``model_configs/*.json``), read into its typed config dataclass by one function. Adding a preset is editing data."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, TypeVar

T = TypeVar("T")


def load_presets(package: str, build: Callable[[Mapping[str, Any]], T], filename: str = "presets.json") -> dict[str, T]:
    """``{name: build(values)}`` from ``package/filename`` (keys starting with "_" are comments)."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    data = json.loads(text)
    return {name: build(values) for name, values in data.items() if not name.startswith("_")}


def pick(presets: Mapping[str, T], name: str, what: str) -> T:
    """The preset ``name``, or an error listing the valid names."""
    if name not in presets:
        raise ValueError(f"unknown {what} preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]
