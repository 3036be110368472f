"""Held-out metrics of regional models in the paper's columns: country accuracy, % within 1/25/200/750 km.

Also the most-common-cell baseline and the validation criterion used for early stopping (mean great-circle
error of the top candidate: smooth, defined for every method, unlike accuracy at a threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoapp.families.regional.model import RegionalModel
from geoapp.geo.distance import haversine_km

THRESHOLDS_KM = (1, 25, 200, 750)


@dataclass
class Metrics:
    """Held-out results in the paper's columns (percentages)."""

    images: int
    country: float
    within_km: dict[int, float]
    median_km: float

    def to_dict(self) -> dict:
        return {"images": self.images, "country_accuracy": round(self.country, 2),
                "within_km": {str(k): round(v, 2) for k, v in self.within_km.items()},
                "median_km": round(self.median_km, 1)}


def predict_top(model: RegionalModel, features: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Top candidate (lat, lon) [N, 2] and its country index [N] for raw features."""
    coords, countries = [], []
    device = next(model.head.parameters()).device
    for start in range(0, len(features), chunk):
        decoded = model.decode(torch.as_tensor(features[start:start + chunk], dtype=torch.float32, device=device))
        best = decoded.probs.argmax(axis=1)
        coords.append(decoded.coords[np.arange(len(best)), best])
        countries.append(decoded.country[best])
    if not coords:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(coords), np.concatenate(countries)


def score(pred: np.ndarray, pred_country: np.ndarray, coords: np.ndarray, country: np.ndarray) -> Metrics:
    """Metrics of predictions against true coordinates [N, 2] and country indices [N]."""
    if len(coords) == 0:
        return Metrics(0, float("nan"), {k: float("nan") for k in THRESHOLDS_KM}, float("nan"))
    distance = haversine_km(pred[:, 0], pred[:, 1], coords[:, 0], coords[:, 1])
    return Metrics(images=len(coords), country=100.0 * float(np.mean(pred_country == country)),
                   within_km={k: 100.0 * float(np.mean(distance <= k)) for k in THRESHOLDS_KM},
                   median_km=float(np.median(distance)))


def evaluate(model: RegionalModel, features: np.ndarray, coords: np.ndarray, country: np.ndarray) -> Metrics:
    pred, pred_country = predict_top(model, features)
    return score(pred, pred_country, coords, country)


def mean_error_km(model: RegionalModel, features: np.ndarray, coords: np.ndarray) -> float:
    """Mean great-circle error of the top candidate (the early-stopping criterion)."""
    pred, _ = predict_top(model, features)
    return float(np.mean(haversine_km(pred[:, 0], pred[:, 1], coords[:, 0], coords[:, 1])))
