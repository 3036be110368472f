"""The 64-bit perceptual hash of a photo file (for "same picture" tests, e.g. fusion's tempering)."""

from __future__ import annotations

from geoapp.imaging.errors import ImageLoadError
from geoapp.imaging.loading import load_image


def phash_hex(path: str) -> str | None:
    """pHash as 16 hex digits; None when the file cannot be read (it then counts as an unrelated picture)."""
    import imagehash

    try:
        return str(imagehash.phash(load_image(path).image.convert("RGB")))
    except (ImageLoadError, OSError, ValueError):
        return None
