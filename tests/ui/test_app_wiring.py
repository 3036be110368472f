"""How the built app's events are wired (Gradio's config, no browser): buttons that come back after a failure,
progress drawn once, model lists that follow trained models on disk, a Grad-CAM panel cleared before each new
map, and the offline-map panel saying what `--help` says."""

from __future__ import annotations

import pytest

from geoapp.ui.app import build_app
from geoapp.ui.config import OFFLINE_MAP_EFFECT, AppConfig

MODEL_DROPDOWNS = ("geoapp-model", "geoapp-case-model", "geoapp-models-choice", "geoapp-text-model")


@pytest.fixture(scope="module")
def config() -> dict:
    demo, _ = build_app(AppConfig(backbone="tiny-test", backbone_weights="random", offline_map=True))
    return demo.config


def component(config: dict, elem_id: str) -> dict:
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def dependency(config: dict, api_name: str) -> dict:
    return next(d for d in config["dependencies"] if d.get("api_name") == api_name)


def followers(config: dict, after: dict, *, failure: bool | None = None) -> list[dict]:
    return [d for d in config["dependencies"] if d["trigger_after"] == after["id"]
            and (failure is None or d["trigger_only_on_failure"] == failure)]


def triggered_by(config: dict, event: str) -> list[dict]:
    return [d for d in config["dependencies"] if any(name == event for _, name in d["targets"])]


@pytest.mark.parametrize(("api_name", "button"), [("locate", "geoapp-locate-button"), ("text_map", "geoapp-text-run")])
def test_the_run_button_comes_back_after_a_failure_as_after_a_success(config, api_name, button):
    run, button_id = dependency(config, api_name), component(config, button)["id"]
    assert any(button_id in d["outputs"] for d in followers(config, run, failure=True)), "stuck after an error"
    assert any(button_id in d["outputs"] for d in followers(config, run, failure=False))


def test_a_failed_locate_leaves_its_error_beside_the_form(config):
    error_box = component(config, "geoapp-locate-error")["id"]
    assert any(error_box in d["outputs"] for d in followers(config, dependency(config, "locate"), failure=True))
    busy = next(d for d in config["dependencies"] if d["targets"] == dependency(config, "locate")["targets"]
                and d["api_name"] != "locate")
    assert error_box in busy["outputs"]  # the next press clears the old error


def test_locate_progress_is_drawn_once_on_the_map(config):
    assert dependency(config, "locate")["show_progress_on"] == [component(config, "geoapp-locate-map")["id"]]


def test_every_model_list_is_refreshed_on_page_load_on_a_timer_and_after_a_build(config):
    dropdowns = {component(config, elem_id)["id"] for elem_id in MODEL_DROPDOWNS}
    for event in ("load", "tick"):
        assert any(dropdowns <= set(d["outputs"]) for d in triggered_by(config, event)), event
    build = next(d for d in config["dependencies"] if (component(config, "geoapp-build-start")["id"], "click")
                 in [tuple(t) for t in d["targets"]])
    assert any(dropdowns <= set(d["outputs"]) for d in followers(config, build))
    for elem_id in MODEL_DROPDOWNS:  # the service checks the value, so models built later are accepted
        assert component(config, elem_id)["props"]["allow_custom_value"], elem_id


def test_the_grad_cam_panel_is_cleared_at_once_before_each_new_map(config):
    overlay = component(config, "geoapp-gradcam")["id"]
    computing = [d for d in config["dependencies"] if overlay in d["outputs"] and d["queue"]]
    assert computing, "no Grad-CAM event"
    by_id = {d["id"]: d for d in config["dependencies"]}
    for step in computing:
        before = by_id.get(step["trigger_after"])
        assert before is not None and overlay in before["outputs"] and not before["queue"], step["targets"]


def test_the_offline_map_panel_says_what_help_says(config):
    checkbox = next(c for c in config["components"] if "Online map tiles" in str(c.get("props", {}).get("label")))
    assert OFFLINE_MAP_EFFECT in checkbox["props"]["info"] and not checkbox["props"]["interactive"]
