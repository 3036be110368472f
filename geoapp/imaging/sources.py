"""Reading an image source (path, bytes, stream) into memory, with a size cap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from PIL import Image

from .errors import ImageLoadError, _short_error

#: Files larger than this are refused before any byte is read.
MAX_FILE_BYTES = 512 * 1024 * 1024


def _format_mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _too_large(name: str, size: int) -> ImageLoadError:
    return ImageLoadError(
        name,
        f"the file is too large ({_format_mb(size)}; the limit is "
        f"{MAX_FILE_BYTES // 2**20} MB)",
    )


def _display_name(source: Any, name: str | None) -> str:
    """Display name for messages: the caller's ``name`` or one derived from the source."""
    if name is not None:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        return Path(text).name or text
    if isinstance(source, Image.Image):
        return "<PIL image>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    stream_name = getattr(source, "name", None)
    if isinstance(stream_name, str) and stream_name:
        return Path(stream_name).name or stream_name
    return "<stream>"


def _read_path(path: str | os.PathLike, name: str) -> bytes:
    """Read a whole file, refusing folders, special files and oversized files."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise ImageLoadError(name, "no such file") from e
    except PermissionError as e:
        raise ImageLoadError(name, "permission denied") from e
    except (OSError, ValueError) as e:  # ValueError: embedded NUL byte etc.
        raise ImageLoadError(name, f"cannot access the file ({_short_error(e)})") from e

    if os.path.isdir(path):
        raise ImageLoadError(name, "is a folder, not an image file")
    if not os.path.isfile(path):
        # FIFOs and devices would block or never end.
        raise ImageLoadError(name, "not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise _too_large(name, st.st_size)

    try:
        with open(path, "rb") as fh:
            # +1 so a file that grew since stat() is still caught below.
            data = fh.read(MAX_FILE_BYTES + 1)
    except PermissionError as e:
        raise ImageLoadError(name, "permission denied") from e
    except OSError as e:
        raise ImageLoadError(name, f"cannot read the file ({_short_error(e)})") from e
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(name, len(data))
    return data


def _read_stream(stream: IO[bytes], name: str) -> bytes:
    """Read a binary file-like object completely (with the size cap)."""
    try:
        data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageLoadError(name, f"cannot read the data ({_short_error(e)})") from e
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(
            f"file object for {name!r} returned {type(data).__name__}; "
            "open it in binary mode ('rb')"
        )
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(name, len(data))
    return data


def _read_source(source: Any, name: str) -> bytes:
    """Return the raw bytes of any non-PIL source type."""
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source, name)
    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_FILE_BYTES:
            raise _too_large(name, len(source))
        return bytes(source)
    if isinstance(source, memoryview):
        if source.nbytes > MAX_FILE_BYTES:
            raise _too_large(name, source.nbytes)
        return source.tobytes()
    if hasattr(source, "read"):
        return _read_stream(source, name)
    raise TypeError(
        "source must be a path, bytes, a binary file object or a PIL image, "
        f"not {type(source).__name__}"
    )
