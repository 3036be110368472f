"""Offline reverse geocoding against GeoNames cities1000."""

import numpy as np
import pytest

from geoapp.geo import Place, PlaceIndex, get_place_index, haversine_km


@pytest.fixture(scope="module")
def places() -> PlaceIndex:
    return get_place_index()


def test_paris(places):
    p = places.nearest(48.8566, 2.3522)
    assert isinstance(p, Place)
    assert (p.city, p.country, p.country_code) == ("Paris", "France", "FR")
    assert p.region == "Île-de-France"
    assert p.distance_km < 2.0
    assert p.label == "Paris, Île-de-France, France"
    d = p.to_dict()
    assert d["label"] == p.label and d["city"] == "Paris" and set(d) >= {"region", "country", "lat", "lon", "distance_km"}


def test_distance_is_to_the_city(places):
    p = places.nearest(45.75, 4.85)  # Lyon
    assert p.country_code == "FR" and "Lyon" in p.city
    assert p.distance_km == pytest.approx(float(haversine_km(45.75, 4.85, p.lat, p.lon)))


def test_nearest_many_vectorised(places):
    lat = np.array([48.8566, 52.52, 35.68, -33.87])
    lon = np.array([2.3522, 13.405, 139.69, 151.21])
    got = places.nearest_many(lat, lon)
    assert [p.country_code for p in got] == ["FR", "DE", "JP", "AU"]
    assert places.nearest_many(np.array([]), np.array([])) == []


def test_border_prefers_polygon_country(places):
    # Swiss Alps: the globally nearest GeoNames town is Formazza (Italy),
    # but the point is ~12 km inside Switzerland.
    p = places.nearest(46.42, 8.56)
    assert p.country_code == "CH" and p.country == "Switzerland"
    # French Jura: nearest town is Le Chenit (CH), point lies in France
    assert places.nearest(46.72, 6.12).country_code == "FR"
    # classic twin towns
    assert places.nearest(48.5723, 7.8156).country_code == "DE"  # Kehl
    assert places.nearest(48.5734, 7.7521).country_code == "FR"  # Strasbourg
    assert places.nearest(31.6904, -106.4245).country_code == "MX"  # Ciudad Juárez
    assert places.nearest(31.7619, -106.4850).country_code == "US"  # El Paso


def test_overseas_territory_keeps_local_town(places):
    # NE puts French Guiana inside "France", GeoNames files Cayenne under GF.
    p = places.nearest(4.92, -52.31)
    assert p.country_code == "GF" and p.distance_km < 20


def test_sea_antimeridian_and_poles(places):
    sea = places.nearest(0.0, -140.0)
    assert sea.country_code and sea.distance_km > 100
    # Taveuni sits just west of 180: must find a Fijian town, not one 360° away
    fiji = places.nearest(-16.85, -179.95)
    assert fiji.country_code == "FJ" and fiji.distance_km < 150
    for lat in (90.0, -90.0):
        p = places.nearest(lat, 0.0)
        assert np.isfinite(p.distance_km) and p.distance_km < 5000
    with pytest.raises(ValueError):
        places.nearest(100.0, 0.0)
