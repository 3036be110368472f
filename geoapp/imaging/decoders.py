"""Which decoders may run, and what to tell the analyst when decoding fails.

* the allow-list of Pillow formats (no EPS/Ghostscript, no exotic plugins);
* lazy, thread-safe registration of pillow-heif for HEIC/HEIF/AVIF;
* format sniffing from magic numbers, for messages;
* translating decoder exceptions (including Pillow's own decompression-bomb
  refusal) into an analyst-readable :class:`ImageLoadError`.
"""

from __future__ import annotations

import io
import re
import struct
import threading

from PIL import Image, UnidentifiedImageError

from .errors import _DECODE_ERRORS, ImageLoadError, _short_error

# Pillow format names we are willing to decode.  Everything else (EPS, which
# shells out to Ghostscript; PSD; FITS; WMF; TGA, which has no magic number and
# matches random data; ...) is refused.  "MPO" is not listed because Pillow
# reaches it through the JPEG opener.
_ALLOWED_FORMATS = frozenset(
    {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM", "JPEG2000", "AVIF", "HEIF"}
)
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

# ISO-BMFF brands used by HEIC/HEIF/AVIF files ("....ftypheic...").
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
     b"mif1", b"msf1", b"avif", b"avis"}
)


_heif_lock = threading.Lock()
_heif_available: bool | None = None


def _ensure_heif_support() -> bool:
    """Register pillow-heif's opener on first use; return whether it is available."""
    global _heif_available
    if _heif_available is None:
        with _heif_lock:
            if _heif_available is None:
                try:
                    import pillow_heif
                except ImportError:
                    _heif_available = False
                else:
                    try:
                        pillow_heif.register_heif_opener()
                    except (OSError, RuntimeError, ValueError):
                        # A broken libheif install behaves like a missing one.
                        _heif_available = False
                    else:
                        _heif_available = True
    return _heif_available


def _allowed_formats() -> list[str]:
    """Pillow format names to try, in Pillow's own detection order."""
    heif_ok = _ensure_heif_support()
    Image.init()  # make sure every plugin (and thus Image.ID) is registered
    return [
        fmt
        for fmt in Image.ID
        if fmt in _ALLOWED_FORMATS and (fmt != "HEIF" or heif_ok)
    ]


def _looks_like_heif(data: bytes) -> bool:
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


_MAGIC_NUMBERS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _guess_format(data: bytes | None) -> str | None:
    """Format named by the magic number, for messages when Pillow gave up early."""
    if not data:
        return None
    if _looks_like_heif(data):
        return "HEIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC_NUMBERS:
        if data.startswith(magic):
            return fmt
    return None


def _header_size(data: bytes | None) -> tuple[int, int] | None:
    """Width and height claimed by the header, read without Pillow's bomb check.

    Only used to word the message after Pillow refused a file as too large:
    the format plugin is instantiated directly, which parses the header but
    decodes no pixels.
    """
    if not data:
        return None
    prefix = data[:16]
    for fmt in _allowed_formats():
        factory, accept = Image.OPEN.get(fmt, (None, None))
        if factory is None:
            continue
        try:
            accepted = accept(prefix) if accept is not None else True
            if accepted is not True:
                continue  # False, or a str explaining a missing codec
            with factory(io.BytesIO(data), "") as probe:
                return probe.size
        except _DECODE_ERRORS:
            continue
    return None


def _bomb_error(name: str, exc: BaseException, data: bytes | None) -> ImageLoadError:
    """Message for an image that Pillow itself refused as a decompression bomb."""
    match = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
    size = _header_size(data)
    if size is not None:
        what = f"{size[0]}×{size[1]} pixels"
    elif match:
        what = f"{match.group(1)} pixels"
    else:
        what = "the image size"
    limit = f" of {match.group(2)} pixels" if match else ""
    return ImageLoadError(
        name, f"{what} exceeds the limit{limit} (decompression-bomb protection)"
    )


def _decode_error(
    name: str, exc: BaseException, fmt: str | None, data: bytes | None
) -> ImageLoadError:
    """Translate a decoder exception into an analyst-readable ImageLoadError."""
    kind = fmt or _guess_format(data) or "image"
    if isinstance(exc, Image.DecompressionBombError):
        return _bomb_error(name, exc, data)
    if isinstance(exc, UnidentifiedImageError):
        if data is not None and _looks_like_heif(data):
            if not _ensure_heif_support():
                return ImageLoadError(
                    name,
                    "HEIC/HEIF/AVIF image, but HEIC support is not installed "
                    "(pip install pillow-heif)",
                )
            return ImageLoadError(name, "the HEIC/HEIF file is truncated or corrupt")
        other = _identify_unrestricted(data)
        if other is not None:
            return ImageLoadError(name, f"unsupported image format ({other})")
        return ImageLoadError(name, "not an image (unrecognised format)")
    if isinstance(exc, MemoryError):
        return ImageLoadError(name, "not enough memory to decode the image")
    detail = _short_error(exc)
    lowered = detail.lower()
    if "truncated" in lowered or isinstance(exc, EOFError):
        return ImageLoadError(
            name, f"the file is truncated or corrupt ({kind} data ends early)"
        )
    if isinstance(exc, (SyntaxError, struct.error, IndexError, KeyError, ZeroDivisionError)):
        return ImageLoadError(name, f"the file is corrupt ({kind}: {detail})")
    return ImageLoadError(
        name, f"the file is corrupt or uses an unsupported {kind} feature ({detail})"
    )


def _identify_unrestricted(data: bytes | None) -> str | None:
    """Name the format of data we refused, without decoding any pixels."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            return probe.format
    except _DECODE_ERRORS:
        return None
