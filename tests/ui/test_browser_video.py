"""In headless Chromium: a video dropped in the Locate tab's video panel shows the frame strip (a thumbnail,
time and top place per keyframe) and the fused map (candidates and the credible area); no request leaves
127.0.0.1. Uses the set-up of tests/ui/test_browser.py (same Chromium, same running app)."""

from __future__ import annotations

import pytest

from tests.imaging.video.clips import three_shots
from tests.ui.test_browser import CHROMIUM, CHROMIUM_FLAGS, _external, _playwright, _wait_in_map


def test_a_dropped_video_shows_the_frame_strip_and_the_fused_map(running_app, artifacts_dir, tmp_path):
    sync_api = _playwright()
    clip = tmp_path / "three_shots.mp4"
    three_shots(clip)
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.goto(running_app.url, wait_until="domcontentloaded")
            page.wait_for_selector("#geoapp-video input[type=file]", state="attached", timeout=60_000)
            page.locator("#geoapp-video input[type=file]").set_input_files([str(clip)])
            page.wait_for_selector("text=three_shots", timeout=30_000)
            page.locator("#geoapp-video-button").click()
            page.wait_for_selector("#geoapp-frame-strip figure", timeout=180_000)
            figures = page.locator("#geoapp-frame-strip figure")
            assert figures.count() >= 3, running_app.log()[-3000:]
            captions = figures.locator("figcaption").all_inner_texts()
            assert captions[0].startswith("t = 0.00 s") and all("t = " in c and "shot" in c for c in captions)
            assert figures.locator("img").first.evaluate("img => img.naturalWidth") > 0
            map_frame = page.frame_locator("#geoapp-video-map iframe")
            assert _wait_in_map(map_frame, ".geoapp-candidate") >= 1
            layers = map_frame.locator(".leaflet-control-layers-overlays").inner_text()
            assert "Credible areas (fused video)" in layers, layers
            assert "fused into one map" in page.locator("#geoapp-video-summary").inner_text()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts_dir / "locate_video.png"), full_page=True)
        finally:
            browser.close()
    assert _external(requests) == []
