"""GeoCLIP's location encoder (Vivanco et al., NeurIPS 2023, §3.1).

GPS (lat, lon in degrees) -> Equal Earth projection -> for each scale sigma a branch of
random Fourier features (a fixed Gaussian matrix B ~ N(0, sigma^2)) followed by an MLP;
the branch outputs are summed.

The projection is written with the same float32 operations, in the same order, as the
reference package: with sigma = 256 the Fourier phases reach thousands of radians, so one
ulp of difference in the projected coordinate would already move the output by ~1e-4 and
break parity with the published weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# Equal Earth polynomial coefficients (Šavrič, Patterson & Jenny 2018).
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
# GeoCLIP scales the projected plane so that both axes land roughly in [-1, 1]:
# x, y are multiplied by this factor and divided by 180.
GEOCLIP_PROJECTION_SCALE = 66.50336

DEFAULT_SIGMAS: tuple[float, ...] = (2.0**0, 2.0**4, 2.0**8)


def equal_earth_projection(latlon: torch.Tensor) -> torch.Tensor:
    """Project [N, 2] (lat, lon) degrees to GeoCLIP's scaled Equal Earth plane [N, 2]."""
    lat = torch.deg2rad(latlon[:, 0])
    lon = torch.deg2rad(latlon[:, 1])
    sqrt3 = torch.sqrt(torch.tensor(3.0, device=latlon.device))
    theta = torch.asin((sqrt3 / 2) * torch.sin(lat))
    denominator = 3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1)
    x = (2 * sqrt3 * lon * torch.cos(theta)) / denominator
    y = A4 * theta**9 + A3 * theta**7 + A2 * theta**3 + A1 * theta
    return (torch.stack((x, y), dim=1) * GEOCLIP_PROJECTION_SCALE) / 180


class RandomFourierFeatures(nn.Module):
    """gamma(v) = [cos(2*pi*v B^T), sin(2*pi*v B^T)] with a fixed B ~ N(0, sigma^2) (Tancik et al. 2020)."""

    def __init__(self, sigma: float, in_features: int = 2, num_frequencies: int = 256) -> None:
        super().__init__()
        self.sigma = float(sigma)
        # A buffer, not a parameter: B is sampled once and never trained.
        self.register_buffer("frequencies", torch.randn(num_frequencies, in_features) * sigma)

    @property
    def out_features(self) -> int:
        return 2 * self.frequencies.shape[0]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # Phases reach hundreds of radians at sigma = 2^8: always float32, even under bf16/fp16 autocast
        # (an 8-bit mantissa would scramble the fine scale).
        with torch.autocast(v.device.type, enabled=False):
            phase = (2 * math.pi * v.float()) @ self.frequencies.float().T
        return torch.cat((torch.cos(phase), torch.sin(phase)), dim=-1)


class LocationBranch(nn.Module):
    """One scale: Fourier features -> 3 x (Linear, ReLU) -> linear head."""

    def __init__(self, sigma: float, hidden: int = 1024, out_features: int = 512) -> None:
        super().__init__()
        self.fourier = RandomFourierFeatures(sigma)
        self.mlp = nn.Sequential(
            nn.Linear(self.fourier.out_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, out_features)

    def forward(self, projected: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(self.fourier(projected)))


class LocationEncoder(nn.Module):
    """Sum of one :class:`LocationBranch` per Fourier scale; input (lat, lon) degrees."""

    def __init__(self, sigmas: Sequence[float] = DEFAULT_SIGMAS, out_features: int = 512) -> None:
        super().__init__()
        self.sigmas = tuple(float(s) for s in sigmas)
        self.out_features = out_features
        self.branches = nn.ModuleList(LocationBranch(s, out_features=out_features) for s in self.sigmas)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        projected = equal_earth_projection(latlon)
        features = torch.zeros(latlon.shape[0], self.out_features, device=latlon.device)
        for branch in self.branches:
            features = features + branch(projected)
        return features

    def forward_batched(self, latlon: torch.Tensor) -> torch.Tensor:
        """Same values as :meth:`forward`, with the branches run together: one Fourier matmul for all
        scales, then one batched matmul per MLP layer (fewer, larger kernels: the training fast path).

        The per-branch parameters stay the trained ones (stacked on the fly, so gradients reach them
        and checkpoints keep the reference layout).
        """
        projected = equal_earth_projection(latlon)
        with torch.autocast(latlon.device.type, enabled=False):  # fp32 phases, see RandomFourierFeatures
            frequencies = torch.stack([b.fourier.frequencies.float() for b in self.branches])  # [S, F, 2]
            phase = torch.matmul(2 * math.pi * projected.float(), frequencies.transpose(1, 2))  # [S, N, F]
        x = torch.cat((torch.cos(phase), torch.sin(phase)), dim=-1)  # [S, N, 2F]
        layers = [[b.mlp[i] for b in self.branches] for i in range(0, len(self.branches[0].mlp), 2)]
        layers.append([b.head for b in self.branches])
        for depth, linears in enumerate(layers):
            weight = torch.stack([layer.weight for layer in linears]).transpose(1, 2)  # [S, in, out]
            bias = torch.stack([layer.bias for layer in linears]).unsqueeze(1)  # [S, 1, out]
            x = torch.baddbmm(bias, x, weight)
            if depth < len(layers) - 1:
                x = torch.relu(x)
        return x.sum(dim=0)


def convert_reference_location_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the reference checkpoint's keys (``LocEnc{i}.capsule.{0,1,3,5}``, ``LocEnc{i}.head.0``) to ours.

    Reference layout per branch: capsule = [GaussianEncoding(b), Linear, ReLU, Linear, ReLU, Linear, ReLU],
    head = [Linear]. Ours: fourier.frequencies, mlp = [Linear, ReLU] x 3, head.
    """
    renamed: dict[str, torch.Tensor] = {}
    capsule_to_mlp = {"1": "0", "3": "2", "5": "4"}
    for key, value in state.items():
        parts = key.split(".")
        if not parts[0].startswith("LocEnc"):
            raise KeyError(f"unexpected key {key!r} in a GeoCLIP location-encoder checkpoint")
        branch = f"branches.{int(parts[0][len('LocEnc'):])}"
        if parts[1:3] == ["capsule", "0"] and parts[3] == "b":
            renamed[f"{branch}.fourier.frequencies"] = value
        elif parts[1] == "capsule" and parts[2] in capsule_to_mlp:
            renamed[f"{branch}.mlp.{capsule_to_mlp[parts[2]]}.{parts[3]}"] = value
        elif parts[1:3] == ["head", "0"]:
            renamed[f"{branch}.head.{parts[3]}"] = value
        else:
            raise KeyError(f"unexpected key {key!r} in a GeoCLIP location-encoder checkpoint")
    return renamed

