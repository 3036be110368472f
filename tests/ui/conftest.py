"""UI test fixtures: synthetic predictions, a service on the tiny model, a running app.

The app fixture starts ``python app.py`` in a subprocess on 127.0.0.1 with a free port, the tiny
random backbone and ``--offline-map``; it inherits GEOAPP_CACHE_DIR from tests/conftest.py, so the
gallery embeddings cached by ``tiny_locator`` are reused (the fixture depends on it for that).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_app(args: list[str], log_path: Path, timeout_s: float = 400.0, env_extra: dict | None = None) -> RunningApp:
    """Start app.py and wait until it answers HTTP 200 (or fail with its log)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GEOAPP_DATABASE_URL", "GEOAPP_CASE_STORE")}
    env.update(env_extra or {})
    # Cases created by browser tests go to a throw-away store, never the user's (~/.local/share/geoapp).
    env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", GEOAPP_DATA_DIR=str(log_path.parent / "data"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), *args], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - start < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return RunningApp(url, process, time.perf_counter() - start, log_path)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"app.py did not answer within {timeout_s} s:\n{log_path.read_text()}")


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
    app = start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map"],
                    tmp_path_factory.mktemp("app") / "app.log")
    yield app
    stop_app(app)


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
