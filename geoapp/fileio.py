"""The one atomic writer (torch-free): every file geoapp writes goes through here.

A write goes to a temporary file with a unique name beside the target (or in ``temp_dir`` on the same file system),
then is renamed over the target, so a reader, a crash or a full disk never sees half a file under the real name,
and two writers of the same file never share a temporary name. On any failure the temporary file is removed.
``durable=True`` also fsyncs the file and its folder (evidence, exports, checkpoints: files that must survive a
power cut once the call returns); caches skip that cost.

``tests/test_fileio.py`` checks that no other module renames files into place (``os.replace``, ``os.rename``,
``Path.replace``/``Path.rename``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

Content = bytes | str | Callable[[IO[bytes]], None]


def atomic_write_path(path: str | Path, write: Callable[[str], None], *, durable: bool = False,
                      temp_dir: str | Path | None = None, mode: int | None = None, suffix: str = ".tmp") -> Path:
    """``write(temporary_name)``, then rename it to ``path`` (for writers that want a file name: FAISS, PyArrow).

    ``mode``: permissions of the final file (e.g. 0o444 for content-addressed files that never change)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(temp_dir) if temp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        write(tmp_name)
        if durable:
            _fsync_file(tmp_name)
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
        tmp_name = None
        if durable:
            fsync_dir(path.parent)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return path


def atomic_write(path: str | Path, content: Content, *, durable: bool = False, temp_dir: str | Path | None = None,
                 mode: int | None = None, encoding: str = "utf-8") -> Path:
    """Write ``content`` (bytes, text, or ``write(binary file object)``) to ``path`` atomically."""

    def to_file(name: str) -> None:
        with open(name, "wb") as out:
            if callable(content):
                content(out)
            else:
                out.write(content.encode(encoding) if isinstance(content, str) else content)

    return atomic_write_path(path, to_file, durable=durable, temp_dir=temp_dir, mode=mode)


def move_into_place(source: str | Path, path: str | Path, *, durable: bool = False) -> Path:
    """Rename a finished file (written under a temporary name by a library or another process) to ``path``."""
    path = Path(path)
    if durable:
        _fsync_file(source)
    os.replace(source, path)
    if durable:
        fsync_dir(path.parent)
    return path


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(name: str | Path) -> None:
    with open(name, "rb+") as handle:
        handle.flush()
        os.fsync(handle.fileno())
