"""Atomic file writes (torch-free): write beside the target, then rename over it.

A crash or a full disk never leaves a half-written cache, index or gallery file under the real
name; the temporary file is removed on any failure.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write_path(path: str | Path, write: Callable[[str], None]) -> Path:
    """``write(temporary_name)`` then rename to ``path`` (for writers that want a file name, e.g. FAISS)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    return path


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """``write(binary file object)`` then rename to ``path``."""

    def to_file(name: str) -> None:
        with open(name, "wb") as out:
            write(out)

    return atomic_write_path(path, to_file)
