"""Typed form values: what the analyst asked for, independent of the widgets that asked.

Tab modules turn widget values into these dataclasses (``from_values``) and hand them to the
service; the service and the tests never deal with widget order or component objects.
Invalid input raises :class:`FormError` with a message meant for the analyst.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geoapp.cases.claims import resolve_place
from geoapp.cases.errors import CaseInputError

REGION_WORLD = "Whole world"
REGION_COUNTRY = "Country"
REGION_CONTINENT = "Continent"
REGION_CIRCLE = "Circle"
REGION_GEOJSON = "GeoJSON file"
REGION_MODES = (REGION_WORLD, REGION_COUNTRY, REGION_CONTINENT, REGION_CIRCLE, REGION_GEOJSON)

COMPARE_SIDE_BY_SIDE = "Side by side"
COMPARE_DIFFERENCE = "Difference (A − B)"
COMPARE_MODES = (COMPARE_SIDE_BY_SIDE, COMPARE_DIFFERENCE)

MAX_TOP_K = 50


class FormError(ValueError):
    """The form cannot be used as filled in; the message tells the analyst what to fix."""


def _file_path(value: object) -> str | None:
    """A Gradio file value (path string, or an object/dict with a path) -> path string."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    path = getattr(value, "path", None) or getattr(value, "name", None)
    return str(path) if path else None


def _finite(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FormError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise FormError(f"{name} must be a finite number")
    return number


@dataclass(frozen=True)
class ClaimedLocation:
    """A claimed place as the point the candidates are compared with."""

    lat: float
    lon: float
    name: str | None = None  # the place a name resolved to ("Odesa, Ukraine"); None for typed coordinates

    @property
    def label(self) -> str:
        return f"Claimed location ({self.name})" if self.name else "Claimed location"


def parse_claimed_location(text: str | None) -> ClaimedLocation | None:
    """What the analyst typed as a claimed location -> a point; empty -> None.

    The parser of the Cases tab's claims (:func:`geoapp.cases.claims.resolve_place`, offline): ``48.8584, 2.2945``,
    a place name (``Odesa``, ``Kharkiv, UA``), ``place:NAME`` or ``circle:LAT,LON,KM`` (its centre). A country has
    no single point: the message says what to do instead.
    """
    if text is None or not str(text).strip():
        return None
    try:
        place = resolve_place(str(text))
    except CaseInputError as error:
        raise FormError(f"Claimed location: {error}") from error
    if place.lat is None or place.lon is None:
        raise FormError(f"Claimed location {str(text).strip()!r} is a country ({place.label}), not a point: type a "
                        "town or 'latitude, longitude', or restrict the search region to the country (a Case can "
                        "record a claim about a whole country).")
    return ClaimedLocation(place.lat, place.lon, place.name)


@dataclass(frozen=True)
class RegionForm:
    """Where to restrict the search: nowhere, a country, a continent, a circle or a polygon file."""

    mode: str = REGION_WORLD
    country: str | None = None  # ISO code (the dropdown's value)
    continent: str | None = None
    circle_lat: float | None = None
    circle_lon: float | None = None
    circle_radius_km: float | None = None
    geojson_path: str | None = None

    @classmethod
    def from_values(cls, mode: str | None, country: str | None, continent: str | None, circle_lat: object,
                    circle_lon: object, circle_radius_km: object, geojson: object) -> "RegionForm":
        return cls(mode=mode or REGION_WORLD, country=country or None, continent=continent or None,
                   circle_lat=None if circle_lat in (None, "") else circle_lat,  # type: ignore[arg-type]
                   circle_lon=None if circle_lon in (None, "") else circle_lon,  # type: ignore[arg-type]
                   circle_radius_km=None if circle_radius_km in (None, "") else circle_radius_km,  # type: ignore[arg-type]
                   geojson_path=_file_path(geojson))

    def spec(self) -> str | None:
        """The engine's region spec (see ``geoapp.geo.regions.parse_region``), or None for the world."""
        if self.mode == REGION_WORLD:
            return None
        if self.mode == REGION_COUNTRY:
            if not self.country:
                raise FormError("Choose a country (type to search the list), or set the region to 'Whole world'.")
            return f"country:{self.country}"
        if self.mode == REGION_CONTINENT:
            if not self.continent:
                raise FormError("Choose a continent, or set the region to 'Whole world'.")
            return f"continent:{self.continent}"
        if self.mode == REGION_CIRCLE:
            if None in (self.circle_lat, self.circle_lon, self.circle_radius_km):
                raise FormError("A circle needs a centre latitude, longitude and a radius in km.")
            lat = _finite(self.circle_lat, "Circle latitude")
            lon = _finite(self.circle_lon, "Circle longitude")
            radius = _finite(self.circle_radius_km, "Circle radius")
            if radius <= 0:
                raise FormError("The circle radius must be more than 0 km.")
            return f"circle:{lat},{lon},{radius}"
        if self.mode == REGION_GEOJSON:
            if not self.geojson_path:
                raise FormError("Upload a .geojson file with the polygon to search in.")
            return f"geojson:{self.geojson_path}"
        raise FormError(f"Unknown region mode {self.mode!r}; choose one of: {', '.join(REGION_MODES)}")


@dataclass(frozen=True)
class LocateForm:
    """One 'Locate' request: photos, options and an optional claimed location to compare with."""

    files: tuple[str, ...]
    top_k: int = 5
    tencrop: bool = False
    model: str = "auto"  # a registry key; "auto" = the best family that can run here
    region: RegionForm = field(default_factory=RegionForm)
    claimed: ClaimedLocation | None = None
    extras: dict = field(default_factory=dict)  # the family's own options (its spec's FamilyOption names)
    clues: tuple[str, ...] = ()  # evidence-fusion clues, CLI syntax (geoapp.ui.fusion_service.parse_clue_lines)
    same_place: bool = False  # the photos show one place: one fused map of all of them
    exif_clues: bool = False  # the analyst accepts the time-zone clue each photo's EXIF proposes

    @property
    def fusion_requested(self) -> bool:
        return bool(self.clues) or self.same_place or self.exif_clues

    @classmethod
    def from_values(cls, files: Sequence[object] | object | None, top_k: object, tencrop: object, model: object,
                    region: RegionForm, claimed_text: str | None, extras: dict | None = None,
                    clues: tuple[str, ...] = (), same_place: object = False,
                    exif_clues: object = False) -> "LocateForm":
        items = files if isinstance(files, (list, tuple)) else ([files] if files else [])
        paths = tuple(p for p in (_file_path(item) for item in items) if p)
        if not paths:
            raise FormError("Drop one or more photos first (JPEG, PNG, WebP, HEIC, TIFF ...).")
        k = int(_finite(top_k if top_k not in (None, "") else 5, "Number of candidates"))
        if not 1 <= k <= MAX_TOP_K:
            raise FormError(f"Number of candidates must be between 1 and {MAX_TOP_K}.")
        return cls(files=paths, top_k=k, tencrop=bool(tencrop), model=str(model or "auto"), region=region,
                   claimed=parse_claimed_location(claimed_text), extras=dict(extras or {}), clues=tuple(clues),
                   same_place=bool(same_place), exif_clues=bool(exif_clues))


MAX_QUERY_CHARS = 300  # what Geolocator.text_map accepts


@dataclass(frozen=True)
class TextMapForm:
    """A text -> map query, optionally compared with a second query."""

    query_a: str
    query_b: str | None = None
    compare: str = COMPARE_SIDE_BY_SIDE
    top_k: int = 10
    region: RegionForm = field(default_factory=RegionForm)
    model: str = "auto"  # a text-capable family; "auto" = the best one that can run here

    @classmethod
    def from_values(cls, query_a: str | None, query_b: str | None, compare: str | None, top_k: object,
                    region: RegionForm, model: str | None = None) -> "TextMapForm":
        first = (query_a or "").strip()
        if not first:
            raise FormError("Type a description of a place in 'Query A' (e.g. 'a sandy beach with palm trees').")
        second = (query_b or "").strip() or None
        for name, text in (("Query A", first), ("Query B", second or "")):
            if len(text) > MAX_QUERY_CHARS:
                raise FormError(f"{name} is {len(text)} characters long; describe the place in at most "
                                f"{MAX_QUERY_CHARS} (the text model reads a sentence or two).")
        mode = compare or COMPARE_SIDE_BY_SIDE
        if mode not in COMPARE_MODES:
            raise FormError(f"Unknown comparison {mode!r}; choose one of: {', '.join(COMPARE_MODES)}")
        k = int(_finite(top_k if top_k not in (None, "") else 10, "Number of places"))
        if not 1 <= k <= MAX_TOP_K:
            raise FormError(f"Number of places must be between 1 and {MAX_TOP_K}.")
        return cls(query_a=first, query_b=second, compare=mode, top_k=k, region=region, model=str(model or "auto"))
