"""Image -> normalised pixel tensors: CLIP centre crop or TenCrop, and whole-image batches for dense models.

Single crop follows CLIP's own preprocessing (bicubic resize of the shorter side to 224,
centre crop, OpenAI mean/std). TenCrop, used for the GeoCLIP paper's evaluation, resizes
the shorter side to 256 and takes the four corner crops, the centre crop and their
horizontal flips (the standard torchvision ``TenCrop``); their logits are averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from geoapp.models.backbones import PreprocessConfig

_INTERPOLATION = {
    "bicubic": TF.InterpolationMode.BICUBIC,
    "bilinear": TF.InterpolationMode.BILINEAR,
}


def _normalise(pixels: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> float, CLIP mean/std."""
    return TF.normalize(pixels.float().div_(255.0), cfg.mean, cfg.std)


def centre_crop_tensor(image: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    """[1, 3, S, S] tensor of the centre crop."""
    resized = TF.resize(image.convert("RGB"), cfg.image_size, interpolation=_INTERPOLATION[cfg.interpolation])
    cropped = TF.center_crop(resized, cfg.image_size)
    return _normalise(TF.pil_to_tensor(cropped), cfg).unsqueeze(0)


def ten_crop_tensor(image: Image.Image, cfg: PreprocessConfig) -> torch.Tensor:
    """[10, 3, S, S] tensor: 5 crops (4 corners + centre) and their horizontal flips."""
    resized = TF.resize(image.convert("RGB"), cfg.tencrop_resize, interpolation=_INTERPOLATION[cfg.interpolation])
    # Crop the uint8 tensor once resized: ten slices of one array, not ten PIL round trips.
    crops = torch.stack(TF.ten_crop(TF.pil_to_tensor(resized), cfg.image_size))
    return _normalise(crops, cfg)


def decode_side(cfg: PreprocessConfig, tencrop: bool) -> int:
    """Smallest image side the decoder must keep (JPEG draft decoding may go down to it)."""
    return cfg.tencrop_resize if tencrop else cfg.image_size


def batch_to_network_input(images: torch.Tensor, size: int | tuple[int, int], mean, std, device: torch.device,
                           caller: str) -> torch.Tensor:
    """A uint8 (0-255) or float (0-1) RGB batch [B, 3, H, W] -> resized (bilinear, antialiased), normalised float.

    Used by the dense models (segmenter, scene labeller) that take whole images rather than crops;
    ``caller`` names the method in the error a wrong input gets.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{caller}() takes a torch tensor [B, 3, H, W]; got {type(images).__name__} "
                        f"(use {caller}_pil for a PIL image)")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be shaped [B, 3, H, W] (RGB); got {tuple(images.shape)}")
    if images.shape[0] == 0 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"images must be non-empty; got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        pixels = images.to(device, torch.float32) / 255.0
    elif images.is_floating_point():
        pixels = images.to(device, torch.float32)
    else:
        raise ValueError(f"images must be uint8 (0-255) or float (0-1); got {images.dtype}")
    pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (pixels - mean) / std
