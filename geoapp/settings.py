"""Where geoapp keeps its files, and which device it runs on: one typed settings object.

Everything here can be overridden with environment variables so that the CLI, the app,
tests and CI agree without passing paths around:

- ``GEOAPP_CACHE_DIR``   derived data (gallery embeddings, vector indexes, region candidates); default
  ``$XDG_CACHE_HOME/geoapp`` or ``~/.cache/geoapp``.
- ``GEOAPP_WEIGHTS_DIR`` an extra folder searched first for model weights (and where
  ``geoapp weights download --weights-dir`` puts them); default: none, i.e. the standard
  Hugging Face cache that open_clip uses.
- ``GEOAPP_DEVICE``      ``cpu``, ``cuda``, ``cuda:1`` ...; default: CUDA when available.
- ``GEOAPP_VARIANTS_DIR`` user-trained model variants (one folder with a ``manifest.json`` each);
  default ``$GEOAPP_WEIGHTS_DIR/variants``, else ``<data dir>/variants`` (``$GEOAPP_DATA_DIR`` or
  ``~/.local/share/geoapp``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "geoapp"


@dataclass(frozen=True)
class Settings:
    """Paths and defaults shared by every entry point."""

    cache_dir: Path = field(default_factory=_default_cache_dir)
    weights_dir: Path | None = None
    device: str | None = None
    variants_dir: Path | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        cache = os.environ.get("GEOAPP_CACHE_DIR")
        weights = os.environ.get("GEOAPP_WEIGHTS_DIR")
        return cls(
            cache_dir=Path(cache).expanduser() if cache else _default_cache_dir(),
            weights_dir=Path(weights).expanduser() if weights else None,
            device=os.environ.get("GEOAPP_DEVICE") or None,
            variants_dir=Path(os.environ["GEOAPP_VARIANTS_DIR"]).expanduser()
            if os.environ.get("GEOAPP_VARIANTS_DIR") else None,
        )

    @property
    def embeddings_dir(self) -> Path:
        """Cached location embeddings (galleries and region candidate sets)."""
        return self.cache_dir / "embeddings"

    @property
    def galleries_dir(self) -> Path:
        """Prebuilt dense galleries (``geoapp gallery build-dense``), one folder each."""
        return self.cache_dir / "galleries"

    @property
    def indexes_dir(self) -> Path:
        """Built vector indexes (:mod:`geoapp.index`), next to the embeddings they index."""
        return self.cache_dir / "indexes"

    @property
    def model_variants_dir(self) -> Path:
        """Where user-trained variants (``family:tag``) are looked for and written."""
        if self.variants_dir is not None:
            return self.variants_dir
        if self.weights_dir is not None:
            return self.weights_dir / "variants"
        return user_data_dir() / "variants"


def user_data_dir() -> Path:
    """``$GEOAPP_DATA_DIR``, else ``$XDG_DATA_HOME/geoapp``, else ``~/.local/share/geoapp``."""
    explicit = os.environ.get("GEOAPP_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base).expanduser() / "geoapp"


def get_settings() -> Settings:
    """Settings read from the environment at call time (tests change the environment)."""
    return Settings.from_env()
