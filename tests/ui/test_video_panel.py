"""Videos in the app without a browser: the Gradio-free service (frames, fused map, outliers, putting one back)
and the panel's HTML (frame strip, fused map with its credible area). SatWorld, the shipped model, on a
generated clip: two flyovers of the Nile delta around a studio shot."""

from __future__ import annotations

import pytest

from geoapp.ui.service import GeolocationService, ModelSettings
from geoapp.ui.video_service import locate_video
from tests.imaging.video.clips import nile_studio


@pytest.fixture(scope="module")
def located(tmp_path_factory):
    path = tmp_path_factory.mktemp("video-panel") / "nile.mp4"
    nile_studio(path)
    service = GeolocationService(ModelSettings(device="cpu"))
    return locate_video(service, str(path), model="satworld", top_k=3)


def test_frames_have_times_top_places_and_the_studio_is_left_out(located):
    assert located.error is None and [f.shot for f in located.frames] == [0, 1, 2]
    assert [f.source for f in located.frames] == [f"nile.mp4#t={f.time_s:.2f}" for f in located.frames]
    assert all(f.thumbnail.width <= 192 and f.top_label for f in located.frames)
    assert [f.outlier for f in located.frames] == [False, True, False]
    assert "disagrees with the other frames" in located.frames[1].reason
    fusion = located.fused.image["fusion"]
    assert located.fused.source == "nile.mp4" and len(fusion["used"]) == 2 and fusion["areas"][0]["area_km2"] > 0
    assert located.fused.top.country_code in {"EG", "IL", "PS", "JO", "SA"}
    assert len(located.facts["sha256"]) == 64 and located.facts["duration_s"] == pytest.approx(8.0, abs=0.2)


def test_an_outlier_put_back_is_fused_again_without_decoding(located):
    studio = located.frames[1]
    again = located.refused(keep=(round(studio.time_s, 2),))
    assert again.fused.image["fusion"]["kept"] == [studio.source] and len(again.fused.image["fusion"]["used"]) == 3
    assert again.frames[1].kept and again.frames[1].reason == "put back by the analyst"
    assert located.refused().frames[1].kept is False  # and out again


def test_panel_html_shows_the_strip_and_the_fused_map_with_its_area(located):
    from geoapp.ui.common import UiContext
    from geoapp.ui.config import AppConfig
    from geoapp.ui.video_tab import VideoHandlers

    ctx = UiContext(config=AppConfig(offline_map=True), service=None, asset_prefix="gradio_api/file=/srv/map-assets/")
    strip, summary, fused_map = VideoHandlers(ctx).show(located, False)
    assert strip.count("<figure") == 3 and strip.count("geoapp-outlier") == 1 and "data:image/png;base64," in strip
    assert f't = {located.frames[1].time_s:.2f} s' in strip and "Left out: its map disagrees" in strip
    assert "nile.mp4" in summary and "Left out: nile.mp4#t=" in summary
    assert "Credible areas (fused video)" in fused_map and "geoapp-candidate" in fused_map
