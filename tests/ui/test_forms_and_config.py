"""Typed form values, app flags and the analyst-facing views (no model)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from geoapp.ui.maps.render import ReferencePoint
from geoapp.ui import views
from geoapp.ui.config import AppConfig, ConfigError, config_from_args, is_loopback, parse_auth
from geoapp.ui.forms import (COMPARE_DIFFERENCE, REGION_CIRCLE, REGION_CONTINENT, REGION_COUNTRY, REGION_GEOJSON,
                             FormError, LocateForm, RegionForm, TextMapForm, parse_claimed_location)
from tests.conftest import REPO
from tests.ui.conftest import synthetic_prediction


@pytest.mark.parametrize(("form", "spec"), [
    (RegionForm(), None),
    (RegionForm(mode=REGION_COUNTRY, country="FR"), "country:FR"),
    (RegionForm(mode=REGION_CONTINENT, continent="Europe"), "continent:Europe"),
    (RegionForm(mode=REGION_CIRCLE, circle_lat=48.85, circle_lon=2.35, circle_radius_km=50), "circle:48.85,2.35,50.0"),
    (RegionForm(mode=REGION_GEOJSON, geojson_path="/tmp/area.geojson"), "geojson:/tmp/area.geojson"),
])
def test_region_form_specs(form, spec):
    assert form.spec() == spec


@pytest.mark.parametrize("form", [
    RegionForm(mode=REGION_COUNTRY),
    RegionForm(mode=REGION_CIRCLE, circle_lat=1, circle_lon=2),
    RegionForm(mode=REGION_CIRCLE, circle_lat=1, circle_lon=2, circle_radius_km=0),
    RegionForm(mode=REGION_GEOJSON),
    RegionForm(mode="Moon"),
])
def test_region_form_errors_are_readable(form):
    with pytest.raises(FormError) as error:
        form.spec()
    assert len(str(error.value)) > 20


def test_locate_form_from_widget_values():
    form = LocateForm.from_values(["/a.jpg", {"path": "/b.png"}], 7.0, True, "geoclip", RegionForm(), "48.85, 2.35")
    assert form.files == ("/a.jpg", "/b.png") and form.top_k == 7 and form.tencrop
    assert (form.claimed.lat, form.claimed.lon) == (48.85, 2.35)
    with pytest.raises(FormError, match="Drop one or more photos"):
        LocateForm.from_values(None, 5, False, "geoclip", RegionForm(), None)
    with pytest.raises(FormError, match="between 1 and"):
        LocateForm.from_values(["/a.jpg"], 0, False, "geoclip", RegionForm(), None)


def test_claimed_location_takes_what_a_case_claim_takes():
    """One parser for Locate and Cases: coordinates, place names, circles (their centre)."""
    from geoapp.cases.claims import resolve_place

    assert parse_claimed_location("  ") is None
    for text in ("-33.86 151.21", "46.4825, 30.7233", "Odesa", "Kharkiv, UA", "circle:46.4,30.7,20"):
        claimed, place = parse_claimed_location(text), resolve_place(text)
        assert (claimed.lat, claimed.lon) == (place.lat, place.lon), text
    odesa = parse_claimed_location("Odesa")
    assert odesa.label == "Claimed location (Odesa, Ukraine)" and odesa.lat == pytest.approx(46.48, abs=0.05)
    assert parse_claimed_location("-33.86 151.21").label == "Claimed location"  # the numbers are on the map
    for bad, why in (("91, 0", "latitude"), ("Nowhere-land-xyz", "not found"), ("circle:1,2", "circle")):
        with pytest.raises(FormError, match=f"(?i)claimed location.*{why}"):
            parse_claimed_location(bad)
    with pytest.raises(FormError, match="is a country"):  # a country has no single point to measure from
        parse_claimed_location("Ukraine")


def test_offline_map_help_agrees_with_the_settings_panel():
    """--help must not promise a switch the page cannot offer (the policy forbids tile servers until a restart);
    the panel's words are checked on the built app in test_app_wiring.py."""
    from geoapp.ui.config import OFFLINE_MAP_EFFECT, build_parser

    help_text = " ".join(next(a for a in build_parser()._actions if "--offline-map" in a.option_strings).help.split())
    assert "switched on in Settings" not in help_text
    assert OFFLINE_MAP_EFFECT in help_text and "restarted without --offline-map" in OFFLINE_MAP_EFFECT
    assert config_from_args([]).preload and not config_from_args(["--no-preload"]).preload


def test_text_map_form():
    form = TextMapForm.from_values(" a beach ", "", COMPARE_DIFFERENCE, 10, RegionForm())
    assert form.query_a == "a beach" and form.query_b is None
    with pytest.raises(FormError, match="Query A"):
        TextMapForm.from_values("  ", None, None, 10, RegionForm())


def test_loopback_detection_and_auth():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.org", "::"))
    assert parse_auth("analyst:pa:ss") == ("analyst", "pa:ss")
    with pytest.raises(ConfigError):
        parse_auth("analyst")


def test_non_loopback_requires_auth():
    with pytest.raises(ConfigError, match="--auth"):
        AppConfig(host="0.0.0.0").validate()
    with pytest.raises(ConfigError, match="--auth"):
        AppConfig(share=True).validate()
    assert AppConfig(host="0.0.0.0", auth=("a", "b")).validate().host == "0.0.0.0"
    config = config_from_args(["--offline-map", "--backbone-weights", "random", "--port", "8000"])
    assert config.offline_map and config.random_weights and config.port == 8000 and config.host == "127.0.0.1"


def test_app_refuses_to_start_on_a_public_address_without_auth():
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "--host", "0.0.0.0"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--auth" in result.stderr and "Refusing" in result.stderr


def test_candidate_table_and_confidence_with_references():
    prediction = synthetic_prediction()
    refs = [ReferencePoint("EXIF GPS (in the file)", 48.85, 2.35)]
    rows = views.candidate_rows(prediction, refs)
    assert len(rows) == 5 and len(rows[0]) == len(views.candidate_columns(refs)) == 8
    assert rows[0][0] == 1 and rows[0][1].endswith("%")
    text = views.confidence_markdown(prediction, refs)
    assert "Most likely" in text and "within 25 km" in text and "EXIF GPS" in text


def test_exif_panel_and_banner():
    image = {"name": "a_b@c.jpg", "format": "JPEG", "original_size": [640, 480], "file_size": 1000, "sha256": "ab" * 32,
             "exif": {"gps_lat": 43.467448, "gps_lon": 11.885127, "gps_altitude_m": 12.0, "capture_time": "2008:10:22",
                      "camera_make": "NIKON", "camera_model": "COOLPIX P6000", "orientation": 6},
             "notes": [], "warnings": []}
    panel = views.exif_markdown(image)
    assert "43.467448, 11.885127" in panel and "NIKON COOLPIX P6000" in panel and "rotated 90°" in panel
    assert "@" not in panel  # no accidental e-mail autolink of file names
    banner = views.banner_html([synthetic_prediction()], random_weights=False)
    assert "RANDOM WEIGHTS" in banner
    assert views.banner_html([synthetic_prediction(random_weights=False)], random_weights=False) == ""
