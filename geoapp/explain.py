"""Grad-CAM for any family: which parts of the photo drove the match with a candidate location.

Each family implements :meth:`~geoapp.families.base.Family.explain` (named maps, one per branch);
these helpers are the public shortcuts. The machinery is in :mod:`geoapp.runtime.cam`.
"""

from __future__ import annotations

from geoapp.families.base import GradCamResult
from geoapp.runtime.cam import EmbeddingSimilarityTarget, LogitTarget, compute_cam, vit_reshape_transform

__all__ = ["EmbeddingSimilarityTarget", "GradCamResult", "LogitTarget", "compute_cam", "explain",
           "gradcam_for_location", "vit_reshape_transform"]


def explain(locator, image, lat: float, lon: float) -> dict[str, GradCamResult]:
    """Every Grad-CAM map the family has for the candidate at (lat, lon), main map first."""
    return locator.explain(image, lat, lon)


def gradcam_for_location(locator, image, lat: float, lon: float) -> GradCamResult:
    """The main Grad-CAM map (the photo) towards the candidate at (lat, lon)."""
    return next(iter(locator.explain(image, lat, lon).values()))
