"""TransLocator's augmentation on a photo and its segmentation map, with one geometry for both.

Training (the paper, and its authors' code): RandomAffine with a rotation of 0-15°, horizontal
flip, resize (shorter side 256), random 224 crop, then ColorJitter(0.4, 0.4, 0.4, 0.1) with
p = 0.8 on the photo only. Every geometric step uses the *same* random parameters for the
photo and the map (bilinear for the photo, nearest neighbour for the class map, so class ids
are never blended); pixels rotated in from outside the image are black in the photo and
:data:`SEG_VOID` in the map (drawn black too). Evaluation: resize 256, TenCrop 224 (four
corners + centre, and their mirror images), as at inference.

All draws come from a ``torch.Generator`` passed in, so a sample's views depend only on the
seed it is given (not on worker processes or the order of the data).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

SEG_VOID = 255  # "no class": outside the photo after a rotation, or unlabelled


@dataclass(frozen=True)
class PairedAugmentation:
    """Parameters of the training views (paper defaults for 224 px crops)."""

    crop: int = 224
    resize: int = 256  # shorter side before cropping (the TenCrop recipe: crop * 8 / 7)
    rotation_deg: tuple[float, float] = (0.0, 15.0)  # RandomAffine(degrees=(0, 15))
    flip: bool = True
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8

    @classmethod
    def for_crop(cls, crop: int, **overrides) -> "PairedAugmentation":
        """The paper's recipe scaled to another crop size (resize = crop * 256 / 224)."""
        return cls(crop=crop, resize=int(round(crop * 256 / 224)), **overrides)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


def geometric_views(rgb: torch.Tensor, class_map: torch.Tensor | None, aug: PairedAugmentation,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rotation, flip, resize and random crop: uint8 [3, H, W] (+ uint8 [H, W]) -> [3, S, S] (+ [S, S])."""
    if rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be a uint8 [3, H, W] tensor, got {rgb.dtype} {tuple(rgb.shape)}")
    if class_map is not None and tuple(class_map.shape) != tuple(rgb.shape[1:]):
        raise ValueError(f"segmentation map {tuple(class_map.shape)} does not match the image {tuple(rgb.shape[1:])}")
    seg = None if class_map is None else class_map.to(torch.uint8).unsqueeze(0)
    # Resize first: a rotation about the centre commutes with a uniform scaling about it, so this
    # is the paper's affine -> resize at a fraction of the cost on full-size photos.
    rgb = TF.resize(rgb, aug.resize, interpolation=InterpolationMode.BILINEAR, antialias=True)
    if seg is not None:
        seg = TF.resize(seg, aug.resize, interpolation=InterpolationMode.NEAREST)
    angle = _uniform(generator, *aug.rotation_deg)
    if angle != 0.0:
        rgb = TF.affine(rgb, angle=angle, translate=[0, 0], scale=1.0, shear=[0.0, 0.0],
                        interpolation=InterpolationMode.BILINEAR, fill=[0.0])
        if seg is not None:
            seg = TF.affine(seg, angle=angle, translate=[0, 0], scale=1.0, shear=[0.0, 0.0],
                            interpolation=InterpolationMode.NEAREST, fill=[float(SEG_VOID)])
    if aug.flip and bool(torch.rand((), generator=generator) < 0.5):
        rgb = TF.hflip(rgb)
        seg = None if seg is None else TF.hflip(seg)
    height, width = rgb.shape[1:]
    if min(height, width) < aug.crop:
        raise ValueError(f"resize {aug.resize} is smaller than the crop {aug.crop}")
    top = int(torch.randint(0, height - aug.crop + 1, (), generator=generator))
    left = int(torch.randint(0, width - aug.crop + 1, (), generator=generator))
    rgb = TF.crop(rgb, top, left, aug.crop, aug.crop)
    seg = None if seg is None else TF.crop(seg, top, left, aug.crop, aug.crop)[0]
    return rgb, seg


def colour_jitter(rgb: torch.Tensor, aug: PairedAugmentation, generator: torch.Generator) -> torch.Tensor:
    """torchvision's ColorJitter semantics (factors uniform in [1-x, 1+x], hue in [-h, h], random
    order), applied with probability ``jitter_p``; uint8 [3, S, S] in and out."""
    if not bool(torch.rand((), generator=generator) < aug.jitter_p):
        return rgb
    steps = []
    if aug.brightness:
        factor = _uniform(generator, max(0.0, 1 - aug.brightness), 1 + aug.brightness)
        steps.append(lambda image, f=factor: TF.adjust_brightness(image, f))
    if aug.contrast:
        factor = _uniform(generator, max(0.0, 1 - aug.contrast), 1 + aug.contrast)
        steps.append(lambda image, f=factor: TF.adjust_contrast(image, f))
    if aug.saturation:
        factor = _uniform(generator, max(0.0, 1 - aug.saturation), 1 + aug.saturation)
        steps.append(lambda image, f=factor: TF.adjust_saturation(image, f))
    if aug.hue:
        shift = _uniform(generator, -aug.hue, aug.hue)
        steps.append(lambda image, f=shift: TF.adjust_hue(image, f))
    # Pillow's C implementations are ~10x faster than torchvision's tensor colour ops on CPU.
    image = TF.to_pil_image(rgb)
    for position in torch.randperm(len(steps), generator=generator).tolist():
        image = steps[position](image)
    return TF.pil_to_tensor(image)


def training_views(rgb: torch.Tensor, class_map: torch.Tensor | None, aug: PairedAugmentation,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(jittered photo, the same crop before jitter, map) — the plain crop is what an on-the-fly
    segmenter must see, so the map describes the scene and not the colour noise."""
    plain, seg = geometric_views(rgb, class_map, aug, generator)
    return colour_jitter(plain, aug, generator), plain, seg


def ten_crop_views(rgb: torch.Tensor, class_map: torch.Tensor | None, crop: int, resize: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Evaluation: shorter side to ``resize`` (default crop * 256 / 224), TenCrop -> [10, 3, S, S] (+ [10, S, S])."""
    resize = resize or int(round(crop * 256 / 224))
    rgb = TF.resize(rgb, resize, interpolation=InterpolationMode.BILINEAR, antialias=True)
    crops = torch.stack(TF.ten_crop(rgb, crop))
    if class_map is None:
        return crops, None
    seg = TF.resize(class_map.to(torch.uint8).unsqueeze(0), resize, interpolation=InterpolationMode.NEAREST)
    return crops, torch.stack(TF.ten_crop(seg, crop))[:, 0]


def centre_crop_views(rgb: torch.Tensor, class_map: torch.Tensor | None, crop: int, resize: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Evaluation without TenCrop: resize + centre crop -> [1, 3, S, S] (+ [1, S, S])."""
    resize = resize or int(round(crop * 256 / 224))
    rgb = TF.center_crop(TF.resize(rgb, resize, interpolation=InterpolationMode.BILINEAR, antialias=True), crop)
    if class_map is None:
        return rgb.unsqueeze(0), None
    seg = TF.resize(class_map.to(torch.uint8).unsqueeze(0), resize, interpolation=InterpolationMode.NEAREST)
    return rgb.unsqueeze(0), TF.center_crop(seg, crop)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator for one sample's views: depends on (seed, epoch, index) only."""
    mixed = (seed * 1_000_003 + epoch) * 2_147_483_647 + index
    return torch.Generator().manual_seed(mixed % (2**63 - 1))
