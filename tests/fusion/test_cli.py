import json

import numpy as np

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


def test_points_cache_keeps_each_image_once_and_only_for_its_model(tmp_path):
    from geoapp.cli.fusion import _read_points_cache, _write_points_cache
    from geoapp.fusion import PointMass

    cache = tmp_path / "points.npz"
    points = {"b.png": PointMass.normalised([1.0, 2.0], [3.0, 4.0], [1.0, 3.0]),
              "a.png": PointMass.normalised([5.0], [6.0], [1.0])}
    _write_points_cache(cache, '{"family": "toy"}', points)
    back = _read_points_cache(cache, '{"family": "toy"}')
    assert sorted(back) == ["a.png", "b.png"]
    np.testing.assert_allclose(back["b.png"].weight, [0.25, 0.75])
    np.testing.assert_allclose(back["a.png"].lat, [5.0])
    assert _read_points_cache(cache, '{"family": "other"}') == {}
    assert _read_points_cache(tmp_path / "absent.npz", '{"family": "toy"}') == {}
