"""Evidence fusion in headless Chromium: Locate with a sun clue and a time-zone clue shows each clue as a
layer, the fused map and the 90 % area with its km² (same app and browser set-up as test_browser.py)."""

from __future__ import annotations

import re

from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO
from tests.ui.test_browser import CHROMIUM, CHROMIUM_FLAGS, _external, _playwright, _wait_in_map

SUN = "sun:time=2024-06-21T10:00:00Z,ratio=1.0,ratio_sd=0.1"
TZ = "tz:offset=+02:00,time=2024-06-21T12:00:00"


def test_locate_with_sun_and_time_zone_clues_in_the_browser(running_app, artifacts_dir):
    sync_api = _playwright()
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.goto(running_app.url, wait_until="domcontentloaded")
            page.wait_for_selector("#geoapp-photos input[type=file]", state="attached", timeout=60_000)
            page.locator("#geoapp-photos input[type=file]").set_input_files([str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))])
            page.wait_for_selector(f"text={IM2GPS_PHOTO[:12]}", timeout=30_000)
            page.get_by_text("Clues (evidence fusion)").click()
            page.locator("#geoapp-clues textarea").fill(f"{SUN}\n{TZ}")
            page.get_by_role("button", name="Locate", exact=True).click()

            map_frame = page.frame_locator("#geoapp-locate-map iframe")
            assert _wait_in_map(map_frame, "path.geoapp-area-90", timeout_s=300) >= 1, running_app.log()[-3000:]
            assert map_frame.locator("path.geoapp-clue-layer").count() >= 2  # one layer per clue
            assert map_frame.locator("path.geoapp-fused-cell").count() > 10  # the fused map
            layers = map_frame.locator(".leaflet-control-layers-overlays").inner_text()
            assert f"Clue: {SUN}" in layers and f"Clue: {TZ}" in layers and "Fused map" in layers, layers
            area_90 = re.search(r"90 % area: ([\d,]+) km²", layers)
            assert area_90 and int(area_90.group(1).replace(",", "")) > 0, layers
            page.wait_for_selector("#geoapp-fusion >> text=Credible areas", timeout=30_000)
            panel = page.locator("#geoapp-fusion").inner_text()
            assert "90 %:" in panel and "km²" in panel and "not calibrated" in panel, panel
            assert "tz" in panel and "sun" in panel and "Globe left" in panel
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts_dir / "locate_fusion.png"), full_page=True)
        finally:
            browser.close()
    assert _external(requests) == [], f"offline mode contacted other hosts: {_external(requests)}"
