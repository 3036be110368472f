"""Natural Earth country index: lookup, names, continents."""


import numpy as np
import pytest

from geoapp.geo import CountryIndex, UnknownRegionError, get_country_index
from geoapp.geo.countries import OPEN_OCEAN, normalize_name


@pytest.fixture(scope="module")
def index() -> CountryIndex:
    return get_country_index()


POINTS = {
    "Paris": ((48.8566, 2.3522), "FR"),
    "Berlin": ((52.52, 13.405), "DE"),
    "Strasbourg": ((48.5734, 7.7521), "FR"),
    "Kehl": ((48.5723, 7.8156), "DE"),
    "Geneva": ((46.2044, 6.1432), "CH"),
    "Annemasse": ((46.1934, 6.2342), "FR"),
    "El Paso": ((31.7619, -106.4850), "US"),
    "Ciudad Juarez": ((31.6904, -106.4245), "MX"),
    "mid-Atlantic": ((30.0, -40.0), ""),
    "Viti Levu (east of 180)": ((-17.8, 177.9), "FJ"),
    "Vanua Levu": ((-16.6, 179.2), "FJ"),
    "Taveuni (west of 180)": ((-16.85, -179.95), "FJ"),
    "Chukotka": ((66.0, -175.0), "RU"),
    "Kamchatka": ((56.0, 160.0), "RU"),
    "Tokyo": ((35.68, 139.69), "JP"),
    "Sydney": ((-33.87, 151.21), "AU"),
    "Antarctica": ((-85.0, 0.0), "AQ"),
    "Oslo (NE ISO_A2 -99)": ((59.91, 10.75), "NO"),
}


def test_lookup_known_points(index):
    lat = np.array([p[0][0] for p in POINTS.values()])
    lon = np.array([p[0][1] for p in POINTS.values()])
    got = index.lookup(lat, lon)
    expected = [p[1] for p in POINTS.values()]
    assert dict(zip(POINTS, got)) == dict(zip(POINTS, expected))


def test_lookup_shapes_and_scalars(index):
    assert index.lookup(48.8566, 2.3522).shape == ()
    assert str(index.lookup(48.8566, 2.3522)) == "FR"
    grid = index.lookup(np.full((2, 3), 48.8566), np.full((2, 3), 2.3522))
    assert grid.shape == (2, 3) and (grid == "FR").all()
    assert index.lookup(np.array([]), np.array([])).shape == (0,)
    with pytest.raises(ValueError):
        index.lookup(91.0, 0.0)


def test_lookup_one_and_is_land(index):
    paris = index.lookup_one(48.8566, 2.3522)
    assert paris is not None and paris.iso_a2 == "FR" and paris.continent == "Europe"
    assert index.lookup_one(0.0, -140.0) is None
    land = index.is_land(np.array([48.85, 0.0, -85.0]), np.array([2.35, -140.0, 0.0]))
    assert land.tolist() == [True, False, True]


def test_vectorised_lookup_of_many_points(index):
    """100k points in one call (its speed is a benchmark: benchmarks/bench_budgets.py)."""
    rng = np.random.default_rng(0)
    n = 100_000
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    codes = index.lookup(lat, lon)
    assert codes.shape == (n,)
    assert 0.2 < np.mean(codes != "") < 0.4  # ~29 % of the globe is land
    from shapely.geometry import Point

    land = np.flatnonzero(codes != "")[:200]  # each answer's polygon holds its point
    assert all(index.get(codes[i]).geometry.contains(Point(lon[i], lat[i])) for i in land)


@pytest.mark.parametrize(
    "query, code",
    [("FR", "FR"), ("fr", "FR"), ("FRA", "FR"), ("france", "FR"), ("  France ", "FR"), ("French Republic", "FR"),
     ("NO", "NO"), ("Norway", "NO"), ("united kingdom", "GB"), ("UK", "GB"), ("gbr", "GB"),
     ("United States of America", "US"), ("USA", "US"), ("Cote d'Ivoire", "CI"), ("Côte d’Ivoire", "CI"),
     ("Czech Republic", "CZ"), ("Kosovo", "XK"), ("TW", "TW")],
)
def test_get_by_code_or_name(index, query, code):
    assert index.get(query).code == code


def test_france_despite_minus_99(index):
    france = index.get("FR")
    assert france.name == "France" and france.iso_a3 == "FRA" and france.primary
    # Clipperton shares ISO_A2_EH=FR but is not what 'FR' means
    clipperton = index.get("CLP")
    assert clipperton.iso_a2 == "FR" and not clipperton.primary and clipperton.unique_code == "CLP"
    assert france.geometry.contains(france.geometry.representative_point())


def test_territories_without_iso_code(index):
    dhekelia = index.get("Dhekelia")
    assert dhekelia.iso_a2 == "" and dhekelia.code == "ESB"
    pt = dhekelia.geometry.representative_point()
    assert str(index.lookup(pt.y, pt.x)) == "ESB"


def test_unknown_country_suggestions(index):
    with pytest.raises(UnknownRegionError) as info:
        index.get("Frnace")
    assert "Frnace" in str(info.value) and "Did you mean" in str(info.value)
    assert info.value.suggestions[0] == "France"
    assert len(info.value.suggestions) <= 5
    with pytest.raises(ValueError):
        index.get("Germny")
    with pytest.raises(UnknownRegionError):
        index.get("zzzzzzzz")


def test_country_fields(index):
    de = index.get("DE")
    assert (de.iso_a2, de.iso_a3, de.name, de.continent) == ("DE", "DEU", "Germany", "Europe")
    assert de.subregion == "Western Europe"
    assert "federal republic of germany" in de.aliases
    assert all(a == a.lower() for a in de.aliases)
    assert de.geometry.geom_type in ("Polygon", "MultiPolygon")
    assert len(index.countries) > 240


def test_continents(index):
    conts = index.continents()
    assert OPEN_OCEAN not in conts
    for name in ("Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America"):
        assert name in conts
    europe = index.continent_geometry("europe")
    assert europe is index.continent_geometry("Europe")  # cached
    assert europe.contains(index.get("DE").geometry.representative_point())
    with pytest.raises(UnknownRegionError, match="Did you mean: Europe"):
        index.continent_geometry("Eurpoe")


def test_geometries_valid_and_in_range(index):
    for country in index.countries:
        minx, miny, maxx, maxy = country.geometry.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        assert country.geometry.is_valid, country.name


def test_normalize_name():
    assert normalize_name("  Côte d'Ivoire ") == normalize_name("cote d ivoire")
    assert normalize_name("St. Pierre-and-Miquelon") == "st pierre and miquelon"
