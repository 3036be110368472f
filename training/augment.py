"""Image views for training from photos (paper §4: SimCLR-style augmentation).

RandomResizedCrop, horizontal flip, colour jitter (p = 0.8) and grayscale (p = 0.2), as in
the reference ``img_train_transform``. One deliberate difference: we normalise with the
backbone's own mean/std (OpenAI CLIP's), the values its features were trained with and that
inference uses; the reference normalises training views with ImageNet's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from geoapp.models.backbones import PreprocessConfig
from geoapp.models.preprocess import centre_crop_tensor


def train_transform(cfg: PreprocessConfig, scale: tuple[float, float] = (0.08, 1.0)) -> Callable[[Image.Image], torch.Tensor]:
    """One random SimCLR view: PIL RGB -> normalised float tensor [3, S, S]."""
    return transforms.Compose([
        transforms.RandomResizedCrop(cfg.image_size, scale=scale, interpolation=InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.PILToTensor(),
        transforms.ConvertImageDtype(torch.float),
        transforms.Normalize(cfg.mean, cfg.std),
    ])


def eval_transform(cfg: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """The inference preprocessing (CLIP centre crop), as a per-image transform [3, S, S]."""
    return lambda image: centre_crop_tensor(image, cfg)[0]
