"""The default model prepared in the background as the app starts, and one progress bar per run.

A gated toy family (its loader waits for the test to open a gate) makes every interleaving explicit: no
sleeps, no timing; timeouts only turn a hang into a failure."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from geoapp.families import registry
from geoapp.ui.forms import LocateForm
from geoapp.ui.service import LOADING_SHARE, GeolocationService, ModelSettings
from geoapp.ui.warmup import Warmup
from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO

HANG_S = 60  # only reached when something is stuck
GATE = threading.Event()
LOADS: list[str] = []


def gated_load(spec, options):
    """Loader of the gated toy: reports that it started, then waits for the test."""
    from tests.families.toy import load

    LOADS.append(spec.key)
    if not GATE.wait(HANG_S):
        raise RuntimeError("the test never opened the gate")
    return load(spec, options)


@pytest.fixture
def toys(monkeypatch, tmp_path):
    from tests.families import toy

    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    gated = replace(toy.SPEC, key="gated", label="Gated toy", loader="tests.ui.test_warmup:gated_load")
    for spec in (toy.SPEC, gated):
        registry.register(spec)
    GATE.clear()
    LOADS.clear()
    yield
    GATE.set()
    for key in ("toy", "gated"):
        registry.unregister(key)


def photos(count: int = 1) -> tuple[str, ...]:
    return (str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)),) * count


class Recorder:
    """A progress callback that remembers every call and signals when a message containing ``wanted`` arrives."""

    def __init__(self, wanted: str = "") -> None:
        self.calls: list[tuple[float, str]] = []
        self.wanted, self.seen = wanted, threading.Event()

    def __call__(self, fraction: float, message: str) -> None:
        self.calls.append((fraction, message))
        if self.wanted and self.wanted in message:
            self.seen.set()


def test_warmup_relays_its_progress_to_a_waiting_request():
    step = threading.Event()

    def load(progress):
        progress(0.4, "Encoding gallery locations: 40 of 100")
        step.set()
        assert GATE.wait(HANG_S)

    GATE.clear()
    warmup = Warmup("toy", load).start()
    assert step.wait(HANG_S)
    seen = Recorder("40 of 100")
    waiter = threading.Thread(target=warmup.wait, args=(seen,))
    waiter.start()
    assert seen.seen.wait(HANG_S), "the waiting request never showed the warm-up's progress"
    GATE.set()
    waiter.join(HANG_S)
    assert not waiter.is_alive() and warmup.done and warmup.error is None and warmup.seconds is not None
    assert seen.calls[0] == (0.4, "Encoding gallery locations: 40 of 100")


def test_a_locate_during_the_warmup_waits_for_it_and_loads_nothing_twice(toys):
    service = GeolocationService(ModelSettings(device="cpu"))
    warmup = service.start_warmup("gated")
    assert warmup is not None and service.start_warmup("gated") is warmup  # one warm-up per model
    progress = Recorder("Loading Gated toy")
    results: list = []
    request = threading.Thread(target=lambda: results.extend(
        service.locate(LocateForm(files=photos(), top_k=3, model="gated"), progress)))
    request.start()
    assert progress.seen.wait(HANG_S), "the request did not show the warm-up's progress"
    # Another model loads meanwhile: the warm-up holds only its own model's lock.
    other = service.locate(LocateForm(files=photos(), top_k=3, model="toy"))
    assert other[0].prediction.ok
    GATE.set()
    request.join(HANG_S)
    assert not request.is_alive() and results and results[0].prediction.ok
    assert LOADS == ["gated"] and warmup.done and service.is_loaded("gated")
    assert service.start_warmup("gated") is None  # loaded already: nothing to prepare


def test_nothing_is_warmed_up_for_a_model_that_cannot_run(toys, monkeypatch):
    from tests.families import toy

    needy = replace(toy.SPEC, key="needy", label="Needy toy",
                    weight_files=(replace(toy.TOY_FILE, key="needy/file", optional=False, filename="none.json"),))
    registry.register(needy)
    try:
        assert GeolocationService(ModelSettings(device="cpu")).start_warmup("needy") is None
    finally:
        registry.unregister("needy")


def test_one_even_progress_bar_per_run(toys):
    GATE.set()
    service = GeolocationService(ModelSettings(device="cpu"))
    first = Recorder()
    service.locate(LocateForm(files=photos(2), top_k=3, model="toy"), first)
    fractions = [fraction for fraction, _ in first.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(0 <= f <= 1 for f in fractions)
    loading = [f for f, message in first.calls if "Locating photo" not in message and message != "Done"]
    assert loading and max(loading) <= LOADING_SHARE  # loading and preparing fill the bar up to the photos
    assert [f for f, m in first.calls if "Locating photo" in m] == pytest.approx([LOADING_SHARE, (LOADING_SHARE + 1) / 2])
    # Loaded: the photos fill the whole bar, evenly (it never sits at 50 % and then jumps).
    again = Recorder()
    service.locate(LocateForm(files=photos(4), top_k=3, model="toy"), again)
    assert again.calls == [(0.0, "Locating photo 1 of 4 …"), (0.25, "Locating photo 2 of 4 …"),
                           (0.5, "Locating photo 3 of 4 …"), (0.75, "Locating photo 4 of 4 …"), (1.0, "Done")]
