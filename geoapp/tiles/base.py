"""The one small interface every tile source implements, and what a tile request returns.

A source answers ``tile(z, x, y)`` (XYZ order, see :mod:`geoapp.geo.tiles`) with a
:class:`TileResult`: image bytes, "no tile here" (``missing``), or a readable ``error``.
Bad tiles never raise from ``tile``: a batch of requests always gets one result per tile.
Its :class:`SourceInfo` says where tiles come from and what the licence allows.
"""

from __future__ import annotations

import io
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Self

from PIL import Image, UnidentifiedImageError

from geoapp.geo.tiles import TileError, check_tiles


MAX_TILE_PIXELS = 4096 * 4096  # 16x a 1024-px tile; PIL's own bomb limit is 89 M pixels


class TileSourceError(RuntimeError):
    """A tile source cannot be opened or used at all; the message says what to do."""


class OfflineModeError(TileSourceError):
    """An online tile source was asked for while online tiles are off."""


@dataclass(frozen=True)
class SourceInfo:
    """What a tile source is, where its tiles come from, and what its licence allows."""

    name: str  # how the user names it: "offline", a provider key, a file path, a URL template
    title: str  # human-readable label
    min_zoom: int = 0
    max_zoom: int = 0
    tile_size: int = 256  # pixels a side
    attribution: str = ""  # text to show beside any image made from its tiles
    licence: str = "unknown"
    caching_allowed: bool = False  # may tiles be stored on disk (cache, `tiles fetch`)?
    online: bool = False  # does reading a tile contact a server (which then sees the area)?
    image_format: str = "jpeg"  # jpeg | png | webp

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One paragraph for `tiles info` and the Map settings list."""
        where = "ONLINE (the server sees which areas you look at)" if self.online else "offline (local file)"
        store = "may be stored" if self.caching_allowed else "must not be stored"
        return (f"{self.title} [{self.name}]: zoom {self.min_zoom}-{self.max_zoom}, {self.tile_size} px "
                f"{self.image_format}; {where}; licence: {self.licence}; tiles {store}. "
                f"Attribution: {self.attribution or '-'}")


@dataclass(frozen=True)
class TileResult:
    """One tile request's outcome: ``data`` (encoded image), or missing, or an error message."""

    z: int
    x: int
    y: int
    data: bytes | None = None
    error: str | None = None  # None and no data: the source has no tile here
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return self.data is not None

    @property
    def missing(self) -> bool:
        return self.data is None and self.error is None

    @property
    def key(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"

    def image(self) -> Image.Image:
        """The tile as an RGB PIL image (``TileSourceError`` when missing, failed or not an image)."""
        if self.data is None:
            raise TileSourceError(f"tile {self.key}: {self.error or 'no tile here'}")
        return decode_tile(self.data, self.key)


def decode_tile(data: bytes, key: str = "tile") -> Image.Image:
    """Decode tile bytes to RGB; a corrupt or non-image payload, or one that would decode to more than
    :data:`MAX_TILE_PIXELS` (a decompression bomb), is a readable error."""
    try:
        with warnings.catch_warnings():  # PIL's bomb warning: the size is checked here instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            width, height = image.size
            if width * height > MAX_TILE_PIXELS:
                raise TileSourceError(f"tile {key}: the image is {width} × {height} pixels (a tile has at most "
                                      f"{MAX_TILE_PIXELS:,}; corrupt or hostile data)")
            image.load()
            return image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise TileSourceError(f"tile {key}: the image is far too large to decode ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise TileSourceError(f"tile {key}: the data is not a readable image ({exc})") from exc


def encode_tile(image: Image.Image, image_format: str = "jpeg", quality: int = 85) -> bytes:
    """RGB image -> bytes in the archive's format."""
    out = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(out, format="JPEG", quality=quality, optimize=True)
    else:
        image.save(out, format=image_format.upper())
    return out.getvalue()


def sniff_format(data: bytes) -> str:
    """Image format from the first bytes (tile archives do not always say)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "unknown"


class TileSource(ABC):
    """A place tiles come from. Subclasses implement :meth:`_read` (and maybe :meth:`tiles`)."""

    info: SourceInfo

    def tile(self, z: int, x: int, y: int) -> TileResult:
        """The tile (z, x, y): data, missing outside the zoom range, or an error for bad numbers."""
        try:
            check_tiles(z, x, y)
        except TileError as exc:
            return TileResult(int(z), int(x), int(y), error=str(exc))
        if not self.info.min_zoom <= z <= self.info.max_zoom:
            return TileResult(z, x, y)
        return self._read(int(z), int(x), int(y))

    def tiles(self, requests: Iterable[tuple[int, int, int]]) -> list[TileResult]:
        """Many tiles, one result each, in order (online sources fetch them concurrently)."""
        return [self.tile(*request) for request in requests]

    @abstractmethod
    def _read(self, z: int, x: int, y: int) -> TileResult:
        """Read one valid tile inside the zoom range."""

    def close(self) -> None:
        """Release files or connections (sources are also context managers)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
