"""ExifInfo and the EXIF parsing behind it: GPS, capture time, camera, raw tags.

Malformed metadata never raises out of here: unusable fields become ``None``
and problems are reported to the caller as short notes.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import ExifTags, Image

from .errors import _EXIF_ERRORS, _short_error

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
