"""Safe image loading, normalisation and EXIF extraction for analysts' photos.

Everything an analyst drops into geoapp goes through :func:`load_image`.  The
files are untrusted (scraped, forwarded, half-downloaded), so this package:

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

Modules (each imports only those listed above it):

* ``errors``    -- ImageLoadError, caught exception families, short error texts
* ``decoders``  -- decoder allow-list, pillow-heif, format sniffing, decoder-error messages
* ``sources``   -- reading paths, bytes and streams with the ``MAX_FILE_BYTES`` cap
* ``exif``      -- ExifInfo and EXIF/GPS/date parsing
* ``normalise`` -- conversion to 8-bit RGB, alpha, 16-bit, orientation, frames
* ``loading``   -- load_image and read_exif
* ``paths``     -- iter_image_paths (files, folders, glob patterns)

No torch here on purpose: this package is imported by the CLI and the UI too.
"""

from __future__ import annotations

from .errors import ImageLoadError
from .exif import ExifInfo
from .loading import DEFAULT_MAX_PIXELS, LoadedImage, Source, load_image, read_exif
from .paths import IMAGE_EXTENSIONS, iter_image_paths
from .sources import MAX_FILE_BYTES

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
