"""A first run from an empty cache, in headless Chromium: the Locate button goes busy at once, the page
shows each step (loading, encoding the gallery with a count) on visible widgets, and says the next runs
are fast. Offline, like the other browser tests; started with --no-preload (the on-demand path)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO, start_app, stop_app, wait_in_map


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("first-run")
    rng = np.random.default_rng(5)
    gallery = folder / "gallery.csv"  # big enough for several encoding steps, small enough for CI
    points = zip(rng.uniform(-55, 70, 40_000), rng.uniform(-180, 180, 40_000))
    gallery.write_text("LAT,LON\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in points))
    # --no-preload: the on-demand path (the background warm-up, the default, is tested in test_warmup.py).
    app = start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map", "--no-preload",
                     "--gallery", str(gallery)], folder / "app.log",
                    env_extra={"GEOAPP_CACHE_DIR": str(folder / "empty-cache")})
    yield app
    stop_app(app)


@pytest.mark.timeout(600)
def test_first_locate_shows_progress_and_busy_state(fresh_app, artifacts_dir, browser):
    page = browser.page
    seen: set[str] = set()
    page.set_viewport_size({"width": 1440, "height": 1000})
    browser.open(fresh_app.url)
    browser.upload("#geoapp-photos", [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))])
    button = page.locator("#geoapp-locate-button")
    button.click()
    map_frame = page.frame_locator("#geoapp-locate-map iframe")
    deadline = time.monotonic() + 300
    busy = False
    # Progress messages are transient: sample them until the result is drawn (what is asserted is that
    # each step was shown at some point, never when or for how long).
    while time.monotonic() < deadline:
        busy = busy or button.is_disabled()
        text = page.locator("body").inner_text()
        for step in ("Loading", "Encoding gallery locations", "Locating photo"):
            if step in text:
                seen.add(step)
        if "Encoding gallery locations" in text and "of 40,000" in text:
            seen.add("count")
        if "the next photos take seconds" in text:  # a toast shown for 8 s: sampled like the steps
            seen.add("toast")
        if map_frame.locator(".geoapp-candidate").count():
            break
        time.sleep(0.1)
    assert wait_in_map(map_frame, ".geoapp-candidate") == 5, fresh_app.log()[-3000:]
    if "toast" not in seen:  # drawn just after the result: wait for it before anything slow (the screenshot)
        page.wait_for_selector("text=the next photos take seconds", timeout=120_000)
    page.screenshot(path=str(artifacts_dir / "first_run_done.png"), full_page=True)
    assert busy, "the Locate button stayed clickable during the first run"
    page.wait_for_function("!document.querySelector('#geoapp-locate-button').disabled", timeout=120_000)
    assert "Encoding gallery locations" in seen and "count" in seen, f"progress steps seen: {sorted(seen)}"
    assert browser.external() == [], f"offline mode contacted other hosts: {browser.external()}"
