"""Evidence fusion in Locate: clue lines, the fused map per photo or of one place, its areas, the clue
table, the claimed place's position, the map layers and the /locate record (synthetic predictions and the
tiny random model; no browser)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoapp.ui.forms import FormError
from geoapp.ui.fusion_service import fuse_located, parse_clue_lines
from geoapp.ui.fusion_views import fusion_markdown
from geoapp.ui.locate_tab import api_payload
from geoapp.ui.maps.render import MapAssets, MapOptions, prediction_map_html
from geoapp.ui.service import LocatedImage
from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO, synthetic_prediction

SUN = "sun:time=2024-06-21T10:00:00Z,ratio=1.0,ratio_sd=0.1"
TZ = "tz:offset=+02:00,time=2024-06-21T12:00:00"
LOCAL = MapAssets.local("/assets/")


@pytest.fixture(scope="module")
def fused():
    """The synthetic photo map (mass around Paris and Madrid) with a sun and a time-zone clue."""
    return fuse_located([LocatedImage(synthetic_prediction(), "photo.jpg")], (SUN, TZ), False)[0]


def test_clue_lines_skip_blanks_and_switched_off_lines():
    assert parse_clue_lines(f"\n{SUN}\n  # drive:left\n\n{TZ}\n") == (SUN, TZ)
    assert parse_clue_lines(None) == ()


def test_a_bad_clue_is_refused_with_its_text():
    with pytest.raises(FormError, match="drive:middle"):
        parse_clue_lines(f"{TZ}\ndrive:middle")


def test_fused_map_has_four_areas_nested_with_km2_and_says_not_calibrated(fused):
    areas = fused.areas
    assert [a.level for a in areas] == [0.5, 0.8, 0.9, 0.95]
    sizes = [a.area_km2 for a in areas]
    assert sizes == sorted(sizes) and sizes[0] > 0
    assert all(not a.calibrated and "not calibrated" in a.calibration for a in areas)
    assert np.isfinite(fused.posterior.mass).all() and fused.posterior.mass.sum() == pytest.approx(1.0)


def test_clue_table_names_each_clue_and_the_share_of_the_globe_it_leaves(fused):
    rows = fused.clue_rows()
    assert [r[0] for r in rows] == [SUN, TZ]
    assert [r[3] for r in rows] == ["soft", "hard"]
    shares = [float(r[4].rstrip("%")) for r in rows]
    assert all(0.0 < s < 50.0 for s in shares)


def test_claimed_place_is_placed_relative_to_the_areas(fused):
    assert fused.position_of(48.85, 2.35).startswith("inside the 50 % area")
    assert fused.position_of(-33.9, 151.2).startswith("outside the 95 % area")  # Sydney: not UTC+2 in June


def test_markdown_lists_the_areas_the_clues_and_the_claim(fused):
    text = fusion_markdown(fused, (48.85, 2.35))
    assert "90 %&#58;" in text and "km²" in text and "not calibrated" in text
    assert "| tz | analyst | hard |" in text
    assert "inside the 50 % area" in text
    assert fusion_markdown(None) == ""


def test_conflicting_clues_are_named_and_the_map_is_never_empty():
    photo = LocatedImage(synthetic_prediction(), "photo.jpg")
    fused = fuse_located([photo], ("tz:offset=+09:00,time=2024-06-21T12:00:00",), False, region="country:ES")[0]
    assert fused.posterior.conflicts and fused.posterior.dropped
    assert np.isfinite(fused.posterior.mass).all() and fused.posterior.mass.sum() == pytest.approx(1.0)
    assert "**Conflict:**" in fusion_markdown(fused)
    assert all(a.area_km2 > 0 for a in fused.areas)


def test_the_search_region_becomes_a_hard_clue():
    fused = fuse_located([LocatedImage(synthetic_prediction(), "photo.jpg")], (), False, region="country:ES")[0]
    assert [(r[0], r[3]) for r in fused.clue_rows()] == [("region:country:ES", "hard")]
    assert fused.position_of(40.4, -3.7).startswith("inside")
    assert fused.position_of(48.85, 2.35).startswith("outside")  # Paris: the region rules France out


def test_same_place_fuses_all_photos_once_and_duplicates_count_once():
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    results = [LocatedImage(synthetic_prediction(seed=0), photo), LocatedImage(synthetic_prediction(seed=1), photo)]
    maps = fuse_located(results, (TZ,), True)
    assert maps[0] is maps[1] and len(maps[0].photos) == 2
    assert maps[0].posterior.tempering.weights == pytest.approx((0.5, 0.5))  # the same picture twice
    separate = fuse_located(results, (TZ,), False)
    assert separate[0] is not separate[1]


def test_failed_photo_gets_no_map():
    bad = synthetic_prediction()
    bad.error = "unreadable"
    maps = fuse_located([LocatedImage(bad, "bad.jpg"), LocatedImage(synthetic_prediction(), "ok.jpg")], (TZ,), False)
    assert maps[0] is None and maps[1] is not None


def test_map_draws_the_fused_map_the_areas_and_each_clue_as_a_layer(fused):
    page = prediction_map_html(synthetic_prediction(), MapOptions(LOCAL), fusion=fused)
    for level in ("50", "80", "90", "95"):
        assert f"geoapp-area-{level}" in page
    assert "geoapp-fused-cell" in page and "Fused map (photo" in page
    assert page.count("geoapp-clue-layer") >= 2 and "Clue: tz:offset=+02:00" in page
    area90 = next(a for a in fused.areas if a.level == 0.9)
    assert f"90 % area: {area90.area_km2:,.0f} km" in page
    plain = prediction_map_html(synthetic_prediction(), MapOptions(LOCAL))
    assert "geoapp-area" not in plain and "geoapp-clue-layer" not in plain


def test_api_record_carries_areas_as_geojson_and_the_clue_table(fused):
    located = LocatedImage(synthetic_prediction(), "photo.jpg", fusion=fused)
    record = json.loads(json.dumps(api_payload([located])))["results"][0]["fusion"]
    features = record["areas"]["features"]
    assert [f["properties"]["level"] for f in features] == [0.5, 0.8, 0.9, 0.95]
    assert all(f["properties"]["area_km2"] > 0 and f["properties"]["calibrated"] is False for f in features)
    assert features[2]["geometry"]["type"] == "MultiPolygon" and features[2]["geometry"]["coordinates"]
    assert [c["name"] for c in record["clues"]] == [SUN, TZ]
    plain = api_payload([LocatedImage(synthetic_prediction(), "photo.jpg")])["results"][0]
    assert "fusion" not in plain
