"""What every tab shares: the context (config, service, map settings) and error translation."""

from __future__ import annotations

import functools
import re
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from geoapp.geo.regions import RegionError
from geoapp.imaging import ImageLoadError
from geoapp.ui.maps.render import MapAssets, MapOptions
from geoapp.results.textsafe import message_text
from geoapp.ui.config import AppConfig
from geoapp.ui.forms import FormError
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


def user_errors(handler: F) -> F:
    """Turn analyst-facing errors into ``gr.Error`` popups (message kept, no traceback)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except USER_ERRORS as error:
            # gr.Error renders HTML, and API clients get the same string: no markup, no entities.
            raise gr.Error(toast_text(error), duration=ERROR_TOAST_S, title="Cannot do that",
                           print_exception=False) from error
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - last resort: log it, tell the analyst, keep serving
            log.exception("unexpected error in %s", handler.__name__)
            raise gr.Error(toast_text(f"Unexpected error ({type(error).__name__}): {error}. "
                                      "The details are in the server log."),
                           duration=ERROR_TOAST_S, title="Something went wrong") from error

    return wrapper  # type: ignore[return-value]


def progress_callback(progress: gr.Progress | None) -> Progress:
    """Adapt ``gr.Progress`` to the service's ``(fraction, message)`` callback."""

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, desc=message)

    return report
