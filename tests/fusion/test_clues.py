import json

import numpy as np
import pytest

from geoapp.fusion import ClueError, parse_clue, proposed_from_exif
from geoapp.fusion.grid import Grid, point_cells

BERLIN, LONDON, PARIS, TOKYO, SYDNEY = (52.52, 13.40), (51.51, -0.13), (48.86, 2.35), (35.68, 139.69), (-33.87, 151.21)


def _at(clue, *places):
    """The clue's factor in the level-6 cells (about 3 km) holding each (lat, lon)."""
    row, col = point_cells(np.array([p[0] for p in places]), np.array([p[1] for p in places]), 6)
    return clue.factor(Grid(np.full_like(row, 6), row, col))


def test_time_zone_clue_uses_the_offset_on_that_date():
    summer = parse_clue("tz:offset=+02:00,time=2024-06-21T12:00:00")
    assert "Europe/Berlin" in summer.zones and "Europe/London" not in summer.zones
    assert _at(summer, BERLIN, LONDON).tolist() == [1.0, 0.0]
    winter = parse_clue("tz:offset=+01:00,time=2024-01-15T12:00:00")
    assert _at(winter, BERLIN, LONDON).tolist() == [1.0, 0.0]
    assert "Europe/Berlin" not in parse_clue("tz:offset=+01:00,time=2024-06-21T12:00:00").zones


@pytest.mark.parametrize("text, words", [
    ("sun:time=yesterday,ratio=1", "not an ISO date-time"),
    ("sun:time=2024-06-21T10:00:00,ratio=1", "no time zone"),
    ("sun:time=2024-06-21T10:00:00Z,ratio=-1", "impossible"),
    ("sun:time=2024-06-21T10:00:00Z", "ratio="),
    ("sun:time=2024-06-21T10:00:00Z,ratio=1,colour=red", "unknown key 'colour'"),
    ("sun:time=2024-06-21T10:00:00Z,ratio=1,horizon=below", "needs the sun above"),
    ("tz:offset=+05:15,time=2024-06-21T12:00:00", "no time zone had UTC+05:15"),
    ("tz:offset=+15:00,time=2024-06-21T12:00:00", "impossible"),
    ("tz:offset=+02:00,time=21/06/2024", "not an ISO date-time"),
    ("tz:offset=+02:00", "needs offset"),
])
def test_impossible_or_unparsable_clues_are_refused_by_name(text, words):
    with pytest.raises(ClueError) as caught:
        parse_clue(text)
    assert words in str(caught.value) and text in str(caught.value)


def test_exif_offset_proposes_a_time_zone_clue_marked_as_proposed():
    clue = proposed_from_exif("2024-06-21T12:00:00+02:00")
    assert clue.text == "tz:offset=+02:00,time=2024-06-21T12:00:00" and "proposed" in clue.source
    assert proposed_from_exif("2024-06-21T12:00:00") is None and proposed_from_exif(None) is None


def test_driving_side_follows_the_country_table():
    left = parse_clue("drive:left")
    assert _at(left, LONDON, PARIS, TOKYO, SYDNEY).tolist() == [1.0, 0.0, 1.0, 1.0]
    assert _at(parse_clue("drive:right"), LONDON, PARIS).tolist() == [0.0, 1.0]
    with pytest.raises(ClueError, match="left or right"):
        parse_clue("drive:middle")


# Elevations of city centres (m), from the cities' own published figures.
CITIES = {"Amsterdam": (52.37, 4.90, 0), "Budapest": (47.50, 19.04, 100), "Manaus": (-3.10, -60.02, 92),
          "Denver": (39.74, -104.99, 1609), "Mexico City": (19.43, -99.13, 2240), "La Paz": (-16.50, -68.15, 3640),
          "Lhasa": (29.65, 91.12, 3656), "Quito": (-0.22, -78.51, 2850), "Madrid": (40.42, -3.70, 657)}


@pytest.mark.parametrize("name", sorted(CITIES))
def test_elevation_bands_hold_at_cities_of_known_elevation(name):
    lat, lon, metres = CITIES[name]
    above = parse_clue(f"elevation:min={max(0, metres - 500)}")
    below = parse_clue(f"elevation:max={metres + 500}")
    assert _at(above, (lat, lon))[0] > 0 and _at(below, (lat, lon))[0] > 0
    if metres > 2000:
        assert _at(parse_clue("elevation:max=200"), (lat, lon))[0] == 0
    if metres < 200:
        assert _at(parse_clue("elevation:min=2000"), (lat, lon))[0] == 0


def test_coast_clue():
    near = parse_clue("coast:max_km=20")
    assert _at(near, (43.30, 5.37), (40.42, -3.70)).tolist() == [1.0, 0.0]  # Marseille, Madrid
    with pytest.raises(ClueError, match="impossible"):
        parse_clue("coast:max_km=5000")


def test_exclusion_polygons_are_repaired_or_refused(tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    path = tmp_path / "bowtie.geojson"
    path.write_text(json.dumps({"type": "Feature", "geometry": bowtie, "properties": {}}))
    clue = parse_clue(f"exclude:{path}")
    assert "repaired" in clue.note
    # The bow tie becomes its two triangles (west and east of x = 5): (lat 5, lon 2) is inside, (lat 2, lon 5) is not.
    assert _at(clue, (2.0, 5.0), (5.0, 2.0), (30.0, 30.0)).tolist() == [1.0, 0.0, 1.0]
    line = tmp_path / "line.geojson"
    line.write_text(json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
    with pytest.raises(ClueError, match="no area"):
        parse_clue(f"exclude:{line}")
    huge = tmp_path / "huge.geojson"
    ring = [[float(np.cos(t)), float(np.sin(t))] for t in np.linspace(0, 2 * np.pi, 210_000)]
    huge.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    with pytest.raises(ClueError, match="vertices"):
        parse_clue(f"exclude:{huge}")
    junk = tmp_path / "junk.geojson"
    junk.write_text("{not json")
    with pytest.raises(ClueError, match="not GeoJSON"):
        parse_clue(f"exclude:{junk}")
    with pytest.raises(ClueError, match="not found"):
        parse_clue(f"exclude:{tmp_path / 'missing.geojson'}")


def test_region_is_a_hard_clue_and_unknown_kinds_list_the_valid_ones():
    region = parse_clue("region:FR")
    assert region.hard and _at(region, PARIS, BERLIN).tolist() == [1.0, 0.0]
    with pytest.raises(ClueError, match="one of sun, tz, drive"):
        parse_clue("moon:full")
