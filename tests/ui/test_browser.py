"""End to end in headless Chromium: upload photos, see the map, markers, heatmap, Grad-CAM, satellite view.

Runs against the offline-map app of ``running_app`` with the ``browser`` fixture (tests/ui/conftest.py),
which records every request the page makes: none may leave 127.0.0.1. Screenshots go to
tests/ui/artifacts/ (or $GEOAPP_TEST_ARTIFACTS).
"""

from __future__ import annotations

import re

from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO, wait_in_map


def locate_with_model(browser, url: str, photo: str, model_label: str):
    """Open the app, drop one photo, choose a model by its label, press Locate; the map's frame."""
    page = browser.page
    browser.open(url)
    browser.upload("#geoapp-photos", [photo])
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
    assert wait_in_map(map_frame, tiles, timeout_s=120) > 0, "the map shows no offline imagery tile"


def test_locate_in_the_browser_offline(running_app, artifacts_dir, browser):
    page = browser.page
    photos = [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)), str(shared_path(*GPS_PHOTO))]
    browser.open(running_app.url)
    browser.upload("#geoapp-photos", photos)
    page.get_by_role("button", name="Locate", exact=True).click()

    map_frame = page.frame_locator("#geoapp-locate-map iframe")
    markers = wait_in_map(map_frame, ".geoapp-candidate")
    assert markers == 5, f"expected 5 numbered candidate markers, got {markers}\n{running_app.log()[-3000:]}"
    assert wait_in_map(map_frame, "canvas.leaflet-heatmap-layer") == 1
    assert wait_in_map(map_frame, ".geoapp-banner") == 1  # random weights flagged on the map
    assert map_frame.locator(".leaflet-control-layers").count() == 1
    assert map_frame.locator("path.leaflet-interactive, .leaflet-pane path").count() > 50  # basemap drawn
    page.wait_for_selector("#geoapp-gradcam img", timeout=90_000)
    page.wait_for_selector("#geoapp-candidates table", timeout=180_000)
    assert page.locator(".geoapp-random").count() >= 2  # page banner + result banner
    _check_satellite_view(page, map_frame)
    page.wait_for_timeout(1500)  # let the map and images settle for the screenshot (no assertion follows)
    page.screenshot(path=str(artifacts_dir / "locate_offline.png"), full_page=True)

    # Switch to the second photo (EXIF GPS): its position appears as a reference marker.
    page.locator("#geoapp-result-selector input").click()
    page.get_by_role("option", name=re.compile("DSCN0010")).click()
    map_frame = page.frame_locator("#geoapp-locate-map iframe")
    assert wait_in_map(map_frame, ".geoapp-reference") == 1
    assert page.locator("text=43.467448").count() >= 1  # EXIF panel
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "locate_offline_exif_gps.png"), full_page=True)

    assert not [m for m in browser.console if "Content Security Policy" in m], browser.console
    assert browser.requests, "no request was recorded"
    assert browser.external() == [], f"offline mode contacted other hosts: {browser.external()}"
    assert any("geoapp-tiles/offline/" in url for url in browser.requests)  # map imagery came from the app


def test_translocator_segmentation_and_scene_in_the_browser(running_app, artifacts_dir, browser):
    """Choose TransLocator (random weights): candidates on the map, segmentation view, scene, Grad-CAM."""
    page = browser.page
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    map_frame = locate_with_model(browser, running_app.url, photo, "TransLocator")
    markers = wait_in_map(map_frame, ".geoapp-candidate")
    assert markers == 5, f"expected 5 candidate markers, got {markers}\n{running_app.log()[-3000:]}"
    page.wait_for_selector("#geoapp-evidence img", timeout=180_000)  # the segmentation map (evidence item)
    evidence = page.locator("#geoapp-evidence")
    assert "Scene" in evidence.inner_text() and "Segmentation" in evidence.inner_text()
    assert "RANDOM SEGMENTER WEIGHTS" in evidence.inner_text()
    page.wait_for_selector("#geoapp-gradcam img", timeout=120_000)
    page.wait_for_selector("#geoapp-gradcam-branches img", timeout=120_000)  # the segmentation branch's map
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts_dir / "locate_translocator.png"), full_page=True)


def test_cases_tab_in_the_browser_offline(running_app, artifacts_dir, browser):
    """Create a case, add a GPS photo, claim, analyse: the case map shows claim, EXIF and candidates."""
    page = browser.page
    browser.new_case(running_app.url, "Browser case")
    browser.upload("#geoapp-case-evidence", [str(shared_path(*GPS_PHOTO))])
    page.get_by_role("button", name="Add evidence").click()
    page.wait_for_selector("text=43.46745, 11.88513 >> visible=true", timeout=120_000)  # EXIF GPS in the evidence table
    page.get_by_label("Claimed place").fill("circle:43.47,11.88,30")
    page.get_by_role("button", name="Record claim").click()
    page.wait_for_selector("#geoapp-case-figures >> text=EXIF GPS → claim", timeout=120_000)
    # SatWorld (aerial imagery only) on a street photo: its caveat must follow the figures and the map.
    page.locator("#geoapp-case-model input").click()
    page.get_by_role("option", name="SatWorld (satellite/aerial imagery only)", exact=True).click()
    page.locator("#geoapp-case-analyse").click()
    map_frame = page.frame_locator("#geoapp-case-map iframe")
    markers = wait_in_map(map_frame, ".geoapp-candidate")
    assert markers == 5, f"expected 5 candidate markers on the case map, got {markers}\n{running_app.log()[-3000:]}"
    assert wait_in_map(map_frame, ".geoapp-reference") == 2  # EXIF GPS + claimed point
    assert wait_in_map(map_frame, ".geoapp-banner") == 1  # random weights flagged on the map
    assert wait_in_map(map_frame, ".geoapp-caveat") == 1  # SatWorld's caveat on the map
    page.wait_for_selector("#geoapp-case-figures >> text=Rank of the claim", timeout=120_000)
    figures = page.locator("#geoapp-case-figures").inner_text()
    assert "Model caveat (satworld)" in figures and "not made for ground-level photos" in figures
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts_dir / "cases_offline.png"), full_page=True)
    assert browser.errors == [], f"console errors on the Cases tab: {browser.errors}"
    assert browser.external() == [], f"offline mode contacted other hosts: {browser.external()}"


def test_maptiles_search_path_and_tile_thumbnails_in_the_browser(running_app, artifacts_dir, browser):
    """The map-tile family in Locate: candidates, the search path drawn on the map, thumbnails of the best tiles."""
    page = browser.page
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    map_frame = locate_with_model(browser, running_app.url, photo, "Map tiles (hierarchical beam search)")
    markers = wait_in_map(map_frame, ".geoapp-candidate", timeout_s=300)
    assert markers == 5, f"expected 5 candidate markers, got {markers}\n{running_app.log()[-3000:]}"
    assert wait_in_map(map_frame, "text=Map-tile search path") >= 1  # the search path's map layer
    page.wait_for_selector("#geoapp-evidence img", timeout=180_000)  # thumbnails of the best final tiles
    assert page.locator("#geoapp-evidence img").count() >= 2
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts_dir / "locate_maptiles.png"), full_page=True)
    assert browser.external() == [], f"offline mode contacted other hosts: {browser.external()}"
