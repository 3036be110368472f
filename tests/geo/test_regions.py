"""Region specs: containment, geometry, candidate grids and parsing."""

import json
import math

import numpy as np
import pytest
import shapely

from geoapp.geo import (
    BBoxRegion,
    CircleRegion,
    ContinentRegion,
    CountryRegion,
    PolygonRegion,
    Region,
    RegionError,
    UnknownRegionError,
    get_country_index,
    haversine_km,
    parse_region,
    region_choices,
)
from geoapp.geo.regions import KM_PER_DEG, area_km2, lattice_points


def _check_candidates(region: Region, points: np.ndarray, max_points: int) -> None:
    assert points.dtype == np.float64 and points.ndim == 2 and points.shape[1] == 2
    assert 0 < len(points) <= max_points
    assert region.contains(points[:, 0], points[:, 1]).all()
    assert get_country_index().is_land(points[:, 0], points[:, 1]).all()
    assert len(np.unique(points, axis=0)) == len(points)


# ---------------------------------------------------------------- circles and boxes
def test_circle_contains_across_antimeridian():
    circle = CircleRegion(-17.0, 179.5, 300.0)
    lat = np.array([-17.0, -17.0, -17.0, -17.0, -10.0])
    lon = np.array([179.5, -179.0, 177.0, -176.0, 179.5])
    assert circle.contains(lat, lon).tolist() == [True, True, True, False, False]
    south, west, north, east = circle.bounds
    assert west > east  # crosses ±180
    assert circle.geometry.geom_type == "MultiPolygon"
    minx, _, maxx, _ = circle.geometry.bounds
    assert minx == pytest.approx(-180.0) and maxx == pytest.approx(180.0)
    assert circle.key == "circle:-17,179.5,300"


def test_circle_area_and_extent():
    circle = CircleRegion(48.85, 2.35, 50)
    assert circle.key == "circle:48.85,2.35,50"
    assert circle.area_km2 == pytest.approx(math.pi * 50**2, rel=0.01)
    assert area_km2(circle.geometry) == pytest.approx(circle.area_km2, rel=0.01)
    assert circle.extent_km == pytest.approx(100.0)
    # polygon vertices lie on the geodesic circle
    coords = shapely.get_coordinates(circle.geometry)
    np.testing.assert_allclose(haversine_km(48.85, 2.35, coords[:, 1], coords[:, 0]), 50.0, rtol=1e-6)


def test_circle_around_pole():
    circle = CircleRegion(85.0, 0.0, 1500.0)
    assert circle.contains(90.0, 123.0)
    assert circle.bounds[1:4:2] == (-180.0, 180.0)
    assert circle.geometry.contains(shapely.Point(100.0, 89.0))
    assert area_km2(circle.geometry) == pytest.approx(circle.area_km2, rel=0.02)


def test_bbox_across_antimeridian():
    bbox = BBoxRegion(60, 170, 70, -170)
    lat = np.array([65, 65, 65, 65, 75])
    lon = np.array([175, -175, 0, 180, 175])
    assert bbox.contains(lat, lon).tolist() == [True, True, False, True, False]
    assert bbox.bounds == (60, 170, 70, -170)
    assert bbox.geometry.geom_type == "MultiPolygon"
    assert bbox.geometry.area == pytest.approx(20 * 10)
    # 20° wide band: exact spherical-zone area
    expected = 6371.0088**2 * math.radians(20) * (math.sin(math.radians(70)) - math.sin(math.radians(60)))
    assert bbox.area_km2 == pytest.approx(expected)
    assert area_km2(bbox.geometry) == pytest.approx(expected, rel=1e-3)


def test_geojson_feature():
    bbox = BBoxRegion(40, -10, 50, 5)
    feature = bbox.to_geojson()
    assert feature["type"] == "Feature"
    assert feature["properties"]["kind"] == "bbox" and feature["properties"]["label"] == bbox.label
    assert json.loads(json.dumps(feature))["geometry"]["type"] == "Polygon"


# ---------------------------------------------------------------- candidate points
def test_candidates_circle_in_range_and_on_land():
    region = CircleRegion(43.3, 5.4, 100)  # Marseille: half sea
    pts = region.candidate_points(max_points=2000, min_spacing_km=1.0)
    _check_candidates(region, pts, 2000)
    assert len(pts) > 1000


def test_candidates_country_spacing_rule():
    region = parse_region("FR")
    max_points = 5000
    pts = region.candidate_points(max_points=max_points)
    _check_candidates(region, pts, max_points)
    expected_spacing = math.sqrt(region.area_km2 / max_points)
    assert len(pts) > 0.8 * max_points  # grid density follows land area / s²
    # rows are ~s km apart in latitude
    rows = np.unique(pts[:, 0])
    assert np.median(np.diff(rows)) * KM_PER_DEG == pytest.approx(expected_spacing, rel=0.03)
    # along a row neighbours are ~s km apart
    row = pts[pts[:, 0] == rows[len(rows) // 2]]
    step = haversine_km(row[0, 0], row[0, 1], row[1, 0], row[1, 1])
    assert float(step) == pytest.approx(expected_spacing, rel=0.05)


def test_candidates_min_spacing_wins_for_small_regions():
    region = CircleRegion(48.85, 2.35, 20)
    pts = region.candidate_points(max_points=100000, min_spacing_km=5.0)
    _check_candidates(region, pts, 100000)
    # ~ area / 25 km² points
    assert len(pts) == pytest.approx(region.area_km2 / 25.0, rel=0.2)


def test_candidates_across_antimeridian():
    region = CircleRegion(-17.0, 179.5, 300.0)  # Fiji
    pts = region.candidate_points(max_points=3000)
    _check_candidates(region, pts, 3000)
    assert (pts[:, 1] > 170).any() and (pts[:, 1] < -170).any()
    bbox = BBoxRegion(60, 170, 70, -170)
    _check_candidates(bbox, bbox.candidate_points(max_points=1000), 1000)


def test_candidates_tiny_regions_fall_back():
    for radius in (2.0, 0.2):
        region = CircleRegion(48.5734, 7.7521, radius)  # central Strasbourg
        pts = region.candidate_points(max_points=20000, min_spacing_km=1.0)
        _check_candidates(region, pts, 20000)
        assert len(pts) >= 5
    vatican = parse_region("VA")
    _check_candidates(vatican, vatican.candidate_points(), 20000)


def test_candidates_no_land():
    region = parse_region("circle:0,-140,100")
    with pytest.raises(RegionError, match=r"circle:0,-140,100 contains no land"):
        region.candidate_points()


def test_candidates_continent():
    region = parse_region("south america")
    assert isinstance(region, ContinentRegion) and region.key == "continent:South America"
    pts = region.candidate_points(max_points=3000)
    _check_candidates(region, pts, 3000)
    assert (get_country_index().lookup(pts[:, 0], pts[:, 1]) == "BR").any()


def test_lattice_is_global_and_deterministic():
    boxes = np.array([[-10.0, 40.0, 5.0, 50.0]])
    a = lattice_points(boxes, 50.0)
    b = lattice_points(np.concatenate([boxes, boxes]), 50.0)
    np.testing.assert_array_equal(a, b)
    assert len(a) == pytest.approx(BBoxRegion(40, -10, 50, 5).area_km2 / 2500, rel=0.1)


# ---------------------------------------------------------------- parse_region
@pytest.mark.parametrize(
    "spec, cls, key",
    [
        ("FR", CountryRegion, "country:FR"),
        ("fra", CountryRegion, "country:FR"),
        ("France", CountryRegion, "country:FR"),
        ("united kingdom", CountryRegion, "country:GB"),
        ("country:de", CountryRegion, "country:DE"),
        ("Europe", ContinentRegion, "continent:Europe"),
        ("south america", ContinentRegion, "continent:South America"),
        ("continent:asia", ContinentRegion, "continent:Asia"),
        ("circle:48.85,2.35,50", CircleRegion, "circle:48.85,2.35,50"),
        ("circle: 48.85, 2.35, 50km", CircleRegion, "circle:48.85,2.35,50"),
        ("bbox:40,-10,50,5", BBoxRegion, "bbox:40,-10,50,5"),
        ("country:CLP", CountryRegion, "country:CLP"),
    ],
)
def test_parse_region_forms(spec, cls, key):
    region = parse_region(spec)
    assert isinstance(region, cls) and region.key == key
    assert parse_region(region) is region
    assert parse_region(region.key) == region  # keys round-trip


@pytest.mark.parametrize(
    "spec, message",
    [
        ("circle:95,0,10", "latitude"),
        ("circle:10,0,0", "radius"),
        ("circle:10,0,-5", "radius"),
        ("circle:10,0", "3 numbers"),
        ("bbox:50,0,40,10", "south"),
        ("bbox:a,b,c,d", "4 numbers"),
        ("bbox:0,0,10,200", "longitude"),
        ("", "Empty"),
        ("{not json", "Invalid GeoJSON"),
        ("geojson:/no/such/file.geojson", "Cannot read"),
        ("shape:12", "prefix"),
        (42, "Accepted region forms"),
    ],
)
def test_parse_region_errors(spec, message):
    with pytest.raises(RegionError, match=message):
        parse_region(spec)


def test_unknown_names_suggest():
    with pytest.raises(UnknownRegionError) as info:
        parse_region("Frnace")
    assert "Did you mean: France" in str(info.value)
    with pytest.raises(UnknownRegionError, match="Europe"):
        parse_region("Eurpoe")
    with pytest.raises(UnknownRegionError, match="Germany"):
        parse_region("country:Germny")
    err = UnknownRegionError("x")
    assert isinstance(err, RegionError) and isinstance(err, ValueError)


# ---------------------------------------------------------------- GeoJSON polygons
SQUARE = {"type": "Polygon", "coordinates": [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]]}


def test_geojson_polygon_forms(tmp_path):
    plain = parse_region(SQUARE)
    assert isinstance(plain, PolygonRegion) and plain.key.startswith("polygon:")
    assert plain.contains([48.5, 47.5], [2.5, 2.5]).tolist() == [True, False]
    feature = {"type": "Feature", "properties": {"name": "Around Paris"}, "geometry": SQUARE}
    region = parse_region(feature)
    assert region.label == "Around Paris" and region.key == plain.key
    collection = {"type": "FeatureCollection", "features": [feature, {"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[10, 50], [11, 50], [11, 51], [10, 51], [10, 50]]]}}]}
    union = parse_region(json.dumps(collection))
    assert union.geometry.geom_type == "MultiPolygon" and union.contains(50.5, 10.5)
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(SQUARE))
    from_file = parse_region(str(path))
    assert from_file.key == plain.key and from_file.label == "area"
    assert parse_region(f"geojson:{path}").key == plain.key
    pts = from_file.candidate_points(max_points=500)
    _check_candidates(from_file, pts, 500)


def test_geojson_antimeridian_and_validation():
    # polygon given with longitudes past 180 gets split at the antimeridian
    crossing = {"type": "Polygon", "coordinates": [[[175, -20], [185, -20], [185, -15], [175, -15], [175, -20]]]}
    region = parse_region(crossing)
    assert region.geometry.geom_type == "MultiPolygon"
    assert region.contains(-17.0, -178.0) and region.contains(-17.0, 178.0)
    assert region.bounds == pytest.approx((-20, 175, -15, -175))
    # self-intersecting bow-tie gets repaired instead of failing
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    assert parse_region(bowtie).area_km2 > 0
    with pytest.raises(RegionError, match="swapped"):
        parse_region({"type": "Polygon", "coordinates": [[[48, 120], [49, 120], [49, 121], [48, 120]]]})
    with pytest.raises(RegionError, match="Point"):
        parse_region({"type": "Point", "coordinates": [2, 48]})
    with pytest.raises(RegionError):
        parse_region({"type": "FeatureCollection", "features": []})


def test_region_choices():
    choices = region_choices()
    names = [name for _, name in choices["countries"]]
    assert names == sorted(names, key=str.lower)
    assert ("FR", "France") in choices["countries"]
    assert "Europe" in choices["continents"] and "Seven seas (open ocean)" not in choices["continents"]
    for code, _ in choices["countries"][:20]:
        parse_region(code)
