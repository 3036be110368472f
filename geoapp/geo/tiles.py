"""Web-Mercator (slippy map) tile math, vectorised with numpy.

A tile is ``(z, x, y)``: zoom ``z`` splits the world into ``2**z × 2**z`` tiles, ``x`` grows
eastwards from -180°, ``y`` grows southwards from the top edge (XYZ / Google order; MBTiles
stores the TMS row ``2**z - 1 - y``, see :func:`flip_y`). With ``n = 2**z`` the paper's
equations are

    lon = x / n · 360° − 180°                          (1)
    lat = atan(sinh(π · (1 − 2 y / n)))                (2)

for the north-west corner of tile (x, y); ``x + 1`` / ``y + 1`` give the south-east corner.

**Latitude policy.** Web Mercator stops at ±85.0511287798066° (:data:`MAX_LAT`, where the
map becomes square). Latitudes beyond it, up to the poles, are *clamped* to it: the north
pole lands in the top row of tiles and the south pole in the bottom row; nothing raises.
Latitudes outside [-90, 90], longitudes outside [-180, 180] and NaNs are errors
(:class:`~geoapp.geo.distance.CoordinateError`). Longitude 180° belongs to the last column,
as in mercantile. Regions are cut at the same limits (Antarctica south of -85.05° has no tile).

Every function takes scalars or arrays and broadcasts; results are int64 / float64 arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .distance import CoordinateError, validate_latlon

MAX_LAT = math.degrees(math.atan(math.sinh(math.pi)))  # 85.0511287798066
MAX_ZOOM = 30  # 2**30 tiles a side fits int64 arithmetic and quadkeys of 30 digits
EPSILON = 1e-14  # as mercantile: a point a rounding error left of a tile edge counts in the next tile
LL_EPSILON = 1e-11  # degrees: shrink a box so that its own south/east edges do not add a tile row/column
DEFAULT_MAX_TILES = 1_000_000


class TileError(ValueError):
    """Bad tile coordinates or zoom, or a request for too many tiles; the message says which."""


@dataclass(frozen=True)
class Tile:
    """One tile (for code that wants an object; the functions below work on arrays)."""

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        check_tiles(self.z, self.x, self.y)

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def check_zoom(z: ArrayLike) -> np.ndarray:
    """Zoom levels as int64, or :class:`TileError` when not whole numbers in [0, MAX_ZOOM]."""
    arr = np.asarray(z)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TileError(f"zoom must be a whole number in [0, {MAX_ZOOM}], got {arr.flat[0]!r}")
    elif arr.dtype.kind not in "iu":
        raise TileError(f"zoom must be a whole number in [0, {MAX_ZOOM}], got {arr!r}")
    arr = arr.astype(np.int64)
    if np.any((arr < 0) | (arr > MAX_ZOOM)):
        raise TileError(f"zoom must be between 0 and {MAX_ZOOM}, got {int(arr[(arr < 0) | (arr > MAX_ZOOM)].flat[0])}")
    return arr


def check_tiles(z: ArrayLike, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast (z, x, y) to int64 arrays; :class:`TileError` naming the first tile off the grid."""
    zz = check_zoom(z)
    try:
        zz, xx, yy = np.broadcast_arrays(zz, np.asarray(x), np.asarray(y))
    except ValueError as exc:
        raise TileError(f"z, x and y must have matching shapes: {exc}") from exc
    for name, values in (("x", xx), ("y", yy)):
        if values.dtype.kind not in "iu" and not (values.dtype.kind == "f" and np.all(values == np.round(values))):
            raise TileError(f"tile {name} must be whole numbers, got {values.flat[0]!r}")
    xx, yy = xx.astype(np.int64), yy.astype(np.int64)
    n = np.left_shift(1, zz)
    bad = (xx < 0) | (xx >= n) | (yy < 0) | (yy >= n)
    if np.any(bad):
        i = np.flatnonzero(bad.ravel())[0]
        zi, xi, yi = int(zz.flat[i]), int(xx.flat[i]), int(yy.flat[i])
        raise TileError(f"tile {zi}/{xi}/{yi} does not exist: x and y must be in [0, {2**zi - 1}] at zoom {zi}")
    return zz, xx, yy


def clamp_lat(lat: ArrayLike) -> np.ndarray:
    """Latitudes clamped to ±MAX_LAT (the documented policy for the polar caps)."""
    return np.clip(np.asarray(lat, dtype=np.float64), -MAX_LAT, MAX_LAT)


def mercator_xy(lat: ArrayLike, lon: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Normalised Web-Mercator coordinates in [0, 1] (x east, y south) after validation and clamping."""
    lat_arr, lon_arr = validate_latlon(lat, lon)
    shape = lat_arr.shape
    # In place on one buffer: for a million points the temporaries are the main cost.
    sin_lat = np.clip(lat_arr.reshape(-1), -MAX_LAT, MAX_LAT)
    np.radians(sin_lat, out=sin_lat)
    np.sin(sin_lat, out=sin_lat)
    # Same expression as mercantile, so both agree to the last bit at tile edges.
    ratio = 1.0 + sin_lat
    np.subtract(1.0, sin_lat, out=sin_lat)
    ratio /= sin_lat
    np.log(ratio, out=ratio)
    ratio *= 0.25
    ratio /= math.pi
    np.subtract(0.5, ratio, out=ratio)
    y = ratio.reshape(shape)
    return lon_arr / 360.0 + 0.5, y


def _to_index(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    index = np.floor((u + EPSILON) * n).astype(np.int64)
    return np.clip(index, 0, n - 1)


def latlon_to_tile(lat: ArrayLike, lon: ArrayLike, z: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the tiles at zoom ``z`` holding the points (lat clamped, see module docstring)."""
    u, v = mercator_xy(lat, lon)
    n = np.left_shift(1, check_zoom(z))
    return _to_index(u, n), _to_index(v, n)


def tile_lon(x: ArrayLike, z: ArrayLike) -> np.ndarray:
    """Longitude of the west edge of column ``x`` (eq. 1); ``x + 1`` gives the east edge."""
    return np.asarray(x, dtype=np.float64) / np.left_shift(1, np.asarray(z, dtype=np.int64)) * 360.0 - 180.0


def tile_lat(y: ArrayLike, z: ArrayLike) -> np.ndarray:
    """Latitude of the north edge of row ``y`` (eq. 2); ``y + 1`` gives the south edge."""
    n = np.left_shift(1, np.asarray(z, dtype=np.int64))
    return np.degrees(np.arctan(np.sinh(math.pi * (1.0 - 2.0 * np.asarray(y, dtype=np.float64) / n))))


def tile_bounds(z: ArrayLike, x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """[..., 4] (west, south, east, north) in degrees, the order mercantile.bounds uses."""
    zz, xx, yy = check_tiles(z, x, y)
    return np.stack([tile_lon(xx, zz), tile_lat(yy + 1, zz), tile_lon(xx + 1, zz), tile_lat(yy, zz)], axis=-1)


def tile_center(z: ArrayLike, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of the tile centres: the middle in Mercator (eqs. 1–2 at x + ½, y + ½).

    This is the point at the centre of the tile's image, slightly poleward of the mean of the
    edge latitudes.
    """
    zz, xx, yy = check_tiles(z, x, y)
    return tile_lat(yy + 0.5, zz), tile_lon(xx + 0.5, zz)


def parent(z: ArrayLike, x: ArrayLike, y: ArrayLike, levels: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tiles ``levels`` zoom levels up that contain each tile."""
    zz, xx, yy = check_tiles(z, x, y)
    if levels < 0 or np.any(zz < levels):
        raise TileError(f"cannot go {levels} level(s) up from zoom {int(zz.min())}")
    return zz - levels, np.right_shift(xx, levels), np.right_shift(yy, levels)


def children(z: ArrayLike, x: ArrayLike, y: ArrayLike, levels: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``2**levels × 2**levels`` grid of tiles ``levels`` zoom levels down.

    Arrays of shape ``[..., k, k]`` with ``k = 2**levels``, rows from north to south and columns
    from west to east (``levels=2`` is the paper's 4×4 subdivision).
    """
    zz, xx, yy = check_tiles(z, x, y)
    if levels < 0 or np.any(zz + levels > MAX_ZOOM):
        raise TileError(f"cannot go {levels} level(s) down: the deepest zoom is {MAX_ZOOM}")
    k = 1 << levels
    offsets = np.arange(k, dtype=np.int64)
    shape = (*zz.shape, k, k)
    cx = np.broadcast_to(np.left_shift(xx, levels)[..., None, None] + offsets[None, :], shape)
    cy = np.broadcast_to(np.left_shift(yy, levels)[..., None, None] + offsets[:, None], shape)
    cz = np.broadcast_to((zz + levels)[..., None, None], shape)
    return cz.copy(), cx.copy(), cy.copy()


def flip_y(z: ArrayLike, y: ArrayLike) -> np.ndarray:
    """XYZ row <-> TMS row (MBTiles): ``2**z - 1 - y`` (its own inverse)."""
    return np.left_shift(1, np.asarray(z, dtype=np.int64)) - 1 - np.asarray(y, dtype=np.int64)


def quadkey(z: ArrayLike, x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Bing quadkeys as a numpy array of str ('' at zoom 0)."""
    zz, xx, yy = check_tiles(z, x, y)
    flat_z, flat_x, flat_y = zz.ravel(), xx.ravel(), yy.ravel()
    depth = int(flat_z.max()) if flat_z.size else 0
    bits = np.arange(depth - 1, -1, -1, dtype=np.int64)  # most significant digit first
    digits = (np.right_shift(flat_x[:, None], bits) & 1) + 2 * (np.right_shift(flat_y[:, None], bits) & 1)
    chars = (digits + ord("0")).astype(np.uint8)
    # A zoom-z tile's digits are the last z columns (its higher bits are zero).
    texts = [row[depth - z:].tobytes().decode("ascii") for row, z in zip(chars, flat_z)]
    return np.array(texts, dtype=object).reshape(zz.shape)


def quadkey_to_tile(key: str) -> Tile:
    """The tile of a quadkey (digits 0–3; '' is the zoom-0 tile)."""
    if any(ch not in "0123" for ch in key) or len(key) > MAX_ZOOM:
        raise TileError(f"not a quadkey: {key!r} (digits 0-3, at most {MAX_ZOOM} of them)")
    x = y = 0
    for ch in key:
        digit = int(ch)
        x, y = (x << 1) | (digit & 1), (y << 1) | (digit >> 1)
    return Tile(len(key), x, y)


def _tile_range(south: float, west: float, north: float, east: float, z: int) -> tuple[int, int, int, int]:
    """Inclusive (x0, x1, y0, y1) of one non-crossing box at zoom z."""
    west, east = max(-180.0, west), min(180.0, east)
    south, north = max(-MAX_LAT, south), min(MAX_LAT, north)
    x0, y0 = latlon_to_tile(north, west, z)
    x1, y1 = latlon_to_tile(max(south + LL_EPSILON, -90.0), max(east - LL_EPSILON, -180.0), z)
    return int(x0), int(x1), int(y0), int(y1)


def tiles_in_bbox(south: float, west: float, north: float, east: float, z: int,
                  max_tiles: int = DEFAULT_MAX_TILES) -> np.ndarray:
    """[N, 3] (z, x, y) of the tiles overlapping a box; ``west > east`` crosses the antimeridian."""
    validate_latlon([south, north], [west, east])
    if south > north:
        raise CoordinateError(f"box south {south} is north of its north {north}")
    zoom = int(check_zoom(z))
    parts = [(west, 180.0), (-180.0, east)] if west > east else [(west, east)]
    blocks = []
    for w, e in parts:
        x0, x1, y0, y1 = _tile_range(south, w, north, e, zoom)
        count = (x1 - x0 + 1) * (y1 - y0 + 1)
        if count > max_tiles:
            raise TileError(f"{count} tiles at zoom {zoom} in this box, more than the limit of {max_tiles}: "
                            "use a lower zoom or a smaller area")
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        blocks.append(np.stack([np.full(xx.size, zoom), xx.ravel(), yy.ravel()], axis=1))
    return np.unique(np.concatenate(blocks), axis=0).astype(np.int64)


def tiles_covering(region: object, z: int, max_tiles: int = DEFAULT_MAX_TILES) -> np.ndarray:
    """[N, 3] (z, x, y) of the tiles whose area overlaps a region (any ``Region`` or shapely geometry).

    Refined level by level from zoom 0 (children of overlapping tiles only), so the work follows
    the region's outline, not its bounding box; antimeridian-crossing regions work because
    regions' geometries are already split at ±180°. Tiles that only touch the outline are left out.
    """
    import shapely  # here, not at the top: the CLI imports this module to build its parser (keep --help fast)

    zoom = int(check_zoom(z))
    geometry = getattr(region, "geometry", region)
    if not isinstance(geometry, shapely.Geometry) or geometry.is_empty:
        raise TileError(f"cannot find tiles for {region!r}: expected a Region or a non-empty shapely geometry")
    shapely.prepare(geometry)
    tiles = np.zeros((1, 3), dtype=np.int64)
    for level in range(zoom + 1):
        if level > 0:
            cz, cx, cy = children(tiles[:, 0], tiles[:, 1], tiles[:, 2], 1)
            tiles = np.stack([cz.ravel(), cx.ravel(), cy.ravel()], axis=1)
        boxes = shapely.box(*tile_bounds(tiles[:, 0], tiles[:, 1], tiles[:, 2]).T)
        keep = shapely.intersects(geometry, boxes) & ~shapely.touches(geometry, boxes)
        tiles = tiles[keep]
        if len(tiles) > max_tiles:
            raise TileError(f"more than {max_tiles} tiles cover this region at zoom {level}: "
                            "use a lower zoom or a smaller region")
    order = np.lexsort((tiles[:, 2], tiles[:, 1]))
    return tiles[order]
