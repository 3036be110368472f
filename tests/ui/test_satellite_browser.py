"""In headless Chromium, offline: the Satellite view of a candidate and the map's offline imagery tiles.

Reuses the offline-map app of ``running_app`` and the small pyramid of ``offline_pyramid`` (built in the
shared test cache before the first tile is asked for). Every request the page makes is recorded: none
may leave 127.0.0.1.
"""

from __future__ import annotations

import time

from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO
from tests.ui.test_browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    _external,
    _playwright,
    _wait_in_map,
)


def _loaded_tiles(frame) -> int:
    """Leaflet marks a tile image as loaded once its bytes have arrived and decoded."""
    return frame.locator("img.leaflet-tile-loaded[src*='geoapp-tiles/offline']").count()


def test_satellite_view_offline(running_app, offline_pyramid, artifacts_dir):
    sync_api = _playwright()
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1100})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.goto(running_app.url, wait_until="domcontentloaded")
            page.wait_for_selector("#geoapp-photos input[type=file]", state="attached", timeout=60_000)
            page.locator("#geoapp-photos input[type=file]").set_input_files([photo])
            page.get_by_role("button", name="Locate", exact=True).click()

            page.wait_for_selector("#geoapp-satellite img", timeout=90_000)
            caption = page.locator("#geoapp-satellite-caption")
            caption.wait_for(timeout=10_000)
            text = caption.inner_text()
            assert "Candidate #1" in text and "NASA" in text and "offline" in text, text
            size = page.locator("#geoapp-satellite img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size == [512, 512]

            map_frame = page.frame_locator("#geoapp-locate-map iframe")
            assert _wait_in_map(map_frame, ".geoapp-candidate") == 5
            deadline = time.monotonic() + 30
            while _loaded_tiles(map_frame) == 0 and time.monotonic() < deadline:
                time.sleep(0.25)
            assert _loaded_tiles(map_frame) > 0, "the map shows no offline imagery tile"
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts_dir / "locate_satellite_offline.png"), full_page=True)
        finally:
            browser.close()
    assert any("geoapp-tiles/offline/" in url for url in requests)
    outside = _external(requests)
    assert outside == [], f"offline mode contacted other hosts: {outside}"
