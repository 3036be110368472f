"""Heads of regional models (Engdahl & Heubi, "Sweden or Switzerland", §4), on frozen image features.

One :class:`RegionalHead` per method, chosen by :attr:`HeadConfig.kind`:

* ``classifier`` (§4.1): three-layer MLP -> softmax over the region's countries; cross-entropy.
* ``offset`` (§4.3): the country MLP plus a head predicting, for every country, the normalised
  (0-1) latitude/longitude offset inside its bounding box from the south-west corner (a sigmoid,
  so a decoded point never leaves the box); loss ``alpha * CE + (1 - alpha) * MSE`` on the true
  country's offset.
* ``cells`` (§4.4): MLP -> softmax over cells; cross-entropy, optionally against haversine-smoothed
  targets (PIGEON: ``exp(-(d - d_min) / tau)``, see :func:`haversine_smoothed_targets`).
* ``hybrid`` (OSV-5M): cells plus a per-cell normalised offset inside the cell's box (same
  decoding and loss weighting as ``offset``).
* ``retrieval`` (§4.5): image MLP and a location encoder (Equal Earth projection, then random
  Fourier features at each sigma + MLP, or an MLP alone) aligned by a temperature-scaled
  cross-entropy against the batch's own locations plus negatives.

Everything a head needs to decode (country boxes, cell boxes, the gallery) lives in the model
tables (:mod:`.model`); heads map features to raw outputs only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geoapp.models.location_encoder import RandomFourierFeatures, equal_earth_projection

KINDS = ("classifier", "offset", "cells", "hybrid", "retrieval")
SIGMA_PRESETS = {"paper": (2.0**0, 2.0**8, 2.0**16), "geoclip": (2.0**0, 2.0**4, 2.0**8)}


@dataclass(frozen=True)
class HeadConfig:
    """Architecture and loss of one regional head (stored in the checkpoint)."""

    kind: str
    feature_dim: int
    classes: int  # countries (classifier/offset), cells (cells/hybrid), unused for retrieval
    hidden: int = 512
    dropout: float = 0.1
    alpha: float = 0.5  # offset/hybrid: weight of the cross-entropy, 1 - alpha for the offset MSE
    embed_dim: int = 128  # retrieval: shared embedding size
    location_hidden: int = 128  # retrieval: width of the location MLPs (small: they run on 1 000+ locations a step)
    location_encoder: str = "rff"  # retrieval: "rff" (Fourier features + MLP) or "mlp" (MLP only)
    sigmas: tuple[float, ...] = SIGMA_PRESETS["paper"]
    frequencies: int = 64  # retrieval: Fourier frequencies per sigma
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown head kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind != "retrieval" and self.classes < 1:
            raise ValueError(f"a {self.kind} head needs at least one class")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1; got {self.alpha}")
        if self.location_encoder not in ("rff", "mlp"):
            raise ValueError(f"location_encoder must be 'rff' or 'mlp'; got {self.location_encoder!r}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sigmas"] = list(self.sigmas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> HeadConfig:
        return cls(**{**data, "sigmas": tuple(float(s) for s in data.get("sigmas", SIGMA_PRESETS["paper"]))})


def mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with ReLU (and dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for index, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if index < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)] if dropout else [nn.ReLU()]
    return nn.Sequential(*layers)


class RegionLocationEncoder(nn.Module):
    """GPS -> Equal Earth -> (random Fourier features per sigma -> MLP, summed) or an MLP alone."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.kind = config.location_encoder
        hidden, out = config.location_hidden, config.embed_dim
        if self.kind == "rff":
            self.fourier = nn.ModuleList(RandomFourierFeatures(s, num_frequencies=config.frequencies)
                                         for s in config.sigmas)
            self.branches = nn.ModuleList(mlp([2 * config.frequencies, hidden, hidden, out]) for _ in config.sigmas)
        else:
            self.net = mlp([2, hidden, hidden, hidden, out])

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        projected = equal_earth_projection(latlon.float())
        if self.kind == "mlp":
            # The projected plane spans ~[-1, 1] worldwide; a region is a small patch of it, so the
            # MLP alone sees nearly constant inputs: that is the paper's point (it fails at 1-25 km).
            return self.net(projected)
        return sum(branch(fourier(projected)) for fourier, branch in zip(self.fourier, self.branches))


class RegionalHead(nn.Module):
    """Features [B, D] -> a dict of raw outputs (``logits``, ``offsets``, ``embedding``)."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        config.check()
        self.config = config
        d, h = config.feature_dim, config.hidden
        if config.kind == "retrieval":
            self.image = mlp([d, h, h, config.embed_dim], config.dropout)
            self.location = RegionLocationEncoder(config)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
            return
        self.trunk = mlp([d, h, h], config.dropout)
        self.trunk.append(nn.ReLU())
        self.classify = nn.Linear(h, config.classes)
        if config.kind in ("offset", "hybrid"):
            self.offset = nn.Linear(h, config.classes * 2)  # one (lat, lon) offset per class

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.config.kind == "retrieval":
            return {"embedding": F.normalize(self.image(features), dim=-1)}
        hidden = self.trunk(features)
        out = {"logits": self.classify(hidden)}
        if self.config.kind in ("offset", "hybrid"):
            out["offsets"] = torch.sigmoid(self.offset(hidden)).view(-1, self.config.classes, 2)
        return out

    def encode_locations(self, latlon: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.location(latlon), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=100.0)

    def similarity(self, embedding: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """Temperature-scaled cosine similarity [B, G] of image embeddings and location embeddings."""
        return self.scale() * embedding @ locations.T


def decode_offsets(offsets: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Normalised offsets [..., K, 2] (0-1 from the south-west corner) in boxes [K, 4] (S, W, N, E) -> lat/lon."""
    south_west = boxes[:, [0, 1]]
    size = boxes[:, [2, 3]] - south_west
    return south_west + offsets.clamp(0.0, 1.0) * size


def encode_offsets(latlon: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`decode_offsets` for each location's own box [B, 4] -> [B, 2] in 0-1."""
    size = (boxes[:, [2, 3]] - boxes[:, [0, 1]]).clamp(min=1e-6)
    return ((latlon - boxes[:, [0, 1]]) / size).clamp(0.0, 1.0)


def haversine_smoothed_targets(lat: np.ndarray, lon: np.ndarray, cell_coords: np.ndarray,
                               tau_km: float = 65.0) -> np.ndarray:
    """PIGEON's label smoothing: targets ∝ exp(-(d_j - d_min) / tau) over cells j, rows sum to 1."""
    from geoapp.geo.distance import haversine_km

    distances = haversine_km(np.asarray(lat)[:, None], np.asarray(lon)[:, None],
                             cell_coords[None, :, 0], cell_coords[None, :, 1])
    weights = np.exp(-(distances - distances.min(axis=1, keepdims=True)) / float(tau_km))
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Batch:
    """One training batch (tensors on the training device)."""

    features: torch.Tensor  # [B, D]
    latlon: torch.Tensor  # [B, 2] float32 degrees
    label: torch.Tensor | None = None  # [B] country (classifier/offset) or cell (cells/hybrid)
    target: torch.Tensor | None = None  # [B, K] soft targets (label smoothing), or None
    boxes: torch.Tensor | None = None  # [B, 4] the true class's box (offset/hybrid)
    negatives: torch.Tensor | None = None  # [M, 2] negative locations (retrieval)


def loss(head: RegionalHead, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's loss on one batch and its parts (for logs)."""
    kind = head.config.kind
    out = head(batch.features)
    if kind == "retrieval":
        locations = batch.latlon if batch.negatives is None else torch.cat([batch.latlon, batch.negatives])
        logits = head.similarity(out["embedding"], head.encode_locations(locations))
        # The i-th image goes with the i-th location; every other location is a negative.
        value = F.cross_entropy(logits, torch.arange(len(batch.latlon), device=logits.device))
        return value, {"ce": float(value.detach())}
    if batch.target is not None:
        ce = -(batch.target * F.log_softmax(out["logits"], dim=-1)).sum(dim=-1).mean()
    else:
        ce = F.cross_entropy(out["logits"], batch.label)
    if kind not in ("offset", "hybrid"):
        return ce, {"ce": float(ce.detach())}
    predicted = out["offsets"][torch.arange(len(batch.label)), batch.label]  # the true class's offset
    mse = F.mse_loss(predicted, encode_offsets(batch.latlon, batch.boxes))
    alpha = head.config.alpha
    return alpha * ce + (1 - alpha) * mse, {"ce": float(ce.detach()), "mse": float(mse.detach())}
