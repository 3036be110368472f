"""Grad-CAM: which parts of the photo drove the match with a candidate location.

Built on pytorch-grad-cam. Its targets are plain callables on the model output, so each
model family plugs in its own: for GeoCLIP the output is the normalised image embedding
and the target is the cosine similarity with the chosen candidate's location embedding;
a classifier plugs in a geocell-logit target with the same machinery.
For TransLocator the target is the logit of one fine geocell (:class:`CellLogitTarget`) and
there is one map per branch (RGB photo, segmentation map), from the last block of each ViT.
The token -> grid reshape is derived from the ViT itself (no hard-coded 14x14).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn


def vit_reshape_transform(grid_size: tuple[int, int], prefix_tokens: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """[B, tokens, C] activations (CLS first) -> [B, C, H, W] maps, as CAM methods expect."""
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


class _ImageEmbeddingModel(nn.Module):
    """Pixels -> GeoCLIP image embedding: the forward Grad-CAM differentiates."""

    def __init__(self, geoclip: nn.Module) -> None:
        super().__init__()
        self.geoclip = geoclip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.geoclip.encode_image(pixels)


@dataclass
class GradCamResult:
    heatmap: np.ndarray  # [H, W] float32 in [0, 1]
    overlay: Image.Image  # heatmap blended on the analysed crop
    crop: Image.Image  # the pixels the model saw
    target: str
    random_weights: bool

    def side_by_side(self) -> Image.Image:
        """The analysed crop and its overlay next to each other (for reports)."""
        canvas = Image.new("RGB", (self.crop.width * 2 + 8, self.crop.height), "white")
        canvas.paste(self.crop, (0, 0))
        canvas.paste(self.overlay, (self.crop.width + 8, 0))
        return canvas


def compute_cam(model: nn.Module, target_layers: Sequence[nn.Module], pixels: torch.Tensor,
                targets: Sequence[Callable], reshape_transform: Callable | None) -> np.ndarray:
    """Run Grad-CAM and return [B, H, W] maps in [0, 1]; hooks are released on exit."""
    from pytorch_grad_cam import GradCAM

    # The backbone is frozen (no parameter needs gradients), so the input must ask for them,
    # otherwise no activation carries a gradient and the CAM hooks never fire.
    pixels = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad(), GradCAM(model=model, target_layers=list(target_layers),
                                      reshape_transform=reshape_transform) as cam:
        maps = cam(input_tensor=pixels, targets=list(targets))
    return np.nan_to_num(np.asarray(maps, dtype=np.float32))


def _to_crop_image(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo normalisation: [3, H, W] tensor -> float RGB [H, W, 3] in [0, 1]."""
    image = pixels.detach().cpu().float() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def gradcam_for_location(locator, image, lat: float, lon: float) -> GradCamResult:
    """Grad-CAM of a GeoCLIP :class:`~geoapp.predict.Geolocator` for the candidate at (lat, lon).

    For a TransLocator geolocator: the RGB branch's map for the fine geocell nearest to (lat, lon)
    (:func:`gradcam_translocator` gives both branches). For the ensemble: its GeoCLIP member's map.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from geoapp.models.preprocess import centre_crop_tensor

    if getattr(locator, "model_family", "geoclip") == "ensemble":
        return gradcam_for_location(locator.geoclip, image, lat, lon)  # the ensemble re-ranks by GeoCLIP similarity
    if getattr(locator, "model_family", "geoclip") == "translocator":
        return gradcam_translocator(locator, image, cell_index=nearest_fine_cell(locator, lat, lon)).rgb

    model = locator.model
    cfg = model.backbone.spec.preprocess
    loaded = locator.load_image(image)
    pixels = centre_crop_tensor(loaded.image, cfg).to(locator.device)
    location = locator.encode_locations([[lat, lon]])[0]
    visual = model.backbone.visual
    # ln_1 of the last block: its output still carries per-patch tokens (the CLS pooling comes after).
    target_layer = visual.transformer.resblocks[-1].ln_1
    maps = compute_cam(_ImageEmbeddingModel(model).eval(), [target_layer], pixels,
                       [EmbeddingSimilarityTarget(location)], vit_reshape_transform(tuple(visual.grid_size)))
    heatmap = maps[0]
    peak = float(heatmap.max())
    if peak > 0:
        heatmap = heatmap / peak
    crop = _to_crop_image(pixels[0], cfg.mean, cfg.std)
    overlay = show_cam_on_image(crop, heatmap, use_rgb=True, image_weight=0.55)
    return GradCamResult(
        heatmap=heatmap.astype(np.float32),
        overlay=Image.fromarray(overlay),
        crop=Image.fromarray((crop * 255).round().astype(np.uint8)),
        target=f"cosine similarity to the location embedding of ({lat:.4f}, {lon:.4f})",
        random_weights=locator.random_weights,
    )


# ---------------------------------------------------------------------------------------------- TransLocator
class CellLogitTarget:
    """Grad-CAM target: the logit of geocell ``index`` in a classifier's output ([cells] per image)."""

    def __init__(self, index: int) -> None:
        self.index = int(index)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output[..., self.index].float().sum()


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
    """Grad-CAM of both branches of a TransLocator geolocator for fine cell ``cell_index``
    (default: the top-scoring cell of the centre crop)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from geoapp.models.translocator import IN21K_MEAN, IN21K_STD, SEG_MEAN, SEG_STD

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
        maps = compute_cam(network, [layer], stacked, [CellLogitTarget(cell_index)], reshape)
        heatmap = maps[0]
        peak = float(heatmap.max())
        if peak > 0:
            heatmap = heatmap / peak
        pixels, mean, std = (rgb[0], IN21K_MEAN, IN21K_STD) if branch == "rgb" else (seg[0], SEG_MEAN, SEG_STD)
        crop = _to_crop_image(pixels, mean, std)
        overlay = show_cam_on_image(crop, heatmap, use_rgb=True, image_weight=0.55)
        results[branch] = GradCamResult(heatmap=heatmap.astype(np.float32), overlay=Image.fromarray(overlay),
                                        crop=Image.fromarray((crop * 255).round().astype(np.uint8)),
                                        target=f"{target}, {'RGB' if branch == 'rgb' else 'segmentation'} branch",
                                        random_weights=locator.random_weights)
    return TransLocatorGradCam(results["rgb"], results.get("seg"), int(cell_index), lat, lon)
