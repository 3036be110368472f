"""Grad-CAM on a tiny random model: finite, normalised, not constant; reshape derived from the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoapp.api import gradcam_for_location
from geoapp.runtime.cam import EmbeddingSimilarityTarget, vit_reshape_transform

from .conftest import shared_path


def test_gradcam_for_candidate(tiny_locator):
    photo = shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")
    top = tiny_locator.predict(photo, top_k=1).candidates[0]
    result = gradcam_for_location(tiny_locator, photo, top.lat, top.lon)
    heat = result.heatmap
    assert heat.shape == (224, 224) and np.isfinite(heat).all()
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat.std() > 1e-3  # not constant
    assert result.overlay.size == (224, 224) and result.random_weights
    assert result.side_by_side().size == (456, 224)
    other = gradcam_for_location(tiny_locator, photo, -33.87, 151.21)
    assert not np.allclose(other.heatmap, heat)  # the target changes the explanation


def test_reshape_transform_uses_model_grid():
    reshape = vit_reshape_transform((3, 4))
    tokens = torch.arange(2 * 13 * 5, dtype=torch.float32).reshape(2, 13, 5)
    maps = reshape(tokens)
    assert maps.shape == (2, 5, 3, 4)
    assert torch.equal(maps[0, :, 0, 0], tokens[0, 1])  # CLS token dropped
    with pytest.raises(ValueError):
        vit_reshape_transform((4, 4))(tokens)


def test_similarity_target_is_cosine():
    target = EmbeddingSimilarityTarget(torch.tensor([3.0, 0.0]))
    assert float(target(torch.tensor([1.0, 1.0]))) == pytest.approx(2 ** -0.5)
