"""End to end in headless Chromium: upload photos, see the map, markers, heatmap, Grad-CAM, satellite view.

Runs against the offline-map app of ``running_app`` and records every request the page makes:
none may leave 127.0.0.1. Screenshots go to tests/ui/artifacts/ (or $GEOAPP_TEST_ARTIFACTS).
Skips cleanly where Chromium or Playwright is missing (CI installs both: see .ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO

CHROMIUM = os.environ.get("GEOAPP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--metrics-recording-only"]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _playwright():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found ({CHROMIUM}); install it (Debian: apt-get install chromium) to run this test")
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright (the driver ships in the wheel)")


def _external(urls: list[str]) -> list[str]:
    """Requests that leave this machine (data:, blob: and about: URLs stay in the page)."""
    outside = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
            continue
        if parts.hostname not in LOOPBACK_HOSTS:
            outside.append(url)
    return outside


def _wait_in_map(frame, selector: str, timeout_s: float = 90.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = frame.locator(selector).count()
        if count:
            return count
        time.sleep(0.25)
    return 0


def _locate_with_model(page, url: str, photo: str, model_label: str):
    """Open the app, drop one photo, choose a model by its label, press Locate; the map's frame."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#geoapp-photos input[type=file]", state="attached", timeout=60_000)
    page.locator("#geoapp-photos input[type=file]").set_input_files([photo])
    page.wait_for_selector(f"text={Path(photo).name[:12]}", timeout=30_000)
    page.locator("#geoapp-model input").click()
    page.get_by_role("option", name=model_label, exact=True).click()
    page.get_by_role("button", name="Locate", exact=True).click()
    return page.frame_locator("#geoapp-locate-map iframe")


def _check_satellite_view(page, map_frame) -> None:
    """Satellite view of candidate #1 from the offline pyramid (built on first need), and the map's
    offline imagery tiles, served by the app itself."""
    page.wait_for_selector("#geoapp-satellite img", timeout=90_000)
    caption = page.locator("#geoapp-satellite-caption").inner_text()
    assert "Candidate #1" in caption and "NASA" in caption and "local file" in caption, caption
    assert page.locator("#geoapp-satellite img").evaluate("img => img.naturalWidth") == 512
    tiles = "img.leaflet-tile-loaded[src*='geoapp-tiles/offline']"
    assert _wait_in_map(map_frame, tiles, timeout_s=30) > 0, "the map shows no offline imagery tile"


def test_locate_in_the_browser_offline(running_app, artifacts_dir):
    sync_api = _playwright()
    photos = [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)), str(shared_path(*GPS_PHOTO))]
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        # launch() always starts from a fresh temporary profile (Playwright refuses --user-data-dir here).
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            console: list[str] = []  # the app's Content-Security-Policy must not block anything it needs
            page.on("console", lambda message: console.append(message.text))
            page.goto(running_app.url, wait_until="domcontentloaded")
            page.wait_for_selector("#geoapp-photos input[type=file]", state="attached", timeout=60_000)
            page.locator("#geoapp-photos input[type=file]").set_input_files(photos)
            page.wait_for_selector("text=DSCN0010", timeout=30_000)  # both uploads listed
            page.get_by_role("button", name="Locate", exact=True).click()

            map_frame = page.frame_locator("#geoapp-locate-map iframe")
            markers = _wait_in_map(map_frame, ".geoapp-candidate")
            assert markers == 5, f"expected 5 numbered candidate markers, got {markers}\n{running_app.log()[-3000:]}"
            assert _wait_in_map(map_frame, "canvas.leaflet-heatmap-layer") == 1
            assert _wait_in_map(map_frame, ".geoapp-banner") == 1  # random weights flagged on the map
            assert map_frame.locator(".leaflet-control-layers").count() == 1
            assert map_frame.locator("path.leaflet-interactive, .leaflet-pane path").count() > 50  # basemap drawn
            page.wait_for_selector("#geoapp-gradcam img", timeout=90_000)
            page.wait_for_selector("#geoapp-candidates table", timeout=10_000)
            assert page.locator(".geoapp-random").count() >= 2  # page banner + result banner
            _check_satellite_view(page, map_frame)
            page.wait_for_timeout(1500)  # let tiles-free map and images settle for the screenshot
            page.screenshot(path=str(artifacts_dir / "locate_offline.png"), full_page=True)

            # Switch to the second photo (EXIF GPS): its position appears as a reference marker.
            page.locator("#geoapp-result-selector input").click()
            page.get_by_role("option", name=re.compile("DSCN0010")).click()
            map_frame = page.frame_locator("#geoapp-locate-map iframe")
            assert _wait_in_map(map_frame, ".geoapp-reference") == 1
            assert page.locator("text=43.467448").count() >= 1  # EXIF panel
            page.wait_for_timeout(1500)
            page.screenshot(path=str(artifacts_dir / "locate_offline_exif_gps.png"), full_page=True)
        finally:
            browser.close()
    assert not [m for m in console if "Content Security Policy" in m], console
    assert requests, "no request was recorded"
    outside = _external(requests)
    assert outside == [], f"offline mode contacted other hosts: {outside}"
    assert any("geoapp-tiles/offline/" in url for url in requests)  # map imagery came from the app


def test_translocator_segmentation_and_scene_in_the_browser(running_app, artifacts_dir):
    """Choose TransLocator (random weights): candidates on the map, segmentation view, scene, Grad-CAM."""
    sync_api = _playwright()
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            map_frame = _locate_with_model(page, running_app.url, photo, "TransLocator")
            markers = _wait_in_map(map_frame, ".geoapp-candidate", timeout_s=240)
            assert markers == 5, f"expected 5 candidate markers, got {markers}\n{running_app.log()[-3000:]}"
            page.wait_for_selector("#geoapp-evidence img", timeout=60_000)  # the segmentation map (evidence item)
            evidence = page.locator("#geoapp-evidence")
            assert "Scene" in evidence.inner_text() and "Segmentation" in evidence.inner_text()
            assert "RANDOM SEGMENTER WEIGHTS" in evidence.inner_text()
            page.wait_for_selector("#geoapp-gradcam img", timeout=120_000)
            page.wait_for_selector("#geoapp-gradcam-branches img", timeout=120_000)  # the segmentation branch's map
            page.wait_for_timeout(1500)
            page.screenshot(path=str(artifacts_dir / "locate_translocator.png"), full_page=True)
        finally:
            browser.close()


def test_cases_tab_in_the_browser_offline(running_app, artifacts_dir):
    """Create a case, add a GPS photo, claim, analyse: the case map shows claim, EXIF and candidates."""
    sync_api = _playwright()
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(running_app.url, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Cases").click()
            page.get_by_label("Title").fill("Browser case")
            page.locator("#geoapp-case-create").click()
            page.wait_for_selector("#geoapp-case-header h2:has-text('Browser case')", timeout=30_000)
            page.locator("#geoapp-case-evidence input[type=file]").set_input_files([str(shared_path(*GPS_PHOTO))])
            page.wait_for_selector("#geoapp-case-evidence >> text=DSCN0010", timeout=30_000)
            page.get_by_role("button", name="Add evidence").click()
            page.wait_for_selector("text=43.46745, 11.88513 >> visible=true", timeout=30_000)  # EXIF GPS in the evidence table
            page.get_by_label("Claimed place").fill("circle:43.47,11.88,30")
            page.get_by_role("button", name="Record claim").click()
            page.wait_for_selector("#geoapp-case-figures >> text=EXIF GPS → claim", timeout=30_000)
            # SatWorld (aerial imagery only) on a street photo: its caveat must follow the figures and the map.
            page.locator("#geoapp-case-model input").click()
            page.get_by_role("option", name="SatWorld (satellite/aerial imagery only)", exact=True).click()
            page.locator("#geoapp-case-analyse").click()
            map_frame = page.frame_locator("#geoapp-case-map iframe")
            markers = _wait_in_map(map_frame, ".geoapp-candidate")
            assert markers == 5, f"expected 5 candidate markers on the case map, got {markers}\n{running_app.log()[-3000:]}"
            assert _wait_in_map(map_frame, ".geoapp-reference") == 2  # EXIF GPS + claimed point
            assert _wait_in_map(map_frame, ".geoapp-banner") == 1  # random weights flagged on the map
            assert _wait_in_map(map_frame, ".geoapp-caveat") == 1  # SatWorld's caveat on the map
            page.wait_for_selector("#geoapp-case-figures >> text=Rank of the claim", timeout=30_000)
            figures = page.locator("#geoapp-case-figures").inner_text()
            assert "Model caveat (satworld)" in figures and "not made for ground-level photos" in figures
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts_dir / "cases_offline.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [], f"console errors on the Cases tab: {errors}"
    assert _external(requests) == [], f"offline mode contacted other hosts: {_external(requests)}"


def test_maptiles_search_path_and_tile_thumbnails_in_the_browser(running_app, artifacts_dir):
    """The map-tile family in Locate: candidates, the search path drawn on the map, thumbnails of the best tiles."""
    sync_api = _playwright()
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            map_frame = _locate_with_model(page, running_app.url, photo, "Map tiles (hierarchical beam search)")
            markers = _wait_in_map(map_frame, ".geoapp-candidate", timeout_s=300)
            assert markers == 5, f"expected 5 candidate markers, got {markers}\n{running_app.log()[-3000:]}"
            assert _wait_in_map(map_frame, "text=Map-tile search path") >= 1  # the search path's map layer
            page.wait_for_selector("#geoapp-evidence img", timeout=60_000)  # thumbnails of the best final tiles
            assert page.locator("#geoapp-evidence img").count() >= 2
            page.wait_for_timeout(1000)
            page.screenshot(path=str(artifacts_dir / "locate_maptiles.png"), full_page=True)
        finally:
            browser.close()
    assert _external(requests) == [], f"offline mode contacted other hosts: {_external(requests)}"
