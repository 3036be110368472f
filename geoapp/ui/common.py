"""What every tab shares: the context (config, service, map settings, model dropdowns), error translation, and
busy buttons that always come back."""

from __future__ import annotations

import functools
import re
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gradio as gr

from geoapp.geo.regions import RegionError
from geoapp.imaging import ImageLoadError
from geoapp.ui.maps.render import MapAssets, MapOptions
from geoapp.results.textsafe import message_text
from geoapp.ui.config import AppConfig
from geoapp.ui.forms import FormError
from geoapp.ui.model_picker import ModelPickers
from geoapp.ui.satellite import offline_tile_layer
from geoapp.ui.service import GeolocationService, ModelUnavailableError, Progress

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Errors whose message is written for the analyst: shown as is, the app keeps serving.
USER_ERRORS = (FormError, ModelUnavailableError, ImageLoadError, RegionError)


@dataclass(frozen=True)
class UiContext:
    """Built once per app; passed to every tab builder."""

    config: AppConfig
    service: GeolocationService
    asset_prefix: str  # URL prefix (relative to the page) of the served map-asset folder
    offline_tiles: bool = False  # the app serves the offline pyramid (geoapp/ui/satellite.py tile_routes)
    pickers: ModelPickers = field(default_factory=ModelPickers)  # every model dropdown, listed again together

    def map_options(self, online_tiles: bool) -> MapOptions:
        return MapOptions(MapAssets.local(self.asset_prefix), online_tiles=bool(online_tiles),
                          offline_tiles=offline_tile_layer() if self.offline_tiles else None)

    @property
    def random_weights(self) -> bool:
        return self.config.random_weights


ERROR_TOAST_S = 30  # long enough to read and copy a command; then it goes (it has a close button too)


def toast_text(error: object) -> str:
    """An error for the toast and the API: `command` quotes become typographic ones (the toast shows no
    Markdown, and literal backticks read as noise), then the look-alike escaping of message_text."""
    return message_text(re.sub(r"`([^`]+)`", "\u201c\\1\u201d", str(error)))


def error_message(error: BaseException) -> tuple[str, str]:
    """(title, message) of an error as the analyst sees it (toast, API answer, the note beside a form)."""
    if isinstance(error, USER_ERRORS):
        return "Cannot do that", toast_text(error)
    if isinstance(error, gr.Error):
        return str(error.title or "Error"), str(error.message)
    return "Something went wrong", toast_text(f"Unexpected error ({type(error).__name__}): {error}. "
                                              "The details are in the server log.")


def user_errors(handler: F) -> F:
    """Turn analyst-facing errors into ``gr.Error`` popups (message kept, no traceback)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - last resort for the unexpected: log it, tell, keep serving
            if not isinstance(error, USER_ERRORS):
                log.exception("unexpected error in %s", handler.__name__)
            title, message = error_message(error)
            # gr.Error renders HTML, and API clients get the same string: no markup, no entities.
            raise gr.Error(message, duration=ERROR_TOAST_S, title=title, print_exception=False) from error

    return wrapper  # type: ignore[return-value]


def restore_after(event, restore: Callable[..., Any], outputs, inputs=None) -> None:
    """Run ``restore`` once ``event`` ends, however it ends (a busy button comes back). Gradio's front end runs
    ``.then`` listeners only after a success, so a failure needs its own listener."""
    for follow in (event.success, event.failure):
        follow(restore, inputs=inputs, outputs=outputs, api_visibility="private", queue=False, show_progress="hidden")


def progress_callback(progress: gr.Progress | None) -> Progress:
    """Adapt ``gr.Progress`` to the service's ``(fraction, message)`` callback."""

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, desc=message)

    return report
