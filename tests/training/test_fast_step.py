"""The training fast path: batched location branches and bf16 autocast compute the same objective."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geoapp.models.location_encoder import LocationEncoder
from training.gps import GPSQueue
from training.heads import build_heads
from training.objective import contrastive_loss
from training.train_geoclip import TrainConfig, Trainer

from .conftest import toy_features


def _points(n: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.rand(n, generator=g) * 180 - 90, torch.rand(n, generator=g) * 360 - 180], dim=1)


def test_batched_branches_equal_the_branch_loop_in_values_and_gradients():
    torch.manual_seed(0)
    encoder = LocationEncoder()
    points = _points()
    looped = encoder(points)
    grads_looped = torch.autograd.grad(looped.square().sum(), list(encoder.parameters()))
    batched = encoder.forward_batched(points)
    grads_batched = torch.autograd.grad(batched.square().sum(), list(encoder.parameters()))
    assert torch.allclose(batched, looped, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_batched, grads_looped):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert all(g.abs().sum() > 0 for g in grads_batched)  # every branch's parameters get gradient


def test_pretrained_encoder_under_bf16_autocast_keeps_the_fine_scale():
    heads, _ = build_heads("pretrained")
    encoder = heads.location_encoder
    points = _points(500, seed=1)
    reference = F.normalize(encoder(points), dim=-1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = F.normalize(encoder.forward_batched(points).float(), dim=-1)
        # The Fourier phases stay float32 under autocast; in bf16 the sigma=2^8 branch would be noise.
        fourier = encoder.branches[2].fourier(torch.ones(1, 2) * 0.3)
    assert fourier.dtype == torch.float32
    assert (fast * reference).sum(dim=-1).min() > 0.995


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trainer_fast_paths_learn(toy_store, tmp_path, precision):
    trainer = Trainer(TrainConfig(out=str(tmp_path / precision), features=str(toy_store), init="random", lr=1e-4,
                                  gps_noise_m=0.0, workers=0, device="cpu", precision=precision,
                                  batched_branches=True))
    assert trainer.heads.batched_branches
    features, coords = (torch.from_numpy(a) for a in toy_features(n=64, seed=3))
    empty = GPSQueue(0)
    with torch.no_grad():
        before = contrastive_loss(trainer.heads, features, coords, empty, 0.0).item()
    for _ in range(2):
        loss = trainer.train_step(features, coords)
        assert math.isfinite(loss) and loss > 0  # a cross-entropy: finite (no inf, no NaN) and positive
    with torch.no_grad():
        after = contrastive_loss(trainer.heads, features, coords, empty, 0.0).item()
    assert after < before
    assert all(p.dtype == torch.float32 for p in trainer.heads.parameters())  # master weights stay float32


def test_unknown_precision_is_refused(toy_store, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        Trainer(TrainConfig(out=str(tmp_path / "x"), features=str(toy_store), workers=0, device="cpu", precision="fp8"))
