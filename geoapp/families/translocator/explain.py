"""Grad-CAM for TransLocator: the logit of one fine geocell, one map per branch (photo, segmentation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from geoapp.families.base import GradCamResult
from geoapp.runtime.cam import LogitTarget, cam_result, compute_cam, vit_reshape_transform


class _FineCellLogitModel(nn.Module):
    """[B, 6, H, W] (RGB ‖ colourised segmentation, both normalised) -> fine-cell logits [B, cells].

    pytorch-grad-cam feeds one input tensor; stacking the two inputs on the channel axis keeps
    both branches in one differentiable forward.
    """

    def __init__(self, translocator: nn.Module) -> None:
        super().__init__()
        self.translocator = translocator

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        seg = stacked[:, 3:] if stacked.shape[1] == 6 else None
        return self.translocator(stacked[:, :3], seg).cell_logits[2]


@dataclass
class TransLocatorGradCam:
    """One Grad-CAM per branch for the same fine geocell."""

    rgb: GradCamResult
    segmentation: GradCamResult | None  # None for the single-branch ViT-MT
    cell_index: int
    lat: float  # the cell's mean photo position
    lon: float


def nearest_fine_cell(locator, lat: float, lon: float) -> int:
    """Index of the fine geocell whose mean position is closest to (lat, lon)."""
    from geoapp.geo.distance import haversine_km, validate_latlon

    validate_latlon(lat, lon)
    fine = locator.cells.fine
    return int(np.argmin(haversine_km(lat, lon, fine.lat, fine.lon)))


def gradcam_translocator(locator, image, cell_index: int | None = None) -> TransLocatorGradCam:
    """Grad-CAM of both branches for fine cell ``cell_index`` (default: the top cell of the centre crop)."""
    from geoapp.families.translocator.network import IN21K_MEAN, IN21K_STD, SEG_MEAN, SEG_STD

    model = locator.model
    cells = len(locator.cells.fine)
    loaded = locator.load_image(image)
    rgb, seg, _ = locator.model_inputs(locator.crops(loaded.image))
    if cell_index is None:
        cell_index = int(locator.forward(rgb, seg, 1)["fine"][0].argmax())
    if not 0 <= int(cell_index) < cells:
        raise ValueError(f"cell_index must be between 0 and {cells - 1}; got {cell_index}")
    stacked = torch.cat([rgb, seg], dim=1) if seg is not None and model.config.dual_branch else rgb
    network = _FineCellLogitModel(model).eval()
    reshape = vit_reshape_transform(tuple(model.grid_size), model.num_prefix_tokens)
    lat, lon = float(locator.cells.fine.lat[cell_index]), float(locator.cells.fine.lon[cell_index])
    target = f"logit of fine geocell {cell_index} ({lat:.4f}, {lon:.4f})"
    results: dict[str, GradCamResult] = {}
    for branch, layer in model.gradcam_layers().items():
        maps = compute_cam(network, [layer], stacked, [LogitTarget(cell_index)], reshape)
        pixels, mean, std = (rgb[0], IN21K_MEAN, IN21K_STD) if branch == "rgb" else (seg[0], SEG_MEAN, SEG_STD)
        results[branch] = cam_result(maps[0], pixels, mean, std,
                                     f"{target}, {'RGB' if branch == 'rgb' else 'segmentation'} branch",
                                     locator.random_weights)
    return TransLocatorGradCam(results["rgb"], results.get("seg"), int(cell_index), lat, lon)
