"""Evidence fusion in headless Chromium: Locate with a sun clue and a time-zone clue shows each clue as a
layer, the fused map and the 90 % area with its km² (the ``browser`` fixture of tests/ui/conftest.py)."""

from __future__ import annotations

import re

from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO, wait_in_map

SUN = "sun:time=2024-06-21T10:00:00Z,ratio=1.0,ratio_sd=0.1"
TZ = "tz:offset=+02:00,time=2024-06-21T12:00:00"


def test_locate_with_sun_and_time_zone_clues_in_the_browser(running_app, artifacts_dir, browser):
    page = browser.page
    browser.open(running_app.url)
    browser.upload("#geoapp-photos", [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))])
    page.get_by_text("Clues (evidence fusion)").click()
    page.locator("#geoapp-clues textarea").fill(f"{SUN}\n{TZ}")
    page.get_by_role("button", name="Locate", exact=True).click()

    map_frame = page.frame_locator("#geoapp-locate-map iframe")
    assert wait_in_map(map_frame, "path.geoapp-area-90", timeout_s=300) >= 1, running_app.log()[-3000:]
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
    page.wait_for_timeout(1000)  # let the map settle for the screenshot (no assertion follows)
    page.screenshot(path=str(artifacts_dir / "locate_fusion.png"), full_page=True)
    assert browser.external() == [], f"offline mode contacted other hosts: {browser.external()}"
