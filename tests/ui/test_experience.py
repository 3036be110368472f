"""Analyst-experience details that need no browser: error toasts, Text → Map without a text-capable
model, small Grad-CAMs drawn big enough, failed uploads named as the analyst named them."""

from __future__ import annotations

from PIL import Image

from geoapp.families import registry
from geoapp.models import weights
from geoapp.results.prediction import Prediction
from geoapp.ui import views
from geoapp.ui.common import ERROR_TOAST_S, toast_text
from geoapp.ui.locate_tab import CAM_DISPLAY_SIDE, shown_size
from geoapp.ui.service import GeolocationService, ModelSettings


def test_error_toasts_have_no_markdown_quotes_and_close_by_themselves():
    text = toast_text("Missing weights. To fix: `python -m geoapp weights download` <then restart>")
    assert "`" not in text and "“python -m geoapp weights download”" in text and "<" not in text
    assert 5 <= ERROR_TOAST_S <= 60


def test_text_map_is_disabled_with_a_reason_when_no_text_family_can_run(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))
    # No CLIP weights in any Hugging Face cache either, whatever this machine holds: the outcome is determined.
    monkeypatch.setattr(weights, "_hf_cached_paths", lambda *args, **kwargs: [])
    service = GeolocationService(ModelSettings())
    assert service.default_model(text_only=True) is None
    reason = service.text_unavailable_reason()
    assert reason and "weights download" in reason
    assert all(registry.get(key).capabilities.text for _, key in service.model_choices(text_only=True))


def test_small_gradcam_images_are_drawn_big():
    small = Image.new("RGB", (64, 64), "red")
    assert max(shown_size(small).size) == CAM_DISPLAY_SIDE and shown_size(small).getpixel((0, 0)) == (255, 0, 0)
    big = Image.new("RGB", (512, 300))
    assert shown_size(big) is big


def test_failed_upload_shows_the_original_name_once():
    failed = Prediction(source="/tmp/gradio/abc123/holiday.jpg", error="holiday.jpg: the file is empty (0 bytes)")
    located = GeolocationService._located(failed, "/tmp/gradio/abc123/holiday.jpg", None, "geoclip")
    text = views.confidence_markdown(located.prediction)
    assert "/tmp/gradio" not in text and text.count("holiday") == 1 and located.name == "holiday.jpg"
