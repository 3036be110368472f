"""Grad-CAM plumbing shared by every family (pytorch-grad-cam underneath).

Targets are plain callables on the model output, so each family plugs in its own: a similarity to
a location embedding (retrieval families), the logit of one cell (classifiers). The token -> grid
reshape is derived from the ViT itself (no hard-coded 14x14). Hooks are released on exit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from geoapp.results.prediction import GradCamResult


def vit_reshape_transform(grid_size: tuple[int, int], prefix_tokens: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """[B, tokens, C] activations (prefix tokens first) -> [B, C, H, W] maps, as CAM methods expect."""
    height, width = grid_size

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"expected [batch, tokens, channels] activations, got {tuple(tokens.shape)}")
        patches = tokens[:, prefix_tokens:, :]
        if patches.shape[1] != height * width:
            raise ValueError(f"{patches.shape[1]} patch tokens do not fill a {height}x{width} grid")
        return patches.reshape(tokens.shape[0], height, width, tokens.shape[2]).permute(0, 3, 1, 2)

    return reshape


class EmbeddingSimilarityTarget:
    """Grad-CAM target: cosine similarity between the model's embedding output and a fixed embedding."""

    def __init__(self, embedding: torch.Tensor) -> None:
        self.embedding = F.normalize(embedding.detach().flatten().float(), dim=0)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        output = F.normalize(model_output.float().flatten(), dim=0)
        return (output * self.embedding.to(output.device)).sum()


class LogitTarget:
    """Grad-CAM target: the logit of class ``index`` (a geocell, a country ...) in a classifier's output."""

    def __init__(self, index: int) -> None:
        self.index = int(index)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output[..., self.index].float().sum()


def compute_cam(model: nn.Module, target_layers: Sequence[nn.Module], pixels: torch.Tensor,
                targets: Sequence[Callable], reshape_transform: Callable | None) -> np.ndarray:
    """Run Grad-CAM and return [B, H, W] maps in [0, 1]; hooks are released on exit."""
    from pytorch_grad_cam import GradCAM

    # Frozen backbones have no parameter that needs gradients, so the input must ask for them,
    # otherwise no activation carries a gradient and the CAM hooks never fire.
    pixels = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad(), GradCAM(model=model, target_layers=list(target_layers),
                                      reshape_transform=reshape_transform) as cam:
        maps = cam(input_tensor=pixels, targets=list(targets))
    return np.nan_to_num(np.asarray(maps, dtype=np.float32))


def to_crop_image(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo normalisation: [3, H, W] tensor -> float RGB [H, W, 3] in [0, 1]."""
    image = pixels.detach().cpu().float() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def cam_result(heatmap: np.ndarray, pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float], target: str,
               random_weights: bool) -> GradCamResult:
    """A map normalised to its peak, blended on the crop it was computed for."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    peak = float(heatmap.max())
    if peak > 0:
        heatmap = heatmap / peak
    crop = to_crop_image(pixels, mean, std)
    overlay = show_cam_on_image(crop, heatmap, use_rgb=True, image_weight=0.55)
    return GradCamResult(heatmap=heatmap.astype(np.float32), overlay=Image.fromarray(overlay),
                         crop=Image.fromarray((crop * 255).round().astype(np.uint8)), target=target,
                         random_weights=random_weights)


def gradcam_note(tower) -> str:
    """What a Grad-CAM target says when predictions run on another engine: Grad-CAM needs gradients, so it always
    runs on the torch model (fp32), which an int8 or exported tower only approximates."""
    if tower.runtime == "torch":
        return ""
    return f" (Grad-CAM computed on the torch fp32 model; predictions ran on {tower.runtime} {tower.precision})"
