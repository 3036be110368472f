"""TransLocator's training objective (eq. 8): weighted, label-smoothed cross-entropies.

``(1 - α - β) L_coarse + α L_middle + β L_fine + γ L_scene``. Rows labelled -1 are ignored
(photos outside every cell, or without a scene label); ``L_scene`` is the mean over the scene
levels (3 / 16 / 365 classes) that have at least one label, and 0 when none has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from geoapp.families.translocator.network import TransLocatorOutput


@dataclass
class TransLocatorTargets:
    cells: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # coarse, middle, fine cell index [B] (-1 = none)
    scenes: tuple[torch.Tensor, ...] | None = None  # per scene level [B] (-1 = unknown)

    @classmethod
    def coerce(cls, targets: "TransLocatorTargets | Mapping | torch.Tensor") -> "TransLocatorTargets":
        """Accept the dataclass, a mapping (coarse/middle/fine[/scenes]) or a [B, 3 + scene levels] tensor."""
        if isinstance(targets, cls):
            return targets
        if isinstance(targets, torch.Tensor):
            if targets.dim() != 2 or targets.shape[1] < 3:
                raise ValueError(f"target tensor must be [batch, 3 + scene levels], got {tuple(targets.shape)}")
            columns = targets.long().unbind(dim=1)
            return cls(tuple(columns[:3]), tuple(columns[3:]) or None)
        if isinstance(targets, Mapping):
            missing = [key for key in ("coarse", "middle", "fine") if key not in targets]
            if missing:
                raise ValueError(f"targets lack {', '.join(missing)}")
            scenes = targets.get("scenes")
            if isinstance(scenes, torch.Tensor):
                scenes = tuple(scenes.long().unbind(dim=1)) if scenes.dim() == 2 else (scenes.long(),)
            return cls(tuple(torch.as_tensor(targets[key]).long() for key in ("coarse", "middle", "fine")),
                       tuple(scenes) if scenes is not None else None)
        raise TypeError(f"unsupported targets type {type(targets).__name__}")


def _ce(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor | None:
    """Mean label-smoothed CE over labelled rows; None when no row has a label (avoids NaN)."""
    labels = labels.to(logits.device)
    if not bool((labels >= 0).any()):
        return None
    return F.cross_entropy(logits.float(), labels, ignore_index=-1, label_smoothing=label_smoothing)


def translocator_loss(output: "TransLocatorOutput", targets: "TransLocatorTargets | Mapping | torch.Tensor", alpha: float,
                      beta: float, gamma: float, label_smoothing: float = 0.1) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 8: ``(1-α-β) L_coarse + α L_middle + β L_fine + γ L_scene``; returns (loss, float parts)."""
    if min(alpha, beta, gamma) < 0 or alpha + beta > 1:
        raise ValueError(f"need α, β, γ >= 0 and α + β <= 1 (got α={alpha}, β={beta}, γ={gamma})")
    target = TransLocatorTargets.coerce(targets)
    device = output.cell_logits[0].device
    zero = torch.zeros((), device=device)
    cell_losses = [_ce(logits, labels, label_smoothing) for logits, labels in zip(output.cell_logits, target.cells)]
    cell_losses = [zero if loss is None else loss for loss in cell_losses]
    scene_losses = []
    if target.scenes is not None:
        if len(target.scenes) != len(output.scene_logits):
            raise ValueError(f"{len(target.scenes)} scene label levels for {len(output.scene_logits)} scene heads")
        scene_losses = [loss for loss in (_ce(logits, labels, label_smoothing)
                                          for logits, labels in zip(output.scene_logits, target.scenes)) if loss is not None]
    scene_loss = torch.stack(scene_losses).mean() if scene_losses else zero
    coarse, middle, fine = cell_losses
    total = (1 - alpha - beta) * coarse + alpha * middle + beta * fine + gamma * scene_loss
    parts = {name: float(value.detach()) for name, value in (("coarse", coarse), ("middle", middle), ("fine", fine),
                                                              ("scene", scene_loss), ("total", total))}
    return total, parts
