"""UI test fixtures: synthetic predictions, a service on the tiny model, a running app, a browser.

The app fixture starts ``python app.py`` in a subprocess on 127.0.0.1 with a free port, the tiny
random backbone and ``--offline-map``; it inherits GEOAPP_CACHE_DIR from tests/conftest.py, so the
gallery embeddings cached by ``tiny_locator`` are reused (the fixture depends on it for that).

The ``browser`` fixture is the one place that launches headless Chromium (Playwright): every browser
test gets a fresh profile, a page, and the lists of requests it made and errors it logged. It skips
cleanly where Chromium or Playwright is missing (CI installs both: see .ci/run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from tests.conftest import REPO

ARTIFACTS = Path(os.environ.get("GEOAPP_TEST_ARTIFACTS") or REPO / "tests" / "ui" / "artifacts")
IM2GPS_PHOTO = "1008845063_ace4ef829f_1204_97522422@N00.jpg"
GPS_PHOTO = ("exif-samples", "jpg", "gps", "DSCN0010.jpg")  # EXIF GPS 43.467448, 11.885127


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    startup_s: float
    log_path: Path
    variants_dir: Path | None = None  # the app's $GEOAPP_VARIANTS_DIR, where set

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_app(args: list[str], log_path: Path, timeout_s: float = 400.0, env_extra: dict | None = None) -> RunningApp:
    """Start app.py and wait until *it* answers HTTP 200 (or fail with its log).

    Ready means our process printed that it listens on our port *and* the port answers: a 200 alone could
    come from another test's app that took the same free port while ours was still building its UI (seen
    in CI). A start that lost its port that way is retried on a new port."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEOAPP_DATABASE_URL", "GEOAPP_CASE_STORE")}
    env.update(env_extra or {})
    # Cases created by browser tests go to a throw-away store, never the user's (~/.local/share/geoapp).
    env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", GEOAPP_DATA_DIR=str(log_path.parent / "data"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for attempt in range(3):
        port = free_port()
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), *args], cwd=REPO,
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        listening = f"geoapp is running on http://127.0.0.1:{port}"
        while time.perf_counter() - start < timeout_s:
            if process.poll() is not None:
                text = log_path.read_text()
                if attempt < 2 and ("already in use" in text or "cannot start the server" in text):
                    break  # another program took the port first: a new port
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{text}")
            if listening in log_path.read_text():
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status == 200:
                            return RunningApp(url, process, time.perf_counter() - start, log_path)
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            time.sleep(0.2)
        else:
            process.terminate()
            raise RuntimeError(f"app.py did not answer within {timeout_s} s:\n{log_path.read_text()}")
    raise AssertionError("unreachable: the last attempt returns or raises")


def stop_app(app: RunningApp) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait(timeout=10)


@pytest.fixture(scope="session")
def running_app(tiny_locator, tmp_path_factory) -> RunningApp:
    """One offline-map app with the tiny random backbone, shared by the API and browser tests."""
    tiny_locator.candidate_set()  # the gallery embeddings are cached before the app needs them
    folder = tmp_path_factory.mktemp("app")
    # Its own (empty) folder of trained models: tests add and remove models there while the app runs.
    app = start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map"], folder / "app.log",
                    env_extra={"GEOAPP_VARIANTS_DIR": str(folder / "variants")})
    app.variants_dir = folder / "variants"
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def ctx(tiny_locator):
    """The UI context on the tiny random GeoCLIP (one service per test module; tests adopt more models into it)."""
    from geoapp.ui.common import UiContext
    from geoapp.ui.config import AppConfig
    from geoapp.ui.service import GeolocationService, ModelSettings

    config = AppConfig(backbone="tiny-test", backbone_weights="random", offline_map=True)
    service = GeolocationService(ModelSettings(backbone="tiny-test", backbone_weights="random", device="cpu"))
    service.adopt("geoclip", tiny_locator)
    return UiContext(config=config, service=service, asset_prefix="gradio_api/file=/srv/map-assets/")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def synthetic_prediction(random_weights: bool = True, region=None, seed: int = 0):
    """A Prediction from made-up probabilities over a few hundred points (no model needed)."""
    from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING, build_prediction

    rng = np.random.default_rng(seed)
    lat = np.concatenate([rng.normal(48.85, 0.5, 150), rng.normal(40.4, 0.5, 100), rng.uniform(-50, 60, 250)])
    lon = np.concatenate([rng.normal(2.35, 0.5, 150), rng.normal(-3.7, 0.5, 100), rng.uniform(-170, 170, 250)])
    weights = np.concatenate([np.full(150, 5.0), np.full(100, 2.0), np.full(250, 0.1)]) * rng.uniform(0.5, 1.5, 500)
    prediction = build_prediction("photo.jpg", lat, lon, weights / weights.sum(), top_k=5, merge_km=25.0)
    prediction.model = {"random_weights": random_weights}
    prediction.region = region
    if random_weights:
        prediction.warnings.append(RANDOM_WEIGHTS_WARNING)
    return prediction


# ---------------------------------------------------------------------------------------------- the browser
CHROMIUM = os.environ.get("GEOAPP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--metrics-recording-only"]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
VIEWPORT = {"width": 1400, "height": 1000}
PAGE_READY_S = 240.0  # the page's first load (Gradio's bundle) on a busy CI machine


def external_requests(urls: list[str]) -> list[str]:
    """Requests that leave this machine (data:, blob: and about: URLs stay in the page)."""
    outside = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
            continue
        if parts.hostname not in LOOPBACK_HOSTS:
            outside.append(url)
    return outside


@dataclass
class BrowserSession:
    """One headless Chromium page with what it did: every request URL, console messages, page errors."""

    page: Any  # playwright.sync_api.Page
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # every console message
    errors: list[str] = field(default_factory=list)  # console errors and uncaught page errors

    def external(self) -> list[str]:
        return external_requests(self.requests)

    def open(self, url: str) -> None:
        """Load the app and wait until the Locate tab's upload field exists (the page is usable)."""
        self.page.goto(url, wait_until="domcontentloaded")
        self.page.wait_for_selector("#geoapp-photos input[type=file]", state="attached", timeout=PAGE_READY_S * 1000)

    def new_case(self, url: str, title: str) -> None:
        """Open the app's Cases tab and create a case (waits until it is open)."""
        self.open(url)
        self.page.get_by_role("tab", name="Cases").click()
        self.page.get_by_label("Title").fill(title)
        self.page.locator("#geoapp-case-create").click()
        self.page.wait_for_selector(f"#geoapp-case-header h2:has-text('{title}')", timeout=120_000)

    def upload(self, selector: str, paths: list[str]) -> None:
        """Give files to a gr.File and wait until every one is uploaded (listed with its size)."""
        self.page.locator(f"{selector} input[type=file]").set_input_files(paths)
        for path in paths:
            self.page.wait_for_selector(f"{selector} >> text={Path(path).stem[:8]}", timeout=120_000)
        self.page.wait_for_function(
            "([selector, count]) => { const root = document.querySelector(selector);"
            " return root && !root.innerText.includes('Uploading')"
            " && (root.innerText.match(/\\d[.,\\d]*\\s?[KMG]?B\\b/g) || []).length >= count; }",
            arg=[selector, len(paths)], timeout=180_000)


def wait_in_map(frame, selector: str, timeout_s: float = 400.0) -> int:
    """How many ``selector`` elements a map iframe shows once the first one appeared (0 after the timeout)."""
    try:
        frame.locator(selector).first.wait_for(state="attached", timeout=timeout_s * 1000)
    except Exception as error:  # noqa: BLE001 - playwright's TimeoutError: the caller asserts on the count
        if type(error).__name__ != "TimeoutError":
            raise
        return 0
    return frame.locator(selector).count()


@pytest.fixture
def browser() -> Iterator[BrowserSession]:
    """A fresh headless Chromium (temporary profile) and one page; closed after the test."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found ({CHROMIUM}); install it (Debian: apt-get install chromium) to run this test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the driver ships in the wheel)")
    with sync_api.sync_playwright() as playwright:
        # launch() always starts from a fresh temporary profile (Playwright refuses --user-data-dir here).
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = chromium.new_context(viewport=VIEWPORT)
            # Clicks and waits without their own timeout: generous, for a loaded CI machine (a wait ends as soon
            # as the element is there; nothing asserts on time).
            context.set_default_timeout(PAGE_READY_S * 1000)
            session = BrowserSession(page=None)
            context.on("request", lambda request: session.requests.append(request.url))
            session.page = context.new_page()
            session.page.on("console", lambda message: (session.console.append(message.text),
                                                        session.errors.append(message.text)
                                                        if message.type == "error" else None))
            session.page.on("pageerror", lambda error: session.errors.append(str(error)))
            yield session
        finally:
            chromium.close()
