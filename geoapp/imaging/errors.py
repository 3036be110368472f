"""ImageLoadError, the exception families we catch, and short error texts.

A leaf module: it imports nothing from the rest of :mod:`geoapp.imaging`.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from PIL import Image

# Exceptions that Pillow (and its plugins, including pillow-heif) raise for
# broken or hostile files.  SyntaxError is what PIL uses for "broken PNG file";
# the index/key/type errors come from plugins tripping over malformed headers.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError
    SyntaxError,
    ValueError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    RuntimeError,
    MemoryError,
    Image.DecompressionBombError,
)

# Exceptions that malformed EXIF can provoke inside Pillow's EXIF reader or in
# our own parsing; caught so that bad metadata never stops an analysis.
_EXIF_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
)


class ImageLoadError(ValueError):
    """An image could not be loaded; the message is meant for the analyst.

    ``str(err)`` reads like ``"IMG_0042.jpg: the file is empty (0 bytes)"``.
    The parts are also available as ``err.name`` (display name of the input)
    and ``err.reason`` (what is wrong).  ``ImageLoadError("whole message")``
    also works, leaving ``name`` as ``None``.
    """

    def __init__(self, name: str | None, reason: str | None = None) -> None:
        if reason is None:
            # Single-argument form: the argument is the whole message.
            name, reason = None, str(name)
        super().__init__(reason if name is None else f"{name}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the exception picklable (e.g. across multiprocessing workers)
        # despite the two-argument constructor.
        return (type(self), (self.name, self.reason))


_BYTESIO_REPR = re.compile(r"<_io\.\w+ object at 0x[0-9a-fA-F]+>")


def _short_error(exc: BaseException, limit: int = 160) -> str:
    """One-line, size-limited text of an exception, without memory addresses."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    text = _BYTESIO_REPR.sub("the data", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
