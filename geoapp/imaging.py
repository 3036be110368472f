"""Safe image loading, normalisation and EXIF extraction for analysts' photos.

Everything an analyst drops into geoapp goes through :func:`load_image`.  The
files are untrusted (scraped, forwarded, half-downloaded), so this module:

* reads the bytes once (with a size cap), hashes them, and decodes from memory;
* restricts decoding to a list of ordinary photo formats (no EPS/Ghostscript,
  no exotic plugins);
* checks the pixel count from the header *before* decoding anything;
* turns every decoder failure into an :class:`ImageLoadError` whose message an
  analyst can read ("IMG_1.jpg: the file is truncated or corrupt (...)");
* normalises the result to an 8-bit RGB ``PIL.Image`` (EXIF orientation
  applied, first frame, alpha on white, CMYK/16-bit/palette converted) and
  records each normalisation as a human-readable note;
* parses the EXIF fields that matter for geolocation (GPS, capture time,
  camera) without ever raising on malformed metadata.

No torch here on purpose: this module is imported by the CLI and the UI too.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import io
import math
import os
import re
import struct
import threading
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MAX_FILE_BYTES",
    "ExifInfo",
    "ImageLoadError",
    "LoadedImage",
    "iter_image_paths",
    "load_image",
    "read_exif",
]

#: Default pixel limit: the same value at which Pillow itself refuses to open
#: an image (``2 * Image.MAX_IMAGE_PIXELS`` with Pillow's default setting).
DEFAULT_MAX_PIXELS = 178_956_970

#: Files larger than this are refused before any byte is read.
MAX_FILE_BYTES = 512 * 1024 * 1024

#: File extensions (lower case, with the leading dot, as ``Path.suffix``
#: gives them) that :func:`iter_image_paths` picks up when scanning folders.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png", ".gif", ".webp", ".bmp",
        ".tif", ".tiff",
        ".heic", ".heif", ".avif",
        ".ppm", ".pgm", ".pbm",
    }
)

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

# EXIF tag ids used below (names from the EXIF 2.32 specification).
_TAG_ORIENTATION = 0x0112
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_SOFTWARE = 0x0131
_TAG_DATETIME = 0x0132
_TAG_EXIF_IFD = 0x8769
_TAG_GPS_IFD = 0x8825
_TAG_INTEROP_IFD = 0xA005
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_USER_COMMENT = 0x9286
_TAG_LENS_MAKE = 0xA433
_TAG_LENS_MODEL = 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6

_RAW_VALUE_MAX_CHARS = 200
_RAW_MAX_SEQUENCE = 16
_MAX_ALTITUDE_M = 100_000.0  # beyond the stratosphere: not a photo location

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], Image.Image]


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


@dataclass
class ExifInfo:
    """The EXIF fields that matter for geolocation, already cleaned up.

    Every field is ``None`` when absent or unusable (malformed, out of range).
    ``raw`` maps readable tag names (``"Make"``, ``"GPSLatitude"``, ...) to
    short string renderings of all IFD0/Exif/GPS tags; binary and very long
    values are elided.
    """

    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_altitude_m: float | None = None
    capture_time: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    software: str | None = None
    orientation: int | None = None
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def has_gps(self) -> bool:
        """True when both coordinates are present."""
        return self.gps_lat is not None and self.gps_lon is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dictionary of all fields."""
        return asdict(self)


@dataclass
class LoadedImage:
    """A decoded, normalised image plus what we know about the original file.

    ``image`` is always 8-bit RGB with the EXIF orientation applied.
    ``name`` is a display string only and is never used as a path.
    ``notes`` lists the normalisations applied; ``warnings`` lists problems
    noticed while decoding that did not prevent loading (e.g. corrupt EXIF).
    """

    image: Image.Image
    name: str
    sha256: str
    format: str | None
    original_size: tuple[int, int]
    file_size: int | None
    exif: ExifInfo = field(default_factory=ExifInfo)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary of everything except the pixels."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "format": self.format,
            "original_size": list(self.original_size),
            "size": list(self.image.size),
            "file_size": self.file_size,
            "exif": self.exif.to_dict(),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------
# HEIF support (pillow-heif), registered lazily and only once
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Reading the source
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------

_BYTESIO_REPR = re.compile(r"<_io\.\w+ object at 0x[0-9a-fA-F]+>")


def _short_error(exc: BaseException, limit: int = 160) -> str:
    """One-line, size-limited text of an exception, without memory addresses."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    text = _BYTESIO_REPR.sub("the data", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# --------------------------------------------------------------------------
# EXIF parsing
# --------------------------------------------------------------------------


def _clean_text(value: Any, limit: int = _RAW_VALUE_MAX_CHARS) -> str | None:
    """Text EXIF value -> stripped str, or None when empty/unusable."""
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = value.split("\x00", 1)[0].strip()
    text = "".join(ch for ch in text if ch.isprintable())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _to_float(value: Any) -> float | None:
    """EXIF number (IFDRational, int, float, (num, den)) -> finite float or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, tuple) and len(value) == 2:
        num, den = (_to_float(v) for v in value)
        if num is None or den is None or den == 0:
            return None
        result = num / den
    else:
        try:
            result = float(value)  # IFDRational 0/0 gives nan, filtered below
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return None
    return result if math.isfinite(result) else None


def _dms_to_degrees(value: Any) -> float | None:
    """(deg, min, sec) rationals -> decimal degrees; also accepts (deg, min) or deg."""
    parts = list(value) if isinstance(value, (tuple, list)) else [value]
    if not parts or len(parts) > 3:
        return None
    degrees = _to_float(parts[0])
    if degrees is None:
        return None
    rest: list[float] = []
    for part in parts[1:]:
        number = _to_float(part)
        # Some cameras write 0/0 for unused minutes/seconds; treat as zero.
        number = 0.0 if number is None else number
        if number < 0:
            return None
        rest.append(number)
    minutes = rest[0] if rest else 0.0
    seconds = rest[1] if len(rest) > 1 else 0.0
    magnitude = abs(degrees) + minutes / 60.0 + seconds / 3600.0
    return -magnitude if degrees < 0 else magnitude


def _gps_ref(value: Any) -> str | None:
    text = _clean_text(value)
    return text[0].upper() if text else None


def _signed_coordinate(value: Any, ref: Any, negative_ref: str, limit: float) -> float | None:
    degrees = _dms_to_degrees(value)
    if degrees is None:
        return None
    if _gps_ref(ref) == negative_ref:
        degrees = -abs(degrees)
    # A missing or unknown ref keeps the stored sign (positive = N/E).
    return degrees if -limit <= degrees <= limit else None


def _parse_gps(gps: dict[int, Any], info: ExifInfo) -> None:
    lat = _signed_coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "S", 90.0)
    lon = _signed_coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "W", 180.0)
    # Half a position is useless, and exactly (0, 0) is what cameras without
    # a fix write ("null island"); report neither as a location.
    if lat is not None and lon is not None and not (lat == 0.0 and lon == 0.0):
        info.gps_lat, info.gps_lon = lat, lon

    altitude = _to_float(gps.get(_GPS_ALT))
    if altitude is not None:
        ref = gps.get(_GPS_ALT_REF)
        if isinstance(ref, bytes):
            ref = ref[:1]
            below = ref == b"\x01" or ref == b"1"
        else:
            below = ref == 1 or ref == "1"
        if below:
            altitude = -abs(altitude)
        if abs(altitude) <= _MAX_ALTITUDE_M:
            info.gps_altitude_m = altitude


_DATETIME_RE = re.compile(
    r"^\s*(\d{4})[:\-/.](\d{2})[:\-/.](\d{2})[ T](\d{2}):(\d{2}):(\d{2})"
)
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def _iso_datetime(value: Any, offset: Any) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ optional "+HH:MM") -> ISO-8601, or None."""
    text = _clean_text(value)
    if text is None:
        return None
    match = _DATETIME_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    # Reject placeholders like "0000:00:00 00:00:00" and impossible dates.
    if year < 1800 or not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        datetime.date(year, month, day)
    except ValueError:
        return None
    iso = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    offset_text = _clean_text(offset)
    if offset_text:
        off = _OFFSET_RE.match(offset_text)
        if off and int(off.group(2)) <= 14 and int(off.group(3)) < 60:
            iso += f"{off.group(1)}{off.group(2)}:{off.group(3)}"
    return iso


def _format_number(value: Any) -> str:
    number = _to_float(value)
    if number is None:
        if getattr(value, "denominator", None) == 0:
            return f"{getattr(value, 'numerator', 0)}/0"
        return str(value)
    return f"{number:.10g}"


def _raw_value(tag: int, value: Any) -> str:
    """Short, printable rendering of one EXIF value for ``ExifInfo.raw``."""
    if isinstance(value, bytes):
        if tag == _TAG_USER_COMMENT and value[:8] == b"ASCII\x00\x00\x00":
            value = value[8:]
        stripped = value.rstrip(b"\x00 ")
        if stripped and len(stripped) <= 64 and all(32 <= b < 127 for b in stripped):
            return stripped.decode("ascii")
        if not stripped and len(value) > 8:
            return ""  # an all-blank comment field
        if len(value) <= 8:
            # Small BYTE fields (GPSVersionID, GPSAltitudeRef) are numbers.
            return ", ".join(str(b) for b in value)
        return f"<binary, {len(value)} bytes>"
    if isinstance(value, str):
        return _clean_text(value) or ""
    if isinstance(value, (tuple, list)):
        if len(value) > _RAW_MAX_SEQUENCE:
            return f"<{len(value)} values>"
        return ", ".join(_raw_value(tag, v) for v in value)
    if isinstance(value, (int, float)) or hasattr(value, "denominator"):
        return _format_number(value)
    text = str(value)
    return text if len(text) <= _RAW_VALUE_MAX_CHARS else text[: _RAW_VALUE_MAX_CHARS - 1] + "…"


def _add_raw(raw: dict[str, str], tags: dict[int, Any], names: dict[int, str]) -> None:
    for tag, value in tags.items():
        if tag in (_TAG_EXIF_IFD, _TAG_GPS_IFD, _TAG_INTEROP_IFD) or isinstance(value, dict):
            continue  # pointers to other IFDs, not values
        key = names.get(tag, f"Tag0x{tag:04X}")
        raw.setdefault(key, _raw_value(tag, value))


def _valid_orientation(value: Any) -> int | None:
    """EXIF orientation 1..8, or None for anything else (tuples, bools, 0, 9...)."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    return None


def _exif_from_image(im: Image.Image, problems: list[str] | None = None) -> ExifInfo:
    """Build an ExifInfo from an opened (not necessarily loaded) image; never raises."""
    info = ExifInfo()

    def note(section: str, exc: BaseException) -> None:
        if problems is not None:
            problems.append(f"EXIF {section} could not be read ({_short_error(exc)})")

    try:
        exif = im.getexif()
    except _EXIF_ERRORS as e:
        note("data", e)
        return info

    # Each block is independent so one malformed IFD does not hide the others.
    try:
        base = dict(exif)
        _add_raw(info.raw, base, ExifTags.TAGS)
        info.camera_make = _clean_text(base.get(_TAG_MAKE))
        info.camera_model = _clean_text(base.get(_TAG_MODEL))
        info.software = _clean_text(base.get(_TAG_SOFTWARE))
        # pillow-heif applies the rotation itself and resets the tag to 1,
        # keeping the file's value in info["original_orientation"].
        info.orientation = _valid_orientation(
            im.info.get("original_orientation")
        ) or _valid_orientation(base.get(_TAG_ORIENTATION))
    except _EXIF_ERRORS as e:
        base = {}
        note("main directory", e)

    try:
        exif_ifd = dict(exif.get_ifd(_TAG_EXIF_IFD))
        _add_raw(info.raw, exif_ifd, ExifTags.TAGS)
    except _EXIF_ERRORS as e:
        exif_ifd = {}
        note("Exif directory", e)

    try:
        lens = _clean_text(exif_ifd.get(_TAG_LENS_MODEL))
        lens_make = _clean_text(exif_ifd.get(_TAG_LENS_MAKE))
        if lens and lens_make and not lens.lower().startswith(lens_make.lower()):
            lens = f"{lens_make} {lens}"
        info.lens = lens or lens_make

        original = exif_ifd.get(_TAG_DATETIME_ORIGINAL, base.get(_TAG_DATETIME_ORIGINAL))
        # Each timestamp only gets its own offset tag: OffsetTime belongs to
        # DateTime (last edit), which may have happened in another time zone.
        offset_original = exif_ifd.get(_TAG_OFFSET_TIME_ORIGINAL)
        info.capture_time = _iso_datetime(original, offset_original) or _iso_datetime(
            base.get(_TAG_DATETIME), exif_ifd.get(_TAG_OFFSET_TIME)
        )
    except _EXIF_ERRORS as e:
        note("capture details", e)

    try:
        gps = dict(exif.get_ifd(_TAG_GPS_IFD))
        _add_raw(info.raw, gps, ExifTags.GPSTAGS)
        _parse_gps(gps, info)
    except _EXIF_ERRORS as e:
        note("GPS directory", e)
    return info


# --------------------------------------------------------------------------
# Pixel normalisation
# --------------------------------------------------------------------------

_HIGH_DEPTH_LABELS = {
    "I;16": "16-bit",
    "I;16L": "16-bit",
    "I;16B": "16-bit",
    "I;16N": "16-bit",
    "I": "32-bit integer",
    "F": "32-bit float",
}


def _scale_to_8bit(im: Image.Image, notes: list[str]) -> Image.Image:
    """Stretch a 16/32-bit single-channel image's actual value range onto 0..255."""
    values = np.asarray(im).astype(np.float32)
    finite = np.isfinite(values)
    label = _HIGH_DEPTH_LABELS.get(im.mode, im.mode)
    if not finite.any():
        notes.append(f"{label} image scaled to 8-bit (no finite values; shown black)")
        return Image.fromarray(np.zeros(values.shape, dtype=np.uint8)).convert("RGB")
    low = float(values[finite].min())
    high = float(values[finite].max())
    if high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        # A flat image has no range to stretch; keep its nominal brightness.
        nominal = 65535.0 if im.mode.startswith("I;16") else 255.0
        scaled = np.full(values.shape, min(max(low, 0.0), nominal) * 255.0 / nominal)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    notes.append(f"{label} image scaled to 8-bit (values {low:g}–{high:g} mapped to 0–255)")
    return Image.fromarray(out).convert("RGB")


def _flatten_alpha(im: Image.Image, notes: list[str]) -> Image.Image:
    """Composite an image with transparency onto white; drop an all-opaque alpha."""
    original_mode = im.mode
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    alpha = rgba.getchannel("A")
    lowest, _ = alpha.getextrema()
    if lowest == 255:
        # Fully opaque: nothing to composite, only the colour model changes.
        if original_mode not in ("RGBA", "RGBa"):
            notes.append(f"converted {original_mode} to RGB")
        return rgba.convert("RGB")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba.convert("RGB"), mask=alpha)
    notes.append("alpha composited on white")
    return background


def _to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, recording what was done."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _HIGH_DEPTH_LABELS:
        return _scale_to_8bit(im, notes)
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return _flatten_alpha(im, notes)
    if mode == "P" and "transparency" in im.info:
        return _flatten_alpha(im, notes)
    if mode == "RGBX":
        return im.convert("RGB")  # padding byte only, nothing to note
    converted = im.convert("RGB")
    notes.append(f"converted {mode} to RGB")
    return converted


_ORIENTATION_WORDING = {
    2: "flipped",
    3: "rotated",
    4: "flipped",
    5: "rotated and flipped",
    6: "rotated",
    7: "rotated and flipped",
    8: "rotated",
}
_ORIENTATION_METHODS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _file_orientation(im: Image.Image) -> int:
    """Orientation still to be applied to the pixels (1 = none)."""
    if "original_orientation" in im.info:
        return 1  # pillow-heif already rotated the pixels
    try:
        value = im.getexif().get(_TAG_ORIENTATION, 1)
    except _EXIF_ERRORS:
        return 1
    return _valid_orientation(value) or 1


def _apply_orientation(
    im: Image.Image, orientation: int, notes: list[str], problems: list[str]
) -> Image.Image:
    """Turn the pixels upright (orientation 2..8) and note what was done."""
    if orientation == 1:
        return im
    try:
        result = ImageOps.exif_transpose(im)
    except _EXIF_ERRORS as e:
        # exif_transpose also rewrites the EXIF block, which can fail on odd
        # metadata; the pixels still need turning.
        problems.append(f"EXIF could not be updated after rotation ({_short_error(e)})")
        result = im.transpose(_ORIENTATION_METHODS[orientation])
    notes.append(f"{_ORIENTATION_WORDING[orientation]} per EXIF orientation {orientation}")
    return result


def _decoder_orientation_note(im: Image.Image, exif: ExifInfo, notes: list[str]) -> None:
    """Note a rotation that pillow-heif already applied while decoding."""
    if "original_orientation" in im.info and exif.orientation not in (None, 1):
        wording = _ORIENTATION_WORDING.get(exif.orientation, "rotated")
        notes.append(
            f"{wording} per EXIF orientation {exif.orientation} (applied by the HEIF decoder)"
        )


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _frame_note(fmt: str | None, n_frames: int) -> str:
    if fmt == "TIFF":
        return f"multi-page TIFF: used page 1 of {n_frames}"
    if fmt in ("MPO", "HEIF", "AVIF"):
        return f"file holds {n_frames} images: used image 1 of {n_frames}"
    return f"animated image: used frame 1 of {n_frames}"


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _validate_limits(max_pixels: int, min_side: int | None) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer, not {max_pixels!r}")
    if min_side is not None and (
        isinstance(min_side, bool) or not isinstance(min_side, int) or min_side <= 0
    ):
        raise ValueError(f"min_side must be a positive integer or None, not {min_side!r}")


def _check_dimensions(name: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(name, f"the image has zero width or height ({width}×{height})")
    if width * height > max_pixels:
        raise ImageLoadError(
            name,
            f"{width}×{height} pixels exceeds the limit of {max_pixels} pixels "
            "(decompression-bomb protection)",
        )


def _collect_warnings(caught: list[warnings.WarningMessage], problems: list[str]) -> None:
    """Keep decoder warnings as notes for the analyst instead of letting them print."""
    for item in caught:
        if issubclass(item.category, Image.DecompressionBombWarning):
            continue  # the size was checked against max_pixels explicitly
        text = _short_error(Exception(str(item.message)))
        if text not in problems:
            problems.append(text)


def _count_frames(im: Image.Image) -> int:
    try:
        count = int(getattr(im, "n_frames", 1))
    except _DECODE_ERRORS:
        # Counting walks the whole file; a broken later frame must not stop
        # us from showing the first one.
        count = 1
    try:
        if im.tell() != 0:
            im.seek(0)
    except _DECODE_ERRORS:
        pass
    return max(count, 1)


def _apply_draft(im: Image.Image, min_side: int, orientation: int, notes: list[str]) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale while both sides stay ≥ min_side."""
    before = im.size
    # The request is symmetric, so rotation by EXIF does not change the outcome.
    im.draft("RGB", (min_side, min_side))
    if im.size != before:
        width, height = _oriented_size(im.size, orientation)
        scale = round(before[0] / im.size[0])
        notes.append(f"decoded at reduced size {width}×{height} for speed (1/{scale} scale)")


def _load_pil_input(
    source: Image.Image, name: str, max_pixels: int
) -> LoadedImage:
    """Normalise an in-memory PIL image without modifying the caller's object."""
    notes: list[str] = []
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _check_dimensions(name, source.size, max_pixels)
            exif = _exif_from_image(source, problems)
            position = source.tell() if hasattr(source, "n_frames") else 0
            n_frames = _count_frames(source)
            try:
                source.load()
                frame: Image.Image = source
                if n_frames > 1:
                    notes.append(_frame_note(source.format, n_frames))
                    frame = source.copy()
            finally:
                if position and hasattr(source, "seek"):
                    source.seek(position)  # give the caller its frame back
            orientation = _file_orientation(frame)
            _decoder_orientation_note(frame, exif, notes)
            original_size = _oriented_size(frame.size, orientation)
            frame = _apply_orientation(frame, orientation, notes, problems)
            rgb = _to_rgb(frame, notes)
        except ImageLoadError:
            raise
        except _DECODE_ERRORS as e:
            raise _decode_error(name, e, source.format, None) from e
    _collect_warnings(caught, problems)
    if rgb is source:
        rgb = source.copy()  # never hand back (and later mutate) the caller's object
    digest = hashlib.sha256(rgb.tobytes()).hexdigest()
    return LoadedImage(
        image=rgb,
        name=name,
        sha256=digest,
        format=source.format,
        original_size=original_size,
        file_size=None,
        exif=exif,
        notes=notes,
        warnings=problems,
    )


def load_image(
    source: Source,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> LoadedImage:
    """Load, validate and normalise one image for analysis.

    :param source: a path (``str``/``Path``), ``bytes``/``bytearray``/
        ``memoryview``, a binary file-like object, or a ``PIL.Image.Image``.
    :param name: display name used in messages and reports (never opened as a
        path).  Defaults to the file name, ``"<bytes>"``, the stream's file
        name or ``"<stream>"``, or ``"<PIL image>"``.
    :param max_pixels: refuse images whose header claims more pixels than this
        (checked before decoding).  Pillow's own hard limit
        (``2 * Image.MAX_IMAGE_PIXELS``) still applies on top of it.
    :param min_side: speed hint for JPEGs: decode at a reduced DCT scale as
        long as both sides stay at least this large.  Other formats are
        decoded at full size.
    :returns: a :class:`LoadedImage` whose ``image`` is 8-bit RGB.
    :raises ImageLoadError: for anything wrong with the file itself.
    :raises TypeError: for an unsupported ``source`` type.
    :raises ValueError: for invalid ``max_pixels``/``min_side`` arguments.

    Decoder warnings are captured with :func:`warnings.catch_warnings`, which
    swaps the process-wide warning state for the duration of the call; in a
    multi-threaded program, warnings other threads emit meanwhile may be
    recorded here instead of shown.  Native libraries (libjpeg, libtiff) may
    still print their own diagnostics to stderr.
    """
    _validate_limits(max_pixels, min_side)
    display = _display_name(source, name)
    if isinstance(source, Image.Image):
        return _load_pil_input(source, display, max_pixels)

    data = _read_source(source, display)
    if not data:
        raise ImageLoadError(display, "the file is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    formats = _allowed_formats()

    notes: list[str] = []
    problems: list[str] = []
    fmt: str | None = None
    # Record (rather than print or globally silence) every warning raised while
    # Pillow parses this file; the bomb warning is replaced by our own check.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im = Image.open(io.BytesIO(data), formats=formats)
            fmt = im.format
            _check_dimensions(display, im.size, max_pixels)
            exif = _exif_from_image(im, problems)
            n_frames = _count_frames(im)
            if n_frames > 1:
                notes.append(_frame_note(fmt, n_frames))
            orientation = _file_orientation(im)
            _decoder_orientation_note(im, exif, notes)
            original_size = _oriented_size(im.size, orientation)
            if min_side is not None and fmt in _JPEG_FORMATS:
                _apply_draft(im, min_side, orientation, notes)
            im.load()  # decode now so truncation is reported here, not later
            im = _apply_orientation(im, orientation, notes, problems)
            rgb = _to_rgb(im, notes)
        except ImageLoadError:
            raise
        except _DECODE_ERRORS as e:
            raise _decode_error(display, e, fmt, data) from e
    _collect_warnings(caught, problems)

    return LoadedImage(
        image=rgb,
        name=display,
        sha256=digest,
        format=fmt,
        original_size=original_size,
        file_size=len(data),
        exif=exif,
        notes=notes,
        warnings=problems,
    )


def read_exif(source: Source) -> ExifInfo:
    """Read only the EXIF metadata of an image (pixels are not decoded).

    Malformed or missing EXIF never raises: the affected fields are ``None``.
    A source that cannot be read at all, or is not an image, raises
    :class:`ImageLoadError` like :func:`load_image` does.
    """
    display = _display_name(source, None)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        if isinstance(source, Image.Image):
            return _exif_from_image(source)
        data = _read_source(source, display)
        if not data:
            raise ImageLoadError(display, "the file is empty (0 bytes)")
        formats = _allowed_formats()
        try:
            im = Image.open(io.BytesIO(data), formats=formats)
        except _DECODE_ERRORS as e:
            raise _decode_error(display, e, None, data) from e
        with im:
            return _exif_from_image(im)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _wanted_in_folder(path: Path) -> bool:
    """Folder scans pick up image extensions and extension-less files."""
    suffix = path.suffix.lower()
    return suffix == "" or suffix in IMAGE_EXTENSIONS


def _scan_folder(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirnames, filenames in os.walk(folder):
        # Prune in place so os.walk skips hidden folders (.git, .thumbnails...).
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d)) if recursive else []
        for filename in filenames:
            if _is_hidden(filename):
                continue
            path = Path(root) / filename
            if _wanted_in_folder(path) and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.parts)


def _has_glob_magic(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def iter_image_paths(inputs: Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand files, folders and glob patterns into a de-duplicated list of paths.

    * An existing file is always included, whatever its extension, so that the
      caller can report a clear error for it.
    * A folder contributes its regular files (recursively unless
      ``recursive=False``), sorted, skipping hidden files and folders and
      keeping only :data:`IMAGE_EXTENSIONS` and extension-less files.
    * A glob pattern (``*``, ``?``, ``[``, ``**``) contributes every file it
      matches, like a shell would; matched folders are scanned as above.
    * A missing path, or a pattern matching nothing, is returned as-is so the
      caller reports "no such file" for it.  Nothing here raises for bad input.

    Order is preserved and duplicates (same absolute path) are dropped.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # a single path is a common slip; accept it
    result: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            result.append(path)

    for item in inputs:
        text = os.fspath(item)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        expanded = os.path.expanduser(text)
        path = Path(expanded)
        if path.is_dir():
            for found in _scan_folder(path, recursive):
                add(found)
        elif path.exists() or path.is_symlink() or not _has_glob_magic(text):
            add(path)
        else:
            matches = sorted(glob.glob(expanded, recursive=True), key=lambda m: Path(m).parts)
            if not matches:
                add(path)
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    for found in _scan_folder(match_path, recursive):
                        add(found)
                else:
                    add(match_path)
    return result
