"""The public entry point: ``Geolocator.load(model, ...)`` -> a loaded model family.

Every family (GeoCLIP, SatWorld, TransLocator, the ensemble, user variants ``family:tag``) has the
same prediction API (:class:`~geoapp.families.base.Family`): ``predict``, ``predict_batch``,
``describe``, ``restrict``, ``explain``, ``text_map`` where capable. Which families exist is the
registry's business (:mod:`geoapp.families.registry`); nothing here names one.
"""

from __future__ import annotations

from pathlib import Path

from geoapp.families import AUTO, DEFAULT_KEY, Family, LoadOptions, choose, families, load
from geoapp.families.base import DEFAULT_MERGE_KM, REGION_EXTRA_POINTS, GradCamResult

AUTO_MODEL = AUTO
__all__ = ["AUTO_MODEL", "DEFAULT_MERGE_KM", "REGION_EXTRA_POINTS", "Geolocator", "choose_model", "explain",
           "gradcam_for_location", "model_keys"]


class Geolocator:
    """Factory for geolocators (kept as the public name; the objects it returns are families)."""

    @staticmethod
    def load(model: str = DEFAULT_KEY, device: str | None = None, backbone_weights: str | Path | None = None, *,
             checkpoint: str | Path | None = None, **extras) -> Family:
        """Load ``model`` (a registry key, ``family:tag``, or ``"auto"``).

        ``backbone_weights``: None (real pretrained weights from the local cache; fails at once with
        the fix when missing), ``"random"`` (real architecture, random weights: every result is
        flagged), or a backbone checkpoint path. ``checkpoint``: the family's own trained checkpoint.
        Family-specific keywords (``backbone``, ``gallery``, ``cache_dir``, ``segmenter`` ...) pass through.
        """
        weights = None if backbone_weights is None else str(backbone_weights)
        return load(model, device, weights, checkpoint=checkpoint, **extras)


def choose_model(model: str = AUTO, backbone_weights: str | Path | None = None) -> tuple[str, str | None]:
    """Resolve ``"auto"`` to a family key; returns (key, notice explaining a fallback, or None)."""
    options = LoadOptions(backbone_weights=None if backbone_weights in (None, "") else str(backbone_weights))
    spec, notice = choose(model, options)
    return spec.key, notice


def model_keys() -> list[str]:
    """Every family and variant key (for choices and help texts)."""
    return [spec.key for spec in families()]


def explain(locator: Family, image, lat: float, lon: float) -> dict[str, GradCamResult]:
    """Every Grad-CAM map the family has for the candidate at (lat, lon), main map first
    (the machinery is in :mod:`geoapp.runtime.cam`)."""
    return locator.explain(image, lat, lon)


def gradcam_for_location(locator: Family, image, lat: float, lon: float) -> GradCamResult:
    """The main Grad-CAM map (the photo) towards the candidate at (lat, lon)."""
    return next(iter(locator.explain(image, lat, lon).values()))
