"""GeoCLIP's contrastive image->GPS objective with the dynamic GPS queue (paper §3.2).

For a batch of B image features and their B coordinates, the candidates are
``[batch GPS ; queue GPS]`` (B + Q points, both with fresh Gaussian ground noise), all
encoded by the current location encoder; the loss is the cross-entropy of each image's
scaled cosine similarities against the candidates, the correct one being its own GPS
(index i). Only image->GPS is used, as in the paper and the reference trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.gps import GPSQueue, add_gps_noise


def contrastive_loss(model: nn.Module, features: torch.Tensor, latlon: torch.Tensor, queue: GPSQueue,
                     noise_m: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Loss for one batch; ``model(features, coords)`` returns logits [B, len(coords)].

    The queue is read, not updated: the caller enqueues the (gathered) batch GPS after the
    step, so a batch never sees its own coordinates as negatives.
    """
    queue_coords = queue.get().to(latlon.device)
    candidates = torch.cat([add_gps_noise(latlon, noise_m, generator), add_gps_noise(queue_coords, noise_m, generator)])
    logits = model(features, candidates)
    if features.shape[0] == 0:
        # An empty batch (all its images unreadable) still takes part in DDP's gradient
        # all-reduce, with zero gradients, so that the other ranks do not wait forever.
        return logits.sum() * 0.0
    targets = torch.arange(features.shape[0], device=logits.device)
    return F.cross_entropy(logits, targets)
