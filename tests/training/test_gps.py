"""The dynamic GPS queue (length, FIFO refresh, re-encoding every step) and the noise units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geoapp.geo.distance import haversine_km
from geoapp.models.location_encoder import LocationEncoder

from training.gps import METRES_PER_DEGREE, GPSQueue, add_gps_noise
from training.heads import GeoCLIPHeads
from training.objective import contrastive_loss


def _coords(start: int, n: int) -> torch.Tensor:
    """Distinct, recognisable coordinates: lat = index / 100."""
    idx = torch.arange(start, start + n, dtype=torch.float32)
    return torch.stack([idx / 100, -idx / 100], dim=1)


def test_queue_fills_then_refreshes_fifo():
    queue = GPSQueue(size=10)
    assert len(queue) == 0 and queue.get().shape == (0, 2)
    queue.enqueue(_coords(0, 4))
    assert len(queue) == 4
    torch.testing.assert_close(queue.get(), _coords(0, 4))
    queue.enqueue(_coords(4, 4))
    queue.enqueue(_coords(8, 4))  # wraps: 8, 9 at the end, 10, 11 overwrite the oldest (0, 1)
    assert len(queue) == 10 and queue.get().shape == (10, 2)
    held = set((queue.get()[:, 0] * 100).round().int().tolist())
    assert held == set(range(2, 12))
    queue.enqueue(_coords(100, 25))  # a batch longer than the queue keeps its last 10
    assert set((queue.get()[:, 0] * 100).round().int().tolist()) == set(range(115, 125))
    state = queue.state_dict()
    restored = GPSQueue(size=10)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.get(), queue.get())
    assert len(GPSQueue(4096)) == 0 and GPSQueue(4096).coords.shape == (4096, 2)


class SpyEncoder(LocationEncoder):
    """Records every batch of coordinates it encodes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[torch.Tensor] = []

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        self.calls.append(latlon.detach().clone())
        return super().forward(latlon)


def test_loss_reencodes_batch_and_queue_every_step():
    torch.manual_seed(0)
    heads = GeoCLIPHeads(SpyEncoder())
    queue = GPSQueue(size=16)
    queue.enqueue(_coords(1000, 16))
    features, latlon = torch.randn(4, 768), _coords(0, 4)

    loss = contrastive_loss(heads, features, latlon, queue, noise_m=0.0)
    encoded = heads.location_encoder.calls[-1]
    assert encoded.shape == (4 + 16, 2)  # [batch GPS ; queue GPS]
    torch.testing.assert_close(encoded[:4], latlon)
    torch.testing.assert_close(encoded[4:], queue.get())
    loss.backward()
    # The queue's embeddings come from the current encoder, so its weights get gradients through them.
    assert heads.location_encoder.branches[0].head.weight.grad is not None

    # Change the encoder: the next step sees the queue through the new weights (nothing cached).
    with torch.no_grad():
        for p in heads.location_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    loss2 = contrastive_loss(heads, features, latlon, queue, noise_m=0.0)
    assert len(heads.location_encoder.calls) == 2 and not torch.isclose(loss, loss2)

    # With noise, the encoded coordinates move a little, and differently at each step.
    contrastive_loss(heads, features, latlon, queue, noise_m=150.0)
    noisy = heads.location_encoder.calls[-1]
    shift_m = (noisy - encoded).abs().max().item() * METRES_PER_DEGREE
    assert 0 < shift_m < 5000


def test_trainer_reads_queue_before_enqueueing_the_batch(toy_store, tmp_path):
    from training.train_geoclip import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(out=str(tmp_path / "run"), features=str(toy_store), init="random", batch_size=8,
                                  queue_size=12, workers=0, device="cpu"))
    seen = []
    original = trainer.heads.location_encoder.forward
    trainer.heads.location_encoder.forward = lambda latlon: (seen.append(latlon.shape[0]), original(latlon))[1]
    for step in range(3):
        batch_gps = torch.tensor([[10.0 + step, 20.0]] * 8)
        trainer.train_step(torch.randn(8, 768), batch_gps)
    assert seen == [8, 16, 20]  # queue: 0, 8, then 12 (full) negatives
    assert len(trainer.queue) == 12
    assert set(trainer.queue.get()[:, 0].tolist()) == {11.0, 12.0}  # FIFO: the oldest batch is gone


@pytest.mark.parametrize("lat", [0.0, 60.0, -75.0])
def test_noise_is_metres_on_the_ground(lat):
    sigma_m = 150.0
    n = 20_000
    base = torch.tensor([[lat, 10.0]]).repeat(n, 1).double()
    noisy = add_gps_noise(base, sigma_m, torch.Generator().manual_seed(0)).numpy()
    b = base.numpy()
    north_km = haversine_km(b[:, 0], b[:, 1], noisy[:, 0], b[:, 1]) * np.sign(noisy[:, 0] - b[:, 0])
    east_km = haversine_km(noisy[:, 0], b[:, 1], noisy[:, 0], noisy[:, 1]) * np.sign(noisy[:, 1] - b[:, 1])
    # Same spread north-south and east-west, in metres, at every latitude.
    assert np.std(north_km) * 1000 == pytest.approx(sigma_m, rel=0.03)
    assert np.std(east_km) * 1000 == pytest.approx(sigma_m, rel=0.03)
    assert abs(np.mean(north_km) * 1000) < 5
    # In degrees the longitude spread grows as 1/cos(lat).
    lon_std_deg = np.std(noisy[:, 1] - b[:, 1])
    assert lon_std_deg == pytest.approx(sigma_m / METRES_PER_DEGREE / np.cos(np.radians(lat)), rel=0.03)


def test_noise_edge_cases():
    coords = torch.tensor([[89.9999, 179.9999], [-90.0, -180.0], [0.0, 0.0]])
    noisy = add_gps_noise(coords, 1000.0, torch.Generator().manual_seed(1))
    assert torch.all(noisy[:, 0].abs() <= 90) and torch.all((noisy[:, 1] >= -180) & (noisy[:, 1] < 180))
    assert torch.isfinite(noisy).all()
    assert add_gps_noise(coords, 0.0) is coords
    assert METRES_PER_DEGREE == pytest.approx(111_195, abs=1)


def test_heads_module_is_a_drop_in_for_geoapp_checkpoint_helpers():
    heads = GeoCLIPHeads()
    assert isinstance(heads.location_encoder, nn.Module)
    assert heads.logit_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-5)
