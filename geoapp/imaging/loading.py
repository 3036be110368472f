"""load_image and read_exif: the checked path from an untrusted source to pixels."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from typing import IO, Any, Union

from PIL import Image

from .decoders import _JPEG_FORMATS, _allowed_formats, _decode_error
from .errors import _DECODE_ERRORS, ImageLoadError, _short_error
from .exif import ExifInfo, _exif_from_image
from .normalise import (
    _apply_orientation,
    _count_frames,
    _decoder_orientation_note,
    _file_orientation,
    _frame_note,
    _oriented_size,
    _to_rgb,
)
from .sources import _display_name, _read_source

#: Default pixel limit: the same value at which Pillow itself refuses to open
#: an image (``2 * Image.MAX_IMAGE_PIXELS`` with Pillow's default setting).
DEFAULT_MAX_PIXELS = 178_956_970

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes], Image.Image]


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
