"""A burst of API calls, each from a new session, must not grow the server without bound.

Each session keeps its results server-side (probability surfaces, photos: a few MB); Gradio's
default would keep 10 000 sessions. The app keeps ``--max-sessions`` (default 12).
"""

from __future__ import annotations

import time

import pytest
from gradio_client import Client

from tests.ui.conftest import start_app, stop_app

CALLS = 500
MAX_GROWTH_MB = 100.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.timeout(900)
def test_new_session_calls_keep_memory_bounded(tiny_locator, tmp_path):
    import os

    if not os.path.exists("/proc/self/status"):
        pytest.skip("reads the server's memory from /proc (Linux)")
    tiny_locator.candidate_set()  # gallery embeddings cached before the app needs them
    app = start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map"],
                    tmp_path / "app.log")
    try:
        client = Client(app.url, verbose=False)

        def call() -> None:
            client.reset_session()  # a new session hash, as a new client would have
            client.predict(query_a="a sandy beach with palm trees", top_k=3, api_name="/text_map")

        for _ in range(5):  # the model and lazy imports load first
            call()
        before = _rss_mb(app.process.pid)
        start = time.perf_counter()
        for _ in range(CALLS):
            call()
        growth = _rss_mb(app.process.pid) - before
        print(f"{CALLS} new-session calls in {time.perf_counter() - start:.0f} s: RSS +{growth:.0f} MB")
        assert growth < MAX_GROWTH_MB, f"RSS grew {growth:.0f} MB over {CALLS} new-session calls"
    finally:
        stop_app(app)
