"""Search-region specifications: countries, continents, circles, boxes, polygons.

A ``Region`` answers "is this point inside?" (vectorised), exposes its shape
(shapely, lon/lat, split at the antimeridian), its size, a stable cache
``key`` and, most importantly, ``candidate_points``: a regular grid of land
locations inside it that the geolocation model can score.

Grid spacing rule (see ``Region.candidate_points``)::

    s = max(min_spacing_km, sqrt(land_area_km2 / max_points))

Rows are laid every ``s`` km of latitude and points every ``s`` km along each
row (longitude step ``s / (111.32 * cos(lat))``), so the grid holds about
``land_area / s**2 <= max_points`` points.  The lattice is anchored globally
(at -90 / -180), hence deterministic and seamless across the antimeridian.

``parse_region`` turns user text ("FR", "Europe", "circle:48.85,2.35,50",
"bbox:...", GeoJSON) into a ``Region``.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import box, shape
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from .countries import Country, get_country_index
from .distance import EARTH_RADIUS_KM, CoordinateError, destination_point, haversine_km, pairwise_haversine_km, validate_latlon
from .errors import RegionError, UnknownRegionError
from .projection import equal_earth

KM_PER_DEG = 111.32
"""Kilometres per degree of latitude (and of longitude at the equator) for grids."""

MIN_CANDIDATES = 5
"""Below this many grid points a finer fallback sampling is attempted."""

CIRCLE_VERTICES = 128
MAX_RADIUS_KM = math.pi * EARTH_RADIUS_KM  # half the circumference: the whole globe

ACCEPTED_FORMS = (
    "Accepted region forms: a country code or name ('FR', 'FRA', 'France'), a continent ('Europe', "
    "'South America'), 'country:FR', 'continent:Europe', 'circle:LAT,LON,RADIUS_KM', "
    "'bbox:SOUTH,WEST,NORTH,EAST', 'geojson:PATH' or a path ending in .geojson/.json, "
    "or a GeoJSON object / JSON string (Polygon, MultiPolygon, Feature, FeatureCollection)."
)

_WORLD = box(-180.0, -90.0, 180.0, 90.0)


# --------------------------------------------------------------------------- helpers
def _num(x: float) -> str:
    """Compact, stable number formatting for keys ("48.85", "50", "-140")."""
    text = f"{round(float(x), 6):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the (Multi)Polygon parts of a geometry (e.g. after make_valid)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _wrap_split(geom: BaseGeometry) -> BaseGeometry:
    """Fold a lon/lat geometry whose x may leave [-180, 180] back into it, split at ±180."""
    minx, _, maxx, _ = geom.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return geom
    pieces = []
    for k in range(math.floor((minx + 180.0) / 360.0), math.floor((maxx + 180.0) / 360.0) + 1):
        shift = 360.0 * k
        piece = geom.intersection(box(-180.0 + shift, -90.0, 180.0 + shift, 90.0))
        if not piece.is_empty:
            pieces.append(_translate(piece, -shift))
    return _polygonal(shapely.union_all(pieces)) if pieces else shapely.Polygon()


def _translate(geom: BaseGeometry, dx: float) -> BaseGeometry:
    """Shift a geometry east by ``dx`` degrees."""
    return shapely.transform(geom, lambda c: c + np.array([dx, 0.0]))


def area_km2(geom: BaseGeometry) -> float:
    """Area of a lon/lat geometry in km², via the equal-area Equal Earth projection."""
    if geom.is_empty:
        return 0.0
    # Densify so long edges follow the lon/lat lines they mean, not projected chords.
    dense = shapely.segmentize(geom, 0.5)

    def project(coords: np.ndarray) -> np.ndarray:
        return np.stack(equal_earth(coords[:, 1], coords[:, 0]), axis=1)

    return float(shapely.transform(dense, project).area) * EARTH_RADIUS_KM**2


def _lon_extent(intervals: np.ndarray) -> tuple[float, float]:
    """Smallest (west, east) longitude range covering [start, end] intervals on the circle.

    west > east means the range crosses the antimeridian.
    """
    order = np.argsort(intervals[:, 0])
    merged: list[list[float]] = []
    for start, end in intervals[order]:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([float(start), float(end)])
    wrap_gap = merged[0][0] + 360.0 - merged[-1][1]
    gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
    if not gaps or max(gaps) <= wrap_gap:
        return float(merged[0][0]), float(merged[-1][1])
    i = int(np.argmax(gaps))
    if 360.0 - gaps[i] > 350.0:  # essentially all longitudes: report the plain full range
        return -180.0, 180.0
    return float(merged[i + 1][0]), float(merged[i][1])


def _explode(geom: BaseGeometry | list[BaseGeometry]) -> np.ndarray:
    """Single polygons of a geometry, a list of them or a collection of multi-polygons."""
    return shapely.get_parts(shapely.get_parts(geom))


def _geometry_bounds(geom: BaseGeometry) -> tuple[float, float, float, float]:
    b = shapely.bounds(_explode(geom))
    west, east = _lon_extent(b[:, [0, 2]])
    return float(b[:, 1].min()), west, float(b[:, 3].max()), east


def _geometry_extent_km(geom: BaseGeometry, max_samples: int = 800) -> float:
    """Approximate diameter: max great-circle distance between hull vertices of the parts."""
    parts = _explode(shapely.segmentize(geom, 2.0))
    coords = shapely.get_coordinates(shapely.convex_hull(parts))
    if len(coords) > max_samples:
        # keep the extreme points plus an even subsample
        extremes = [coords[:, 0].argmin(), coords[:, 0].argmax(), coords[:, 1].argmin(), coords[:, 1].argmax()]
        sample = np.unique(np.concatenate([np.linspace(0, len(coords) - 1, max_samples).astype(int), extremes]))
        coords = coords[sample]
    latlon = coords[:, ::-1]
    return float(pairwise_haversine_km(latlon, latlon).max())


def _thin(points: np.ndarray, max_points: int) -> np.ndarray:
    """Deterministically keep at most ``max_points`` evenly spread rows."""
    if len(points) <= max_points:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(np.int64))
    return points[keep]


def _ragged_ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For inclusive integer ranges [start, stop], return (owner index, value) of every element."""
    counts = np.maximum(stops - starts + 1, 0)
    owner = np.repeat(np.arange(len(starts)), counts)
    offsets = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + offsets


def lattice_points(boxes: np.ndarray, spacing_km: float) -> np.ndarray:
    """Global lattice points (lat, lon) with ``spacing_km`` falling inside any of ``boxes``.

    ``boxes`` is [K,4] (minx, miny, maxx, maxy) in lon/lat within [-180, 180].
    Rows sit every ``spacing_km`` of latitude starting half a step from the
    south pole; each row has a whole number of points round the globe (step
    about ``spacing_km / (111.32 cos lat)`` degrees) so it wraps seamlessly.
    """
    if len(boxes) == 0:
        return np.empty((0, 2))
    dlat = spacing_km / KM_PER_DEG
    n_rows = max(1, int(math.ceil(180.0 / dlat)))
    dlat = 180.0 / n_rows  # equal steps from pole to pole
    row_lo = np.clip(np.ceil((boxes[:, 1] + 90.0) / dlat - 0.5), 0, n_rows - 1).astype(np.int64)
    row_hi = np.clip(np.floor((boxes[:, 3] + 90.0) / dlat - 0.5), 0, n_rows - 1).astype(np.int64)
    box_of, rows = _ragged_ranges(row_lo, row_hi)
    lats = -90.0 + (rows + 0.5) * dlat
    n_cols = np.maximum(1, np.round(360.0 * KM_PER_DEG * np.cos(np.radians(lats)) / spacing_km)).astype(np.int64)
    dlon = 360.0 / n_cols
    col_lo = np.clip(np.ceil((boxes[box_of, 0] + 180.0) / dlon - 0.5), 0, n_cols - 1).astype(np.int64)
    col_hi = np.clip(np.floor((boxes[box_of, 2] + 180.0) / dlon - 0.5), 0, n_cols - 1).astype(np.int64)
    pair_of, cols = _ragged_ranges(col_lo, col_hi)
    cells = np.unique(np.stack([rows[pair_of], cols]), axis=1)  # overlapping boxes share points
    out_rows, out_cols = cells
    lat = -90.0 + (out_rows + 0.5) * dlat
    step = 360.0 / np.maximum(1, np.round(360.0 * KM_PER_DEG * np.cos(np.radians(lat)) / spacing_km))
    lon = -180.0 + (out_cols + 0.5) * step
    return np.stack([lat, lon], axis=1)


# --------------------------------------------------------------------------- base class
class Region:
    """A search region.  Subclasses set ``kind``/``label`` and implement ``contains``."""

    kind: str = "region"

    def __init__(self, label: str) -> None:
        self.label = label

    # -- identity ------------------------------------------------------------
    @property
    def key(self) -> str:
        """Stable string identifying the region (usable as a cache key)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Region) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    # -- geometry --------------------------------------------------------------
    def contains(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Boolean array: which points (degrees) lie inside the region."""
        raise NotImplementedError

    @cached_property
    def geometry(self) -> BaseGeometry:
        """Shapely (Multi)Polygon in lon/lat, split at the antimeridian."""
        return self._build_geometry()

    def _build_geometry(self) -> BaseGeometry:
        raise NotImplementedError

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """(south, west, north, east) in degrees; west > east when crossing ±180."""
        return _geometry_bounds(self.geometry)

    @cached_property
    def area_km2(self) -> float:
        """Approximate area in km² (equal-area projection of ``geometry``)."""
        return area_km2(self.geometry)

    @cached_property
    def extent_km(self) -> float:
        """Approximate diameter in km (largest great-circle distance across it)."""
        return _geometry_extent_km(self.geometry)

    def to_geojson(self, simplify_deg: float | None = None) -> dict[str, Any]:
        """GeoJSON Feature of the region; ``simplify_deg`` optionally lightens the outline."""
        geom = self.geometry
        if simplify_deg:
            geom = shapely.simplify(geom, simplify_deg, preserve_topology=True)
        return {
            "type": "Feature",
            "geometry": json.loads(shapely.to_geojson(geom)),
            "properties": {"kind": self.kind, "label": self.label, "key": self.key},
        }

    # -- candidates ------------------------------------------------------------
    def _land_pieces(self) -> list[BaseGeometry]:
        """Land inside the region: country polygons clipped to ``geometry``."""
        region = self.geometry
        shapely.prepare(region)
        pieces = []
        for country in get_country_index().intersecting(region):
            piece = country.geometry if region.contains(country.geometry) else _polygonal(country.geometry.intersection(region))
            if not piece.is_empty:
                pieces.append(piece)
        return pieces

    def _land_mask(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return get_country_index().is_land(lat, lon)

    def _inside_on_land(self, points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return points.reshape(0, 2)
        lat, lon = points[:, 0], points[:, 1]
        keep = self.contains(lat, lon)
        keep[keep] = self._land_mask(lat[keep], lon[keep])
        return points[keep]

    def _no_land_error(self) -> RegionError:
        return RegionError(
            f"The region {self.key} contains no land: candidate locations must lie on land "
            "(inside a Natural Earth country polygon). Choose a region that covers some land."
        )

    def candidate_points(self, max_points: int = 20000, min_spacing_km: float = 1.0) -> np.ndarray:
        """Regular grid of land points inside the region, float64 [N,2] (lat, lon).

        Spacing ``s = max(min_spacing_km, sqrt(land_area_km2 / max_points))``:
        rows every ``s`` km of latitude, points every ``s`` km along a row
        (longitude step ``s / (111.32 cos lat)``), so N ≈ land_area / s² and
        never more than ``max_points`` (the grid is coarsened, then evenly
        thinned, if rounding overshoots).  If the grid is too coarse to catch
        the land (tiny regions or islets) a finer grid plus one interior point
        per land polygon is used, so a few points come back whenever there is
        land.  Raises ``RegionError`` when the region holds no land at all.
        """
        if int(max_points) < 1:
            raise RegionError(f"max_points must be at least 1, got {max_points}.")
        if not (min_spacing_km > 0 and math.isfinite(min_spacing_km)):
            raise RegionError(f"min_spacing_km must be a positive number, got {min_spacing_km}.")
        max_points = int(max_points)
        pieces = self._land_pieces()
        if not pieces:
            raise self._no_land_error()
        land_area = sum(area_km2(p) for p in pieces)
        boxes = shapely.bounds(_explode(pieces))

        spacing = max(float(min_spacing_km), math.sqrt(land_area / max_points))
        points = self._inside_on_land(lattice_points(boxes, spacing))
        for _ in range(3):  # lattice rounding can overshoot a little: coarsen and retry
            if len(points) <= max_points:
                break
            spacing *= math.sqrt(len(points) / max_points) * 1.005
            points = self._inside_on_land(lattice_points(boxes, spacing))

        if len(points) < min(MIN_CANDIDATES, max_points):
            points = self._add_fallback_points(points, pieces, boxes, land_area)
        if len(points) == 0:
            raise self._no_land_error()
        return np.ascontiguousarray(_thin(points, max_points), dtype=np.float64)

    def _add_fallback_points(
        self, points: np.ndarray, pieces: list[BaseGeometry], boxes: np.ndarray, land_area: float
    ) -> np.ndarray:
        """Denser sampling for land too small for the regular grid."""
        fine = max(math.sqrt(land_area / (4 * MIN_CANDIDATES)), 0.005)
        extra = [points, self._inside_on_land(lattice_points(boxes, fine))]
        # one guaranteed interior point per land polygon, plus the region's own centre
        interior = shapely.get_coordinates(shapely.point_on_surface(_explode(pieces)))[:, ::-1]
        centre = shapely.get_coordinates(self.geometry.representative_point())[:, ::-1]
        extra.append(self._inside_on_land(np.concatenate([centre, interior])))
        merged = np.concatenate(extra)
        _, first = np.unique(merged.round(9), axis=0, return_index=True)
        return merged[np.sort(first)]


# --------------------------------------------------------------------------- subclasses
class CountryRegion(Region):
    """One Natural Earth country (its full polygon, incl. overseas parts)."""

    kind = "country"

    def __init__(self, country: Country) -> None:
        super().__init__(country.name)
        self.country = country

    @property
    def key(self) -> str:
        return f"country:{self.country.unique_code}"

    def contains(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        lat_arr, lon_arr = validate_latlon(lat, lon)
        return shapely.intersects_xy(self.country.geometry, lon_arr, lat_arr)

    def _build_geometry(self) -> BaseGeometry:
        return self.country.geometry

    def _land_pieces(self) -> list[BaseGeometry]:
        return [self.country.geometry]

    def _land_mask(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.ones(lat.shape, dtype=bool)  # inside the country means on land


class ContinentRegion(Region):
    """All countries whose Natural Earth CONTINENT field matches (Russia counts as Europe)."""

    kind = "continent"

    def __init__(self, name: str) -> None:
        index = get_country_index()
        canonical = index.resolve_continent(name)
        if canonical is None:
            suggestions = index.suggest(name, extra=index.continents())
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else f" Known continents: {', '.join(index.continents())}."
            raise UnknownRegionError(f"Unknown continent {name!r}.{hint}", suggestions)
        super().__init__(canonical)
        self.name = canonical
        self._members = index.continent_countries(canonical)
        countries = index.countries
        member_ids = {id(c) for c in self._members}
        self._member_mask = np.array([id(c) in member_ids for c in countries] + [False])

    @property
    def key(self) -> str:
        return f"continent:{self.name}"

    def contains(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        return self._member_mask[get_country_index().lookup_indices(lat, lon)]

    def _build_geometry(self) -> BaseGeometry:
        return get_country_index().continent_geometry(self.name)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        return _geometry_bounds(shapely.GeometryCollection([c.geometry for c in self._members]))

    @cached_property
    def area_km2(self) -> float:
        return sum(area_km2(c.geometry) for c in self._members)

    def _land_pieces(self) -> list[BaseGeometry]:
        return [c.geometry for c in self._members]

    def _land_mask(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.ones(lat.shape, dtype=bool)


class CircleRegion(Region):
    """Geodesic circle: all points within ``radius_km`` great-circle distance of a centre."""

    kind = "circle"

    def __init__(self, lat: float, lon: float, radius_km: float) -> None:
        try:
            lat_arr, lon_arr = validate_latlon(lat, lon)
        except CoordinateError as exc:
            raise RegionError(f"Invalid circle centre: {exc}") from exc
        radius = float(radius_km)
        if not math.isfinite(radius) or radius <= 0:
            raise RegionError(f"Invalid circle radius {radius_km!r}: must be a positive number of km.")
        if radius > MAX_RADIUS_KM + 1e-6:
            raise RegionError(f"Invalid circle radius {radius_km!r}: at most {MAX_RADIUS_KM:.0f} km (half the Earth's circumference).")
        self.lat, self.lon, self.radius_km = float(lat_arr), float(lon_arr), radius
        super().__init__(f"{_num(radius)} km around ({self.lat:.4f}, {self.lon:.4f})")

    @property
    def key(self) -> str:
        return f"circle:{_num(self.lat)},{_num(self.lon)},{_num(self.radius_km)}"

    def contains(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        lat_arr, lon_arr = validate_latlon(lat, lon)
        return haversine_km(self.lat, self.lon, lat_arr, lon_arr) <= self.radius_km

    def _build_geometry(self) -> BaseGeometry:
        return _circle_geometry(self.lat, self.lon, self.radius_km)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        ang = math.degrees(self.radius_km / EARTH_RADIUS_KM)
        south, north = self.lat - ang, self.lat + ang
        if north >= 90.0 or south <= -90.0:  # a pole is inside: every longitude is covered
            return max(south, -90.0), -180.0, min(north, 90.0), 180.0
        # longitude half-width of a spherical cap
        half = math.degrees(math.asin(min(1.0, math.sin(math.radians(ang)) / math.cos(math.radians(self.lat)))))
        west, east = self.lon - half, self.lon + half
        west = west + 360.0 if west < -180.0 else west
        east = east - 360.0 if east > 180.0 else east
        return south, west, north, east

    @cached_property
    def area_km2(self) -> float:
        # exact spherical cap
        return 2.0 * math.pi * EARTH_RADIUS_KM**2 * (1.0 - math.cos(self.radius_km / EARTH_RADIUS_KM))

    @cached_property
    def extent_km(self) -> float:
        return min(2.0 * self.radius_km, MAX_RADIUS_KM)


def _circle_geometry(lat: float, lon: float, radius_km: float, n: int = CIRCLE_VERTICES) -> BaseGeometry:
    """Polygon of ``n`` points on a geodesic circle, folded into [-180, 180]."""
    ang = radius_km / EARTH_RADIUS_KM
    if ang >= math.pi - 1e-9:
        return _WORLD
    if ang > math.pi / 2:
        # Big circles may hold both poles: build the complement instead.
        hole = _circle_geometry(-lat, lon + 180.0 if lon <= 0 else lon - 180.0, MAX_RADIUS_KM - radius_km, n)
        return _polygonal(_WORLD.difference(hole))
    bearings = np.linspace(0.0, 360.0, n, endpoint=False)
    lats, lons = destination_point(lat, lon, bearings, radius_km)
    steps = np.diff(np.append(lons, lons[0]))
    steps = (steps + 180.0) % 360.0 - 180.0  # shortest way round between neighbours
    unwrapped = lons[0] + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    winding = float(steps.sum())
    ring = list(zip(unwrapped, lats))
    if abs(winding) > 180.0:
        # The ring goes all the way round a pole: close it along that pole.
        pole = 90.0 if haversine_km(lat, lon, 90.0, 0.0) <= radius_km else -90.0
        end = unwrapped[0] + winding
        ring += [(end, lats[0]), (end, pole), (unwrapped[0], pole)]
    poly = shapely.Polygon(ring)
    if not poly.is_valid:
        poly = _polygonal(shapely.make_valid(poly))
    return _wrap_split(poly)


class BBoxRegion(Region):
    """Latitude/longitude box; ``west > east`` means it crosses the antimeridian."""

    kind = "bbox"

    def __init__(self, south: float, west: float, north: float, east: float) -> None:
        try:
            validate_latlon([south, north], [west, east])
        except CoordinateError as exc:
            raise RegionError(f"Invalid bbox: {exc}") from exc
        if south >= north:
            raise RegionError(f"Invalid bbox: south ({south}) must be smaller than north ({north}).")
        if west == east:
            raise RegionError(f"Invalid bbox: west and east are both {west}; the box has no width.")
        self.south, self.west, self.north, self.east = (float(v) for v in (south, west, north, east))
        super().__init__(f"Box {_num(self.south)}..{_num(self.north)}°N, {_num(self.west)}..{_num(self.east)}°E")

    @property
    def key(self) -> str:
        return f"bbox:{_num(self.south)},{_num(self.west)},{_num(self.north)},{_num(self.east)}"

    @property
    def crosses_antimeridian(self) -> bool:
        return self.west > self.east

    def contains(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        lat_arr, lon_arr = validate_latlon(lat, lon)
        in_lat = (lat_arr >= self.south) & (lat_arr <= self.north)
        if self.crosses_antimeridian:
            return in_lat & ((lon_arr >= self.west) | (lon_arr <= self.east))
        return in_lat & (lon_arr >= self.west) & (lon_arr <= self.east)

    def _build_geometry(self) -> BaseGeometry:
        if self.crosses_antimeridian:
            return shapely.MultiPolygon(
                [box(self.west, self.south, 180.0, self.north), box(-180.0, self.south, self.east, self.north)]
            )
        return box(self.west, self.south, self.east, self.north)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        return self.south, self.west, self.north, self.east

    @cached_property
    def area_km2(self) -> float:
        width = (self.east - self.west) % 360.0 or 360.0
        band = math.sin(math.radians(self.north)) - math.sin(math.radians(self.south))
        return EARTH_RADIUS_KM**2 * math.radians(width) * band


class PolygonRegion(Region):
    """Arbitrary polygon(s) in lon/lat, usually from GeoJSON."""

    kind = "polygon"

    def __init__(self, geometry: BaseGeometry, label: str = "Custom polygon") -> None:
        super().__init__(label or "Custom polygon")
        self._geometry = _clean_polygon(geometry)
        shapely.prepare(self._geometry)

    @classmethod
    def from_geojson(cls, obj: dict | str, label: str | None = None) -> "PolygonRegion":
        """From a GeoJSON dict or JSON text: Polygon, MultiPolygon, Feature or FeatureCollection (union)."""
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise RegionError(f"Invalid GeoJSON text: {exc}. {ACCEPTED_FORMS}") from exc
            except RecursionError as exc:
                raise RegionError(TOO_DEEP) from exc
        if not isinstance(obj, dict):
            raise RegionError(f"GeoJSON must be a JSON object, got {type(obj).__name__}.")
        try:
            geometry, found_label = _geojson_to_shape(obj)
        except RecursionError as exc:  # collections inside collections, thousands deep
            raise RegionError(TOO_DEEP) from exc
        return cls(geometry, label or found_label or "Custom polygon")

    @cached_property
    def key(self) -> str:
        # Hash of the normalised shape: identical polygons share cached results.
        digest = hashlib.sha1(shapely.to_wkb(shapely.normalize(self._geometry), hex=True).encode()).hexdigest()[:12]
        return f"polygon:{digest}"

    def contains(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        lat_arr, lon_arr = validate_latlon(lat, lon)
        return shapely.intersects_xy(self._geometry, lon_arr, lat_arr)

    def _build_geometry(self) -> BaseGeometry:
        return self._geometry


TOO_DEEP = ("the GeoJSON is nested too deeply to be a region; give a Polygon, MultiPolygon, Feature or "
            "FeatureCollection of those")


def _geojson_to_shape(obj: dict) -> tuple[BaseGeometry, str | None]:
    """Shapely geometry (union for collections) and a label from Feature properties."""
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features") or []
        if not features:
            raise RegionError("GeoJSON FeatureCollection has no features.")
        shapes = [_geojson_to_shape(f)[0] for f in features]
        return shapely.union_all(shapes), None
    if kind == "Feature":
        props = obj.get("properties") or {}
        label = next((str(props[k]) for k in ("label", "name", "title") if props.get(k)), None)
        if not obj.get("geometry"):
            raise RegionError("GeoJSON Feature has no geometry.")
        return _geojson_to_shape(obj["geometry"])[0], label
    if kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        try:
            return shape(obj), None
        except (KeyError, TypeError, ValueError, IndexError, GEOSException) as exc:
            raise RegionError(f"Invalid GeoJSON {kind}: {exc}") from exc
    raise RegionError(f"GeoJSON region must be a Polygon, MultiPolygon, Feature or FeatureCollection, got type {kind!r}.")


def _clean_polygon(geometry: BaseGeometry) -> BaseGeometry:
    """Validate a user polygon: lat in range, fixed if self-intersecting, folded into ±180."""
    if not isinstance(geometry, BaseGeometry):
        raise RegionError(f"Polygon region needs a shapely geometry, got {type(geometry).__name__}.")
    geometry = _polygonal(geometry)
    if geometry.is_empty:
        raise RegionError("The polygon region is empty (GeoJSON needs Polygon/MultiPolygon coordinates).")
    coords = shapely.get_coordinates(geometry)
    if not np.all(np.isfinite(coords)):
        raise RegionError("The polygon has non-finite coordinates.")
    if np.abs(coords[:, 1]).max() > 90.0:
        raise RegionError(
            "The polygon has a latitude outside [-90, 90]. GeoJSON coordinates are [longitude, latitude] - "
            "were they swapped?"
        )
    if np.abs(coords[:, 0]).max() > 540.0:
        raise RegionError("The polygon has a longitude outside [-540, 540].")
    if not geometry.is_valid:
        geometry = _polygonal(shapely.make_valid(geometry))
    geometry = _wrap_split(geometry)
    if geometry.is_empty or geometry.area == 0:
        raise RegionError("The polygon region has zero area.")
    return geometry


# --------------------------------------------------------------------------- parsing
def _floats(text: str, count: int, form: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if parts and count == 3 and parts[-1].lower().endswith("km"):
        parts[-1] = parts[-1][:-2].strip()
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise RegionError(f"Expected {form} with {count} numbers, got {text!r}. {ACCEPTED_FORMS}")
    return values


def _load_geojson_file(path_text: str) -> PolygonRegion:
    path = Path(path_text).expanduser()
    # Messages name the file only: an uploaded file's folder is the server's business (/tmp/gradio/...).
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegionError(f"Cannot read the GeoJSON file {path.name!r}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegionError(f"The file {path.name!r} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RegionError(f"The file {path.name!r}: {TOO_DEEP}") from exc
    if not isinstance(data, dict):
        raise RegionError(f"The file {path.name!r} does not hold a GeoJSON object.")
    return PolygonRegion.from_geojson(data, label=None if _has_label(data) else path.stem)


def _has_label(data: dict) -> bool:
    props = data.get("properties") or {}
    return data.get("type") == "Feature" and any(props.get(k) for k in ("label", "name", "title"))


def _named_region(name: str) -> Region:
    """Country (code/name/alias) or continent by name, else UnknownRegionError with suggestions."""
    index = get_country_index()
    country = index.find(name)
    if country is not None:
        return CountryRegion(country)
    continent = index.resolve_continent(name)
    if continent is not None:
        return ContinentRegion(continent)
    suggestions = index.suggest(name, extra=index.continents())
    hint = f"Did you mean: {', '.join(suggestions)}?" if suggestions else ACCEPTED_FORMS
    raise UnknownRegionError(f"Unknown region {name!r}. {hint}", suggestions)


def parse_region(spec: Region | Country | dict | str) -> Region:
    """Turn a user region spec into a ``Region`` (see ``ACCEPTED_FORMS``).

    Raises ``RegionError`` for malformed specs and ``UnknownRegionError``
    (a ``RegionError``) with suggestions for unknown names.
    """
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, Country):
        return CountryRegion(spec)
    if isinstance(spec, dict):
        return PolygonRegion.from_geojson(spec)
    if not isinstance(spec, str):
        raise RegionError(f"Unsupported region spec of type {type(spec).__name__}. {ACCEPTED_FORMS}")
    text = spec.strip()
    if not text:
        raise RegionError(f"Empty region spec. {ACCEPTED_FORMS}")
    if text.startswith("{"):
        return PolygonRegion.from_geojson(text)

    prefix, sep, rest = text.partition(":")
    prefix, rest = prefix.strip().lower(), rest.strip()
    if sep and prefix in ("country", "continent", "circle", "bbox", "geojson"):
        if not rest:
            raise RegionError(f"Nothing after '{prefix}:'. {ACCEPTED_FORMS}")
        if prefix == "country":
            return CountryRegion(get_country_index().get(rest))
        if prefix == "continent":
            return ContinentRegion(rest)
        if prefix == "circle":
            return CircleRegion(*_floats(rest, 3, "'circle:LAT,LON,RADIUS_KM'"))
        if prefix == "bbox":
            return BBoxRegion(*_floats(rest, 4, "'bbox:SOUTH,WEST,NORTH,EAST'"))
        return _load_geojson_file(rest)
    if text.lower().endswith((".geojson", ".json")):
        return _load_geojson_file(text)
    if sep and prefix.isalpha() and len(prefix) > 1:  # 'C:' is a Windows drive, not a prefix
        raise RegionError(f"Unknown region prefix '{prefix}:'. {ACCEPTED_FORMS}")
    return _named_region(text)


def region_choices() -> dict[str, list]:
    """Options for UIs: ``{"countries": [(code, name), ...] sorted by name, "continents": [...]}``.

    Each code round-trips through ``parse_region``.
    """
    index = get_country_index()
    countries = sorted(((c.unique_code, c.name) for c in index.countries), key=lambda cn: cn[1].lower())
    return {"countries": countries, "continents": index.continents()}


__all__ = [
    "ACCEPTED_FORMS",
    "BBoxRegion",
    "CircleRegion",
    "ContinentRegion",
    "CountryRegion",
    "PolygonRegion",
    "Region",
    "RegionError",
    "UnknownRegionError",
    "area_km2",
    "lattice_points",
    "parse_region",
    "region_choices",
]
