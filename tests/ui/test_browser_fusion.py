"""Evidence fusion in headless Chromium: Locate with a sun clue and a time-zone clue shows each clue as a
layer, the fused map and the 90 % area with its km²; a case keeps its clues and its report states the
calibrated areas (the ``browser`` fixture of tests/ui/conftest.py)."""

from __future__ import annotations

import html
import json
import re

from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO, wait_in_map

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


CASE_SUN = "sun:time=2008-10-22T10:00:00Z,ratio=1.4,ratio_sd=0.15"  # Tuscany, late morning in October
CASE_TZ = "tz:offset=+02:00,time=2008-10-22T12:00:00"  # Italy before the end of summer time
CASE_DRIVE = "drive:right"


def test_a_case_keeps_its_clues_and_its_report_states_the_calibrated_areas(running_app, artifacts_dir, browser):
    import dataclasses

    from geoapp.fusion.calibration import SHIPPED_DIR, Calibration

    # The app's SatWorld runs on random weights here, so the shipped calibration (tied to the trained
    # weights) does not apply; a family-wide copy of its scores in the app's user folder stands in for one
    # the analyst made with `calibrate` (that command is tested in tests/cli). Removed at the end.
    shipped = Calibration.from_dict(json.loads((SHIPPED_DIR / "satworld-heldout-half.json").read_text()))
    stand_in = dataclasses.replace(shipped, weights_sha256=None, name="browser-test", note="",
                                   data="browser test, the shipped SatWorld scores")
    saved = stand_in.save(running_app.log_path.parent / "data" / "calibrations")
    try:
        _case_with_clues(running_app, artifacts_dir, browser)
    finally:
        saved.unlink()


def _add_case_clue(page, clue: str, source: str) -> None:
    page.locator("#geoapp-case-clue input").fill(clue)
    page.get_by_label("Where it comes from (optional)").fill(source)
    page.locator("#geoapp-case-clue-add").click()
    page.wait_for_selector(f"#geoapp-case-clues >> text={source} >> visible=true", timeout=120_000)


def _case_with_clues(running_app, artifacts_dir, browser):
    page = browser.page
    browser.new_case(running_app.url, "Case with clues")
    browser.upload("#geoapp-case-evidence", [str(shared_path(*GPS_PHOTO))])
    page.get_by_role("button", name="Add evidence").click()
    page.wait_for_selector("text=43.46745, 11.88513 >> visible=true", timeout=120_000)
    page.get_by_label("Claimed place").fill("circle:43.47,11.88,30")
    page.get_by_role("button", name="Record claim").click()
    page.wait_for_selector("#geoapp-case-figures >> text=EXIF GPS → claim", timeout=120_000)
    # Hard clues (the time zone, the driving side) keep a calibration; a soft one (the sun) does not.
    _add_case_clue(page, CASE_TZ, "caption of the post")
    _add_case_clue(page, CASE_DRIVE, "cars in the photo")
    page.locator("#geoapp-case-model input").click()
    page.get_by_role("option", name="SatWorld (satellite/aerial imagery only)", exact=True).click()
    page.locator("#geoapp-case-analyse").click()
    page.wait_for_selector("#geoapp-case-areas >> text=calibrated on", timeout=400_000)
    areas = page.locator("#geoapp-case-areas").inner_text()
    assert "× 2 clue(s)" in areas and "90 %:" in areas and "km²" in areas, areas
    assert "calibrated on 489 images of this kind: browser test" in areas and "The claimed place" in areas, areas

    page.get_by_role("button", name="HTML report").click()
    link = page.locator("#geoapp-case-download a[href]").first
    link.wait_for(timeout=120_000)
    response = page.request.get(link.get_attribute("href"))
    assert response.ok, response.status
    report = html.unescape(response.text())
    section = report[report.index('id="clues"'):]
    assert "Clues and credible areas" in section and "caption of the post" in section and "cars in the photo" in section
    assert CASE_TZ in section and CASE_DRIVE in section
    assert re.search(r"90 %: [\d,]+ km² in \d+ parts? \(calibrated on 489 images", section), section[:3000]
    assert "The claimed place" in section

    _add_case_clue(page, CASE_SUN, "pole shadow on the photo")
    page.wait_for_selector("#geoapp-case-areas >> text=× 3 clue(s)", timeout=120_000)
    areas = page.locator("#geoapp-case-areas").inner_text()
    assert f"not calibrated (soft clue {CASE_SUN} changes the map's shape)" in areas, areas
    clues = page.locator("#geoapp-case-clues").inner_text()
    assert all(text in clues for text in (CASE_TZ, CASE_DRIVE, CASE_SUN)), clues
    page.screenshot(path=str(artifacts_dir / "case_clues.png"), full_page=True)
    assert browser.external() == [], f"offline mode contacted other hosts: {browser.external()}"
