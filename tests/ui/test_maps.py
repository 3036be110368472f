"""geoapp.ui.maps.render: pure functions from predictions to HTML (no model, no server)."""

from __future__ import annotations

import html
import re

import pytest

from geoapp.geo.regions import parse_region
from geoapp.ui.maps.render import (MapAssets, MapOptions, ReferencePoint, difference_map_html, embed_html, placeholder_html,
                         prediction_map_html)
from tests.ui.conftest import synthetic_prediction

LOCAL = MapAssets.local("gradio_api/file=/srv/map-assets/")
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def external_urls(page: str) -> list[str]:
    """Every absolute or protocol-relative URL in a page."""
    return URL.findall(page)


def test_prediction_map_has_markers_heatmap_layers_and_fitted_view():
    prediction = synthetic_prediction()
    page = prediction_map_html(prediction, MapOptions(LOCAL, online_tiles=True))
    assert page.count('class=\\"geoapp-pin\\"') == len(prediction.candidates) == 5
    for rank in range(1, 6):
        assert f'#{rank} \\u00b7' in page or f"#{rank} ·" in page  # tooltips "#k · p % · place"
    assert "L.heatLayer(" in page
    assert "L.control.layers(" in page
    assert ".fitBounds(" in page
    assert "Probability heatmap" in page and "Candidates (numbered)" in page
    assert "OpenStreetMap" in page and "Esri World Imagery" in page
    assert "RANDOM WEIGHTS" in page  # the banner on the map itself
    # Leaflet and the heat plugin come from the app, never from folium's CDN defaults.
    assert 'src="gradio_api/file=/srv/map-assets/leaflet.js"' in page
    assert 'src="gradio_api/file=/srv/map-assets/leaflet-heat.js"' in page
    for cdn_library in ("jquery", "bootstrap", "font-awesome", "fontawesome", "awesome-markers", "cdn.jsdelivr"):
        assert cdn_library not in page.lower()


def test_offline_map_makes_no_external_reference():
    page = prediction_map_html(synthetic_prediction(), MapOptions(LOCAL, online_tiles=False),
                               references=[ReferencePoint("EXIF GPS", 48.0, 2.0)])
    assert external_urls(page) == []
    assert "tile.openstreetmap.org" not in page and "arcgisonline" not in page
    assert 'src="gradio_api/file=/srv/map-assets/countries.js"' in page  # offline basemap
    assert 'window["GEOAPP_COUNTRIES"]' in page


def test_real_weights_have_no_banner():
    page = prediction_map_html(synthetic_prediction(random_weights=False), MapOptions(LOCAL))
    assert "RANDOM WEIGHTS" not in page


def test_reference_points_and_region_outline():
    region = parse_region("circle:48.85,2.35,100")
    prediction = synthetic_prediction(region=region)
    page = prediction_map_html(prediction, MapOptions(LOCAL, online_tiles=False),
                               references=[ReferencePoint("EXIF GPS (in the file)", 48.0, 2.0),
                                           ReferencePoint("Claimed location", 40.0, -3.0)])
    assert page.count('class=\\"geoapp-ref\\"') == 2
    assert "km from candidate #1" in page
    assert "L.polyline(" in page  # dashed line from each reference to #1
    assert html.escape(f"Search region: {region.label}") in page
    assert '"dashArray": "8 5"' in page


def test_user_text_is_escaped_in_html_and_javascript():
    prediction = synthetic_prediction()
    prediction.candidates[0].place = type("P", (), {"label": "<img src=x onerror=alert(1)>`${x}`",
                                                     "country_code": "XX"})()
    page = prediction_map_html(prediction, MapOptions(LOCAL), title="<script>alert('t')</script>")
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "${x}" not in page and "`${" not in page


def test_difference_map_uses_a_diverging_scheme_on_shared_points():
    first = synthetic_prediction(seed=1)
    second = synthetic_prediction(seed=1)
    second.surface.probability = second.surface.probability[::-1].copy()
    page = difference_map_html(first, second, MapOptions(LOCAL, online_tiles=False))
    assert "#b2182b" in page and "#2166ac" in page  # red: A better, blue: B better
    assert "Difference of probabilities" in page
    assert "Top places for A" in page and "Top places for B" in page
    assert external_urls(page) == []


def test_difference_map_refuses_different_candidates():
    first, second = synthetic_prediction(seed=1), synthetic_prediction(seed=2)
    with pytest.raises(ValueError, match="different candidate points"):
        difference_map_html(first, second, MapOptions(LOCAL))


def test_cdn_assets_and_placeholder():
    page = placeholder_html("nothing yet", MapOptions(MapAssets.cdn(), online_tiles=True))
    assert "https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.js" in page
    assert "nothing yet" in page


def test_embed_html_round_trips_through_srcdoc():
    page = prediction_map_html(synthetic_prediction(), MapOptions(LOCAL))
    frame = embed_html(page, 480)
    assert frame.startswith("<iframe") and 'height:480px' in frame
    source = re.search(r'srcdoc="([^"]*)"', frame).group(1)
    assert "{" not in source and "$" not in source and "`" not in source  # no template syntax for the host
    assert html.unescape(source) == page


def test_refinement_moves_are_drawn_on_the_map():
    import numpy as np

    from geoapp.families.retrieval.evidence import RefinementEvidence
    from geoapp.results.prediction import build_prediction

    prediction = build_prediction("x", np.array([47.0, 48.0]), np.array([8.0, 9.0]), np.array([0.6, 0.4]), top_k=2,
                                  merge_km=25, moved={(47.0, 8.0): (47.05, 8.02)})
    assert (prediction.candidates[0].lat, prediction.candidates[0].lon) == (47.05, 8.02)
    prediction.evidence.append(RefinementEvidence(
        [(1, (47.0, 8.0), (47.05, 8.02)), (2, (48.0, 9.0), (48.0, 9.0))], 15, 0.5))
    page = prediction_map_html(prediction, MapOptions(LOCAL))
    assert "Fine refinement" in page and "LineString" in page and "#1: refined 5.8 km" in page
    assert "#2: refined" not in page  # a place that did not move draws nothing
