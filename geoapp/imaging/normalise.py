"""Pixel normalisation to 8-bit RGB: modes, alpha, 16/32-bit, orientation, frames.

Each helper appends a human-readable note for every change it makes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from .errors import _DECODE_ERRORS, _EXIF_ERRORS, _short_error
from .exif import _TAG_ORIENTATION, ExifInfo, _valid_orientation

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
