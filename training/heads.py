"""The trainable part of GeoCLIP: image head, location encoder, logit scale.

The CLIP backbone is frozen, so training needs only these (its features come either from
:mod:`training.features` or from a backbone forward outside the DDP-wrapped module).
:class:`GeoCLIPHeads` has the same attribute names as :class:`geoapp.models.geoclip.GeoCLIP`
(``image_head``, ``location_encoder``, ``logit_scale``), so geoapp's own
``load_pretrained_heads`` / ``save_heads_checkpoint`` / ``load_heads_checkpoint`` work on it
unchanged and a checkpoint written here loads with ``Geolocator.load(heads=path)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from geoapp.models.geoclip import CLIP_FEATURE_DIM, ImageHead, load_heads_checkpoint, load_pretrained_heads
from geoapp.models.location_encoder import DEFAULT_SIGMAS, LocationEncoder

FINE_SIGMA = 2.0**12  # ~ km-scale Fourier features on GeoCLIP's Equal Earth plane (street level)
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: keeps the learnable temperature from running away


class GeoCLIPHeads(nn.Module):
    """image features [B, 768] and GPS [M, 2] -> logits [B, M] (scaled cosine similarity)."""

    def __init__(self, location_encoder: LocationEncoder | None = None, in_features: int = CLIP_FEATURE_DIM) -> None:
        super().__init__()
        self.image_head = ImageHead(in_features)
        self.location_encoder = location_encoder or LocationEncoder()
        # Learnable temperature, initialised to 1/0.07 (paper §4, as CLIP).
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.batched_branches = False  # LocationEncoder.forward_batched: same values, fewer kernels

    def forward(self, image_features: torch.Tensor, latlon: torch.Tensor) -> torch.Tensor:
        image = F.normalize(self.image_head(image_features.float()), dim=-1)
        encode = self.location_encoder.forward_batched if self.batched_branches else self.location_encoder
        locations = F.normalize(encode(latlon.float()), dim=-1)
        # The similarity and the softmax that follows stay float32 under autocast (logit scale up to 100).
        with torch.autocast(image.device.type, enabled=False):
            return self.logit_scale.exp() * image.float() @ locations.float().T

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        self.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)


def add_fine_branch(heads: GeoCLIPHeads, sigma: float = FINE_SIGMA, zero_init: bool = True) -> GeoCLIPHeads:
    """Replace the location encoder by one with an extra Fourier branch at ``sigma``.

    The existing branches (their frozen Fourier matrices and trained MLPs) are copied. With
    ``zero_init`` the new branch's output layer starts at zero, so the model computes exactly
    what it did before and fine-tuning only has to learn the street-level residual; the
    branch's Fourier matrix and MLP are freshly sampled.
    """
    old = heads.location_encoder
    if sigma in old.sigmas:
        raise ValueError(f"the location encoder already has a branch with sigma={sigma}")
    new = LocationEncoder((*old.sigmas, sigma), out_features=old.out_features)
    for target, source in zip(new.branches, old.branches):
        target.load_state_dict(source.state_dict())
    if zero_init:
        nn.init.zeros_(new.branches[-1].head.weight)
        nn.init.zeros_(new.branches[-1].head.bias)
    heads.location_encoder = new.to(heads.logit_scale.device)
    return heads


def build_heads(init: str | Path = "pretrained", fine_branch: bool = False, seed: int = 0) -> tuple[GeoCLIPHeads, str]:
    """Trainable heads and a description of where they started.

    ``init``: ``"pretrained"`` (the published GeoCLIP heads, for fine-tuning), ``"random"``
    (train from scratch), or a geoapp heads checkpoint (continue from it). ``fine_branch``
    adds the σ = 2^12 branch (zero-initialised when starting from trained weights).
    Seeded, so every DDP rank builds the same initial model.
    """
    # A private RNG stream: seeded for reproducibility without resetting the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_heads(init, fine_branch)


def _build_heads(init: str | Path, fine_branch: bool) -> tuple[GeoCLIPHeads, str]:
    if init == "random":
        sigmas = (*DEFAULT_SIGMAS, FINE_SIGMA) if fine_branch else DEFAULT_SIGMAS
        return GeoCLIPHeads(LocationEncoder(sigmas)), f"random (sigmas {list(sigmas)})"
    heads = GeoCLIPHeads()
    if init == "pretrained":
        load_pretrained_heads(heads)  # duck-typed: only image_head / location_encoder / logit_scale are used
        description = "pretrained GeoCLIP heads"
    else:
        load_heads_checkpoint(heads, Path(init))
        description = f"checkpoint {init}"
    if fine_branch and FINE_SIGMA not in heads.location_encoder.sigmas:
        add_fine_branch(heads)
        description += f" + fine branch sigma={FINE_SIGMA:g} (zero-initialised head)"
    return heads, description
