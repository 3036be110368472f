"""CUDA code paths (skipped without a GPU; CI has none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import shared_path

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def cuda_locator():
    from geoapp import Geolocator

    return Geolocator.load(backbone="tiny-test", backbone_weights="random", device="cuda")


def test_cuda_prediction_matches_cpu(cuda_locator, tiny_locator):
    photo = shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")
    # same random backbone on both devices
    cuda_locator.model.load_state_dict(tiny_locator.model.state_dict())
    gpu = cuda_locator.predict(photo, top_k=5)
    cpu = tiny_locator.predict(photo, top_k=5)
    assert gpu.model["device"].startswith("cuda")
    np.testing.assert_allclose(gpu.surface.probability, cpu.surface.probability, atol=2e-3)


def test_cuda_tencrop(cuda_locator):
    photo = shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")
    result = cuda_locator.predict(photo, top_k=5, tencrop=True)
    assert result.ok and result.parameters["tencrop"]
