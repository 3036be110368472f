"""GeoCLIP's GPS-side training tricks (paper §3.2): the dynamic GPS queue and GPS noise.

**Queue.** Besides the batch's own GPS, each image is contrasted with the coordinates of the
last ``size`` (4096) training samples. Only the coordinates are stored: the location encoder
re-encodes the whole queue at every step, so the negatives always come from the current
encoder (no stale embeddings, unlike MoCo's feature queue). The queue is read before the
batch is enqueued, so a batch never meets its own GPS among the negatives. Our queue starts
empty and uses only its filled part, whereas the reference fills it with ``randn`` values
(meaningless coordinates near (0°, 0°)).

**Noise units.** The paper adds Gaussian noise to the batch and queue coordinates. The
reference package's training loop (``geoclip/train/train.py`` in geoclip 1.2.3) adds none,
so there is no reference value or unit to copy. We specify the noise in **metres on the
ground** (default σ = 150 m) and convert it per point to degrees: north offsets divide by
111 195 m per degree of latitude, east offsets by 111 195 · cos(lat) m per degree of
longitude. Noise given directly in degrees would be anisotropic: 0.00135° is 150 m of
latitude everywhere but only 75 m of longitude at 60° N. The stored coordinates stay clean;
fresh noise is drawn at every step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius, as geoapp.geo.distance
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180.0  # ≈ 111 195 m along a meridian
DEFAULT_NOISE_M = 150.0
DEFAULT_QUEUE_SIZE = 4096


def add_gps_noise(latlon: torch.Tensor, sigma_m: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(lat, lon) degrees [N, 2] plus isotropic Gaussian ground noise of ``sigma_m`` metres per axis.

    Latitudes are clamped to [-90, 90]; longitudes wrapped into [-180, 180).
    """
    if sigma_m <= 0 or latlon.numel() == 0:
        return latlon
    offsets = torch.randn(latlon.shape, generator=generator, device=latlon.device, dtype=latlon.dtype) * sigma_m
    lat = latlon[:, 0]
    # cos(lat) -> 0 at the poles; the floor keeps the longitude offset finite there.
    cos_lat = torch.cos(torch.deg2rad(lat)).clamp_min(1e-6)
    new_lat = (lat + offsets[:, 0] / METRES_PER_DEGREE).clamp(-90.0, 90.0)
    new_lon = torch.remainder(latlon[:, 1] + offsets[:, 1] / (METRES_PER_DEGREE * cos_lat) + 180.0, 360.0) - 180.0
    return torch.stack((new_lat, new_lon), dim=1)


class GPSQueue(nn.Module):
    """Ring buffer of the most recent ``size`` training coordinates (buffers: saved with the training state)."""

    def __init__(self, size: int = DEFAULT_QUEUE_SIZE) -> None:
        super().__init__()
        if size < 0:
            raise ValueError("queue size must be >= 0")
        self.size = int(size)
        self.register_buffer("coords", torch.zeros(self.size, 2))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.filled)

    def get(self) -> torch.Tensor:
        """The filled part [len, 2] (the whole buffer once full)."""
        return self.coords[: int(self.filled)]

    @torch.no_grad()
    def enqueue(self, latlon: torch.Tensor) -> None:
        """Add coordinates [B, 2], overwriting the oldest ones (first in, first out)."""
        if self.size == 0 or latlon.shape[0] == 0:
            return
        latlon = latlon.detach().to(self.coords.device, self.coords.dtype)[-self.size:]
        n = latlon.shape[0]
        start = int(self.pointer)
        first = min(n, self.size - start)
        self.coords[start:start + first] = latlon[:first]
        if n > first:  # wrap around
            self.coords[: n - first] = latlon[first:]
        self.pointer.fill_((start + n) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + n))
