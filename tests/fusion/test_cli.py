import json

from geoapp.cli.main import main
from tests.conftest import shared_path


def test_clues_show_writes_each_layer_and_the_area(tmp_path, capsys):
    out = tmp_path / "clues.geojson"
    code = main(["clues", "show", "drive:left", "tz:offset=+09:00,time=2024-06-21T12:00:00", "--format", "geojson",
                 "--output", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    kinds = [f["properties"]["kind"] for f in data["features"]]
    assert kinds.count("clue_layer") == 2 and "credible_area" in kinds
    area = next(f for f in data["features"] if f["properties"]["kind"] == "credible_area")
    assert area["properties"]["calibrated"] is False and area["properties"]["area_km2"] > 0
    assert "drive:left: " in capsys.readouterr().err


def test_a_bad_clue_is_one_line_naming_it(capsys):
    assert main(["clues", "show", "tz:offset=+05:15,time=2024-06-21T12:00:00"]) == 2
    err = capsys.readouterr().err
    assert "tz:offset=+05:15" in err and "Traceback" not in err


def test_predict_writes_area_polygons_with_km2_and_calibration(tmp_path):
    images = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[:1]
    assert images
    out = tmp_path / "areas.geojson"
    code = main(["predict", str(images[0]), "--model", "satworld", "--clue", "drive:right", "--area", "0.5,0.9",
                 "--format", "geojson", "--output", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    areas = [f["properties"] for f in data["features"] if f["properties"]["kind"] == "credible_area"]
    assert [a["level"] for a in areas] == [0.5, 0.9]
    for a in areas:
        assert a["area_km2"] > 0 and a["parts"] >= 1 and isinstance(a["calibrated"], bool)
        assert a["source"] == str(images[0]) and a["clues"] == ["drive:right"]
    assert areas[0]["area_km2"] < areas[1]["area_km2"]
