"""In headless Chromium: a video dropped in the Locate tab's video panel shows the frame strip (a thumbnail,
time and top place per keyframe) and the fused map (candidates and the credible area); no request leaves
127.0.0.1. Uses the shared browser fixture of tests/ui/conftest.py against the running app."""

from __future__ import annotations

from tests.imaging.video.clips import three_shots
from tests.ui.conftest import wait_in_map


def test_a_dropped_video_shows_the_frame_strip_and_the_fused_map(running_app, browser, artifacts_dir, tmp_path):
    clip = tmp_path / "three_shots.mp4"
    three_shots(clip)
    page = browser.page
    browser.open(running_app.url)
    browser.upload("#geoapp-video", [str(clip)])
    page.locator("#geoapp-video-button").click()
    page.wait_for_selector("#geoapp-frame-strip figure", timeout=180_000)
    figures = page.locator("#geoapp-frame-strip figure")
    assert figures.count() >= 3, running_app.log()[-3000:]
    captions = figures.locator("figcaption").all_inner_texts()
    assert captions[0].startswith("t = 0.00 s") and all("t = " in c and "shot" in c for c in captions)
    assert figures.locator("img").first.evaluate("img => img.naturalWidth") > 0
    map_frame = page.frame_locator("#geoapp-video-map iframe")
    assert wait_in_map(map_frame, ".geoapp-candidate") >= 1
    layers = map_frame.locator(".leaflet-control-layers-overlays").inner_text()
    assert "Credible areas (fused video)" in layers, layers
    assert "fused into one map" in page.locator("#geoapp-video-summary").inner_text()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts_dir / "locate_video.png"), full_page=True)
    assert browser.external() == []


def test_a_case_keeps_a_dropped_video_and_its_keyframes(running_app, browser, artifacts_dir, tmp_path):
    clip = tmp_path / "case_clip.mp4"
    three_shots(clip)
    page = browser.page
    browser.new_case(running_app.url, "Case with a video")
    browser.upload("#geoapp-case-evidence", [str(clip)])
    page.get_by_role("button", name="Add evidence").click()
    page.wait_for_selector("#geoapp-case-evidence-table >> text=(video, >> visible=true", timeout=180_000)
    table = page.locator("#geoapp-case-evidence-table").inner_text()
    assert "case_clip.mp4 (video, 8.0 s," in table, table
    assert table.count("case_clip.mp4#t=") >= 3 and "(keyframe, shot" in table, table
    # Analysing the case runs on the keyframes (a video stands for its frames), one analysis each.
    page.locator("#geoapp-case-analyse").click()
    page.wait_for_selector("#geoapp-case-analyses >> text=case_clip.mp4#t= >> visible=true", timeout=400_000)
    page.wait_for_timeout(1000)
    analyses = page.locator("#geoapp-case-analyses").inner_text()
    assert analyses.count("case_clip.mp4#t=") == table.count("case_clip.mp4#t="), analyses
    page.screenshot(path=str(artifacts_dir / "case_video.png"), full_page=True)
    assert browser.external() == []
