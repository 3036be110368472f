"""Fixtures for the fusion tests: a synthetic prediction with a known surface."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.results.prediction import build_prediction


def synthetic_prediction(source: str, lat0: float, lon0: float, spread_deg: float, seed: int, n: int = 400,
                         sha256: str | None = None):
    rng = np.random.default_rng(seed)
    lat = np.clip(rng.normal(lat0, spread_deg, n), -89, 89)
    lon = (rng.normal(lon0, spread_deg, n) + 180) % 360 - 180
    prob = rng.random(n)
    prediction = build_prediction(source, lat, lon, prob / prob.sum(), top_k=5, merge_km=25, place_names=False)
    prediction.model = {"family": "toy", "heads_sha256": "abc"}
    prediction.image = {"sha256": sha256 or source}
    return prediction


@pytest.fixture()
def paris_prediction():
    return synthetic_prediction("paris.jpg", 48.85, 2.35, 0.5, seed=1)
