"""What a first-time analyst tripped on (issue 26), checked in headless Chromium where only a browser shows it:
the Locate button after an error, a claimed place typed as a name, a model built while the page is open,
and the Cases tables' layout. Every wait is for a condition (a selector, a state of the page), never a pause.
"""

from __future__ import annotations

import json
import shutil
import time

from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO, wait_in_map

BUTTON_READY = ("() => { const b = document.querySelector('#geoapp-locate-button');"
                " return b && !b.disabled && b.innerText.trim() === 'Locate'; }")
NO_ERROR_SHOWN = ("() => { const e = document.querySelector('#geoapp-locate-error');"
                  " return !e || !e.innerText.trim(); }")


def test_a_failed_locate_gives_the_button_back_and_keeps_the_error_beside_the_form(running_app, browser,
                                                                                   artifacts_dir):
    page = browser.page
    browser.open(running_app.url)
    browser.upload("#geoapp-photos", [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))])
    claimed = page.get_by_label("Claimed location to check (optional)")
    claimed.fill("Nowhere-land-xyz")
    page.locator("#geoapp-locate-button").click()
    page.wait_for_selector("#geoapp-locate-error >> text=Could not locate", timeout=120_000)
    page.wait_for_function(BUTTON_READY, timeout=120_000)  # was stuck at "Locating …" for good
    assert "Nowhere-land-xyz" in page.locator("#geoapp-locate-error").inner_text()
    page.screenshot(path=str(artifacts_dir / "locate_error_beside_form.png"))

    # The same form, the claim typed as a place name (as a Case takes it): the run goes through.
    claimed.fill("Odesa")
    page.locator("#geoapp-locate-button").click()
    map_frame = page.frame_locator("#geoapp-locate-map iframe")
    assert wait_in_map(map_frame, ".geoapp-reference", timeout_s=240) == 1, running_app.log()[-3000:]
    page.wait_for_function(NO_ERROR_SHOWN, timeout=120_000)
    page.wait_for_function(BUTTON_READY, timeout=120_000)
    page.wait_for_selector("#geoapp-candidates >> text=Odesa, Ukraine >> visible=true", timeout=120_000)


def dropdown_options(page, elem_id: str) -> list[str]:
    """The labels a dropdown offers now (opened, read in one go, closed). The list opens when its input gains
    focus, so the input is left unfocused afterwards (the next read opens it again)."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option").first.wait_for(timeout=120_000)
    labels = [text.strip().lstrip("✓").strip() for text in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    return labels


def wait_for_option(page, elem_id: str, label: str, present: bool, timeout_s: float = 90.0) -> list[str]:
    """Read the dropdown until ``label`` is (or is no longer) offered; the last list read."""
    deadline = time.monotonic() + timeout_s
    while True:
        labels = dropdown_options(page, elem_id)
        if (label in labels) == present or time.monotonic() > deadline:
            return labels
        page.wait_for_timeout(500)  # the page re-reads the model folder every few seconds


def test_a_model_built_while_the_page_is_open_becomes_a_choice_in_every_tab(running_app, browser):
    page = browser.page
    browser.open(running_app.url)
    assert "Regional model" in dropdown_options(page, "geoapp-model")  # nothing built yet (random test run)
    folder = running_app.variants_dir / "walk-test"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "format": "geoapp-variant/1", "family": "regional", "tag": "walk-test", "label": "Regional — walk test",
        "checkpoint": "model.pt"}))
    try:
        labels = wait_for_option(page, "geoapp-model", "Regional — walk test", present=True)
        assert "Regional — walk test" in labels, labels
        assert "Regional model" not in labels  # no generic entry once a model is built
        page.get_by_role("tab", name="Cases").click()
        assert "Regional — walk test" in dropdown_options(page, "geoapp-case-model")
    finally:
        shutil.rmtree(folder)
    page.get_by_role("tab", name="Locate").click()
    labels = wait_for_option(page, "geoapp-model", "Regional — walk test", present=False)
    assert "Regional — walk test" not in labels and "Regional model" in labels


# Every word of a header, id, hash or number stays on one line and inside its cell; no cell takes more than
# two lines (a long file name may wrap once). Gradio's data frame: th headers, div[role=gridcell] cells.
LAYOUT_PROBLEMS = """
(selectors) => {
  const problems = [];
  const tokens = (element) => {
    const found = [], walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.textContent.matchAll(/\\S+/g)) found.push([node, match.index, match[0]]);
    }
    return found;
  };
  const lineRects = (range) => [...range.getClientRects()].filter((rect) => rect.width > 0);
  for (const selector of selectors) {
    const root = document.querySelector(selector);
    if (!root) { problems.push(selector + ': not on the page'); continue; }
    const cells = [...root.querySelectorAll('th, [role=gridcell]')];
    if (!cells.length) problems.push(selector + ': no cells');
    for (const cell of cells) {
      const box = cell.getBoundingClientRect();
      const lines = new Set();
      for (const [node, start, text] of tokens(cell)) {
        if (text === '\u22ee') continue;  // the column menu button
        const range = document.createRange();
        range.setStart(node, start);
        range.setEnd(node, start + text.length);
        const rects = lineRects(range);
        rects.forEach((rect) => lines.add(Math.round(rect.top)));
        if (text.length <= 24 && rects.length > 1) problems.push(`${selector}: '${text}' broken over ${rects.length} lines`);
        if (rects.some((rect) => rect.right > box.right + 1 || rect.left < box.left - 1)) {
          problems.push(`${selector}: '${text}' runs out of its cell`);
        }
      }
      if (lines.size > 2) problems.push(`${selector}: '${cell.innerText.trim()}' takes ${lines.size} lines`);
    }
  }
  return problems;
}
"""


def test_cases_tables_keep_headers_ids_and_hashes_whole(running_app, browser, artifacts_dir):
    page = browser.page
    page.set_viewport_size({"width": 1280, "height": 900})  # a common laptop screen
    browser.open(running_app.url)
    page.get_by_role("tab", name="Cases").click()
    page.get_by_label("Title").fill("Layout case")
    page.locator("#geoapp-case-create").click()
    page.wait_for_selector("#geoapp-case-header h2:has-text('Layout case')", timeout=120_000)
    # A long camera-roll name and a short one.
    browser.upload("#geoapp-case-evidence", [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)), str(shared_path(*GPS_PHOTO))])
    page.get_by_role("button", name="Add evidence").click()
    page.wait_for_selector("#geoapp-case-evidence-table >> text=43.46745, 11.88513 >> visible=true", timeout=180_000)
    page.get_by_label("Claimed place").fill("Odesa")
    page.get_by_role("button", name="Record claim").click()
    page.wait_for_selector("#geoapp-case-claims >> text=Odesa, Ukraine >> visible=true", timeout=180_000)
    page.get_by_text("All cases", exact=True).click()
    page.wait_for_selector("#geoapp-case-list >> text=Layout case >> visible=true", timeout=120_000)
    page.screenshot(path=str(artifacts_dir / "cases_tables.png"), full_page=True)
    problems = page.evaluate(LAYOUT_PROBLEMS, ["#geoapp-case-evidence-table", "#geoapp-case-claims",
                                               "#geoapp-case-list"])
    assert problems == [], problems
    store = page.locator("#geoapp-case-store")
    assert "Cases are kept in" in store.inner_text()
    assert store.evaluate("element => element.scrollWidth <= element.clientWidth + 1"), "the store path overflows"
