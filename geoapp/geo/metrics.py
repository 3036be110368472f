"""Standard image-geolocation metrics (Im2GPS-style accuracy, GeoGuessr score)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from .distance import haversine_km

THRESHOLDS_KM: tuple[float, ...] = (1, 25, 200, 750, 2500)
"""Street, city, region, country and continent level thresholds used in the literature."""

GEOGUESSR_SCALE_KM = 1492.7


def _distances(pred_latlon: ArrayLike, true_latlon: ArrayLike) -> np.ndarray:
    pred = np.asarray(pred_latlon, dtype=np.float64).reshape(-1, 2)
    true = np.asarray(true_latlon, dtype=np.float64).reshape(-1, 2)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same number of points, got {len(pred)} and {len(true)}.")
    return haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1])


def accuracy_at_thresholds(
    pred_latlon: ArrayLike, true_latlon: ArrayLike, thresholds: Iterable[float] = THRESHOLDS_KM
) -> dict[float, float]:
    """Percentage (0-100) of predictions within each distance threshold (km).

    Empty input gives NaN for every threshold.
    """
    dist = _distances(pred_latlon, true_latlon)
    return _accuracy(dist, thresholds)


def _accuracy(dist: np.ndarray, thresholds: Iterable[float]) -> dict[float, float]:
    if dist.size == 0:
        return {float(t): float("nan") for t in thresholds}
    return {float(t): float(np.mean(dist <= t) * 100.0) for t in thresholds}


def geoguessr_score(distance_km: ArrayLike) -> np.ndarray:
    """GeoGuessr-style points: 5000 * exp(-d / 1492.7); 5000 at 0 km."""
    return 5000.0 * np.exp(-np.asarray(distance_km, dtype=np.float64) / GEOGUESSR_SCALE_KM)


def error_summary(
    pred_latlon: ArrayLike, true_latlon: ArrayLike, thresholds: Iterable[float] = THRESHOLDS_KM
) -> dict:
    """Summary of errors between predicted and true [N,2] (lat, lon) arrays.

    Returns ``{"n", "median_km", "mean_km", "geoguessr_score" (mean),
    "accuracy": {threshold_km: percent}}``; statistics are NaN when n == 0.
    """
    dist = _distances(pred_latlon, true_latlon)
    n = int(dist.size)
    nan = float("nan")
    return {
        "n": n,
        "median_km": float(np.median(dist)) if n else nan,
        "mean_km": float(np.mean(dist)) if n else nan,
        "geoguessr_score": float(np.mean(geoguessr_score(dist))) if n else nan,
        "accuracy": _accuracy(dist, thresholds),
    }
