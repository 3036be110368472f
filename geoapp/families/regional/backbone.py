"""Frozen feature extractors for regional models (the same at build time and at prediction time).

``satworld``: the image encoder of the shipped SatWorld model (256-d; offline, but trained on
satellite crops); ``ViT-L-14``: CLIP's vision tower (768-d, GeoCLIP's backbone; needs ``python -m
geoapp weights download``); ``ViT-B-32``: CLIP ViT-B/32 from an open_clip checkpoint file you pass.
``auto`` (the build default) is ViT-L-14 when its weights are on this machine, else SatWorld's
encoder, whose caveat the build log and every prediction carry. With ``weights="random"`` the
architecture gets random weights (tests only; flagged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from geoapp.models.backbones import (
    BACKBONES,
    BackboneSpec,
    PreprocessConfig,
    build_clip_backbone,
)
from geoapp.models.preprocess import centre_crop_tensor, ten_crop_tensor

BACKBONE_NAMES = ("satworld", "ViT-B-32", "ViT-L-14")
AUTO = "auto"
SATWORLD_ON_GROUND_PHOTOS = ("SatWorld's encoder was trained on satellite imagery: its features are weak on "
                             "ground-level photos, and so is a model built on them. CLIP ViT-L/14 features suit "
                             "ground-level photos; builds use them automatically once its weights are here")


def resolve_backbone(name: str) -> str:
    """``auto`` -> ViT-L-14 when the CLIP ViT-L/14 weights are on this machine, else ``satworld``."""
    if name != AUTO:
        return name
    from geoapp.models import weights

    return "ViT-L-14" if weights.find(weights.CLIP_VIT_L14_OPENAI) is not None else "satworld"
VIT_B32 = BackboneSpec("ViT-B-32", "ViT-B-32-quickgelu", None)


@dataclass
class FeatureExtractor:
    """A frozen image encoder and how to prepare pixels for it."""

    name: str
    weights: str  # description of the weights ("satworld (satworld.pt)", "random", a path)
    network: torch.nn.Module  # has encode_image(pixels) -> [B, D]
    preprocess: PreprocessConfig
    device: torch.device

    @property
    def random(self) -> bool:
        return self.weights == "random"

    @property
    def identity(self) -> dict:
        return {"name": self.name, "weights": self.weights}

    def pixels(self, image: Image.Image, tencrop: bool = False) -> torch.Tensor:
        """[1 or 10, 3, S, S] normalised crops of one image."""
        return ten_crop_tensor(image, self.preprocess) if tencrop else centre_crop_tensor(image, self.preprocess)

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor, crops_per_image: int = 1) -> torch.Tensor:
        """Features [B, D] (float32, on CPU); the crops of one image are averaged."""
        features = self.network.encode_image(pixels.to(self.device)).float()
        return features.view(-1, crops_per_image, features.shape[-1]).mean(dim=1).cpu()

    def encode_images(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Features [N, D] float32 of PIL images (centre crop)."""
        chunks = [self.encode(torch.cat([self.pixels(im) for im in images[start:start + batch_size]]))
                  for start in range(0, len(images), batch_size)]
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), np.float32)


def load_extractor(name: str, weights: str | None = None, device: torch.device | str = "cpu") -> FeatureExtractor:
    """The named backbone, frozen, in eval mode (``weights``: None = pretrained, "random", or a path)."""
    device = torch.device(device)
    if name == "satworld":
        from geoapp.families import registry  # SatWorld's encoder, declared in its spec (families never import each other)

        network, description = registry.get("satworld").load_image_encoder(weights)
        preprocess = network.config.preprocess()
    elif name in ("ViT-L-14", "ViT-B-32"):
        spec = BACKBONES["ViT-L-14"] if name == "ViT-L-14" else VIT_B32
        if name == "ViT-B-32" and weights in (None, "pretrained"):
            raise ValueError("ViT-B-32 weights are not bundled: pass an open_clip checkpoint with "
                             "--backbone-weights PATH, or use --backbone ViT-L-14 (python -m geoapp weights download)")
        network, description = build_clip_backbone(spec, "pretrained" if weights is None else weights)
        preprocess = spec.preprocess
    else:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}")
    network.requires_grad_(False)
    return FeatureExtractor(name, description, network.to(device).eval(), preprocess, device)
