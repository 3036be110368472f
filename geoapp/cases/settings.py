"""Where the case store lives: database URL and evidence folder (environment-configurable).

- ``GEOAPP_DATABASE_URL``  SQLAlchemy URL of the case database; default: the SQLite file
  ``<data dir>/cases.db``.  A ``postgresql+psycopg://...`` URL works too.
- ``GEOAPP_CASE_STORE``    folder holding evidence files (content-addressed by SHA-256);
  default ``<data dir>/evidence``.
- ``GEOAPP_DATA_DIR``      the user data folder; default ``$XDG_DATA_HOME/geoapp`` or
  ``~/.local/share/geoapp``.

Kept apart from :mod:`geoapp.settings` (model caches) on purpose: cases are user data
that must be backed up, caches are disposable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geoapp.settings import user_data_dir  # one definition, shared with the model settings

__all__ = ["CaseSettings", "get_case_settings", "sqlite_url", "user_data_dir"]


def sqlite_url(path: str | os.PathLike) -> str:
    """SQLAlchemy URL for an SQLite file (absolute, so a changed working folder cannot move it)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


@dataclass(frozen=True)
class CaseSettings:
    """Database URL and evidence folder of one case store."""

    database_url: str
    store_dir: Path

    @classmethod
    def from_env(cls) -> "CaseSettings":
        data = user_data_dir()
        url = os.environ.get("GEOAPP_DATABASE_URL") or sqlite_url(data / "cases.db")
        store = os.environ.get("GEOAPP_CASE_STORE")
        return cls(database_url=url, store_dir=Path(store).expanduser() if store else data / "evidence")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_case_settings() -> CaseSettings:
    """Settings read from the environment at call time (tests change the environment)."""
    return CaseSettings.from_env()
