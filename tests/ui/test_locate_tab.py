"""The Locate tab's handlers after what a first-time analyst tripped on: a failed run's error kept beside the form,
a calm note (no error) for a model without Grad-CAM and no stale maps, a claimed place typed as a name, and a
word when fewer places are shown than were asked for. Handlers are called directly (no browser)."""

from __future__ import annotations

import gradio as gr
import pytest

from geoapp.families import registry
from geoapp.ui import views
from geoapp.ui.common import UiContext, user_errors
from geoapp.ui.config import AppConfig
from geoapp.ui.locate_tab import LocateHandlers, LocateSession
from geoapp.ui.service import GeolocationService, ModelSettings
from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO, synthetic_prediction


def no_progress(*_args, **_kwargs) -> None:
    return None


@pytest.fixture
def toy_ctx(monkeypatch, tmp_path) -> UiContext:
    """The toy family (three fixed places, no Grad-CAM, torch-free) behind the real service."""
    from tests.families import toy

    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    registry.register(toy.SPEC)
    service = GeolocationService(ModelSettings(device="cpu"))
    yield UiContext(config=AppConfig(offline_map=True), service=service, asset_prefix="gradio_api/file=/srv/")
    registry.unregister("toy")


def photo() -> str:
    return str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))


def test_a_failed_run_keeps_its_error_for_the_note_beside_the_form(toy_ctx):
    handlers = LocateHandlers(toy_ctx)
    session = LocateSession()
    with pytest.raises(gr.Error) as raised:
        user_errors(handlers.locate)([photo()], 3, False, "toy", claimed_location="Nowhere-land-xyz", session=session,
                                     progress=no_progress)
    assert "Nowhere-land-xyz" in raised.value.message and session.error == raised.value.message
    button, note = handlers.failed(session)
    assert button["interactive"] is True and button["value"] == "Locate"
    assert note["visible"] is True and "Could not locate" in note["value"] and "Nowhere-land-xyz" in note["value"]
    # An unknown model says which ones exist, in the same place.
    with pytest.raises(gr.Error):
        user_errors(handlers.locate)([photo()], 3, False, "no-such-model", session=session, progress=no_progress)
    assert "Unknown model 'no-such-model'" in session.error and "toy" in session.error
    # A run the server lost (no error recorded) still gives the button back with a plain word.
    button, note = handlers.failed(LocateSession())
    assert button["interactive"] is True and "press Locate again" in note["value"]


def test_a_model_without_grad_cam_gets_a_calm_note_and_no_stale_maps(toy_ctx):
    handlers = LocateHandlers(toy_ctx)
    session, _ = handlers.locate([photo()], 3, False, "toy", progress=no_progress)
    crop, overlay, caption, others = handlers.cam_pending(session, 0, 1)
    assert crop is None and overlay is None and others["visible"] is False  # nothing left from an earlier model
    assert "does not offer Grad-CAM" in caption and "Toy family" in caption
    crop, overlay, caption, others = handlers.gradcam(session, 0, 1, progress=no_progress)  # no error raised
    assert crop is None and overlay is None and "does not offer Grad-CAM" in caption and "rror" not in caption


def test_the_grad_cam_panel_is_cleared_while_a_new_map_is_computed(ctx):
    handlers = LocateHandlers(ctx)
    session, _ = handlers.locate([photo()], 3, False, "geoclip", progress=no_progress)
    crop, overlay, caption, others = handlers.cam_pending(session, 0, 2)
    assert crop is None and overlay is None and others["visible"] is False and "candidate #2" in caption


def test_a_claimed_place_typed_as_a_name_is_on_the_map_and_in_the_table(toy_ctx):
    handlers = LocateHandlers(toy_ctx)
    session, payload = handlers.locate([photo()], 3, False, "toy", claimed_location="Odesa", progress=no_progress)
    reference = payload["results"][0]["references"][0]
    assert reference["label"] == "Claimed location (Odesa, Ukraine)"
    assert reference["lat"] == pytest.approx(46.48, abs=0.05) and reference["lon"] == pytest.approx(30.74, abs=0.05)
    _, _, summary, _, table, *_ = handlers.show(session, 0, False)
    assert "Odesa, Ukraine" in summary and table.value["headers"][-1] == "km from Claimed location (Odesa, Ukraine)"


def test_fewer_places_than_asked_are_explained():
    merged = synthetic_prediction()
    merged.parameters = {"top_k": 6, "merge_km": 25.0, "candidate_points": 500}
    note = views.fewer_places_note(merged)
    assert note == "5 distinct places (6 asked): close candidates (closer than 25 km) were merged into one place."
    assert note in views.confidence_markdown(merged)
    small = synthetic_prediction()
    small.parameters = {"top_k": 8, "merge_km": 25.0, "candidate_points": 5}
    assert views.fewer_places_note(small) == "5 distinct places (8 asked): the search area holds only 5 candidate points."
    exact = synthetic_prediction()
    exact.parameters = {"top_k": 5, "merge_km": 25.0}
    assert views.fewer_places_note(exact) is None and "distinct places" not in views.confidence_markdown(exact)
