"""Shared fixtures. Tests are offline: Hugging Face lookups are disabled, caches go to a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports huggingface_hub: any hub lookup fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip (only a user's fresh clone lacks ../shared; CI has it)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data/{'/'.join(parts)} is not present (tests read shared data in place)")
    return path


def normal_scheduling() -> None:
    """Back to the normal scheduling policy. A test worker was seen switched to SCHED_FIFO 99 by something
    outside the suite (the sandbox's VM agent, mid-run); the browsers and app servers it then started inherited
    it, and a Playwright driver and Chromium spinning at real-time priority starved the 2-core machine until the
    run stalled."""
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass  # not allowed here: nothing to undo


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before any fixture of the test is set up (module- and session-scoped ones such as the browser included)."""
    normal_scheduling()


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep test caches (gallery embeddings, country index) out of the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("geoapp-cache")
    # GEOAPP_SERVE_DIR: `geoapp predict` in tests never finds a local worker (`geoapp serve`) the user runs
    isolated = {"GEOAPP_CACHE_DIR": str(cache), "GEOAPP_SERVE_DIR": str(cache / "serve")}
    previous = {name: os.environ.get(name) for name in isolated}
    os.environ.update(isolated)
    yield cache
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every outbound connection this test's process tries is recorded and refused, so "fails at once, without
    the network" is checked by what happened rather than by a stopwatch. The list of attempts is the value."""
    import socket

    attempts: list = []

    def refuse(_sock, address, *args):
        attempts.append(address)
        raise OSError(f"a test that must stay local tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture(scope="session")
def tiny_locator(_isolated_cache):
    """GeoCLIP with the real pretrained heads and 100K gallery, and a tiny random backbone."""
    from geoapp import Geolocator

    return Geolocator.load(backbone="tiny-test", backbone_weights="random", device="cpu")


@pytest.fixture(scope="session")
def offline_pyramid(_isolated_cache) -> Path:
    """A small Blue Marble pyramid (zoom 0-3, 85 tiles, a few seconds) where ``offline`` looks for it."""
    from geoapp.tiles.pyramid import build_pyramid
    from geoapp.tiles.registry import default_pyramid_path

    path = default_pyramid_path()
    if not path.is_file():
        build_pyramid(path, max_zoom=3)
    return path
