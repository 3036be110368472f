"""Frozen CLIP image/text backbones built with open_clip, and their preprocessing.

An architecture is data (an open_clip model config) and is kept apart from its weights
(a :class:`~geoapp.models.weights.WeightFile`), so that the same code builds the real
ViT-L/14 with OpenAI weights, the same architecture with random weights (tests and
benchmarks), or a tiny stand-in for fast unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from geoapp.models import weights as weight_files
from geoapp.models.weights import WeightFile

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
RANDOM_BACKBONE_SEED = 0  # backbone_weights="random" always builds the same model (see build_clip_backbone)


@dataclass(frozen=True)
class PreprocessConfig:
    """How pixels must be prepared for a backbone (CLIP: bicubic shortest-side resize + centre crop)."""

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    # TenCrop (paper evaluation): resize the shorter side to this, then take 5 crops + flips.
    tencrop_resize: int = 256


@dataclass(frozen=True)
class BackboneSpec:
    """An open_clip architecture plus the pretrained file that fits it."""

    name: str
    open_clip_config: str | dict  # an open_clip config name, or the config itself
    pretrained: WeightFile | None
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def model_config(self) -> dict:
        if isinstance(self.open_clip_config, dict):
            return dict(self.open_clip_config)
        import open_clip

        config = open_clip.get_model_config(self.open_clip_config)
        if config is None:
            raise ValueError(f"open_clip has no model config named {self.open_clip_config!r}")
        return config


# OpenAI's CLIP uses QuickGELU: the OpenAI weights must go into the -quickgelu variant.
VIT_L14_OPENAI = BackboneSpec("ViT-L-14", "ViT-L-14-quickgelu", weight_files.CLIP_VIT_L14_OPENAI)

# A few-layer CLIP with the same interface (768-d projected features, 224 px, CLIP tokenizer):
# unit tests run the whole pipeline with it in milliseconds. Never used for real results.
TINY_TEST = BackboneSpec(
    "tiny-test",
    {
        "embed_dim": 768,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    },
    None,
)

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in (VIT_L14_OPENAI, TINY_TEST)}


class ClipBackbone(nn.Module):
    """open_clip CLIP model, frozen; exposes projected image and text features."""

    def __init__(self, spec: BackboneSpec, clip_model: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.clip = clip_model
        self.clip.requires_grad_(False)
        self.clip.eval()

    @property
    def embed_dim(self) -> int:
        return int(self.clip.text_projection.shape[1])

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Projected text features; same values as ``clip.encode_text``, computed on fewer positions.

        CLIP's text tower is causal and pools at the end-of-text token (the largest id), so the
        positions after it never reach the result: run only up to the longest sequence in the
        batch instead of all 77 (a short query costs a fraction of the compute).
        """
        clip = self.clip
        if getattr(clip, "text_pool_type", None) != "argmax" or not hasattr(clip, "token_embedding"):
            return clip.encode_text(tokens)
        end = tokens.argmax(dim=-1)
        length = int(end.max()) + 1
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens[:, :length]).to(cast) + clip.positional_embedding[:length].to(cast)
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
        pooled = x[torch.arange(x.shape[0], device=x.device), end]
        if isinstance(clip.text_projection, nn.Linear):
            return clip.text_projection(pooled)
        return pooled @ clip.text_projection if clip.text_projection is not None else pooled

    @property
    def visual(self) -> nn.Module:
        """The vision tower (Grad-CAM hooks its blocks)."""
        return self.clip.visual

    def train(self, mode: bool = True) -> "ClipBackbone":
        # Frozen backbone: always in eval mode, whatever the parent does.
        super().train(False)
        return self


def build_clip_backbone(spec: BackboneSpec, weights: str | Path | None = "pretrained") -> tuple[ClipBackbone, str]:
    """Build ``spec`` and load its weights.

    ``weights``: ``"pretrained"`` (the spec's pretrained file, found locally or
    :class:`~geoapp.models.weights.WeightsMissingError` at once), ``"random"`` (random
    initialisation, for tests/benchmarks only), or a path to an open_clip checkpoint.
    Returns the backbone and a short description of its weights.
    """
    import open_clip

    if weights == "pretrained":
        if spec.pretrained is None:
            raise ValueError(f"backbone {spec.name!r} has no pretrained weights; use weights='random'")
        # Look the file up before building the (slow to initialise) model, so a missing file fails at once.
        checkpoint: Path | None = weight_files.require(spec.pretrained)
        description = f"{spec.pretrained.key} ({checkpoint.name})"
    elif weights == "random":
        checkpoint, description = None, "random"
    else:
        checkpoint = Path(weights)
        if not checkpoint.is_file():
            raise weight_files.WeightsMissingError(f"Backbone checkpoint not found: {checkpoint}")
        description = str(checkpoint)

    config = spec.model_config()
    if checkpoint is None:
        # Random weights: the same model in every process and whatever ran before (tests, Ray workers);
        # the caller's global RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_BACKBONE_SEED)
            model = open_clip.CLIP(**config)
    else:
        model = open_clip.CLIP(**config)
    if checkpoint is not None:
        open_clip.load_checkpoint(model, str(checkpoint))
    return ClipBackbone(spec, model), description


def clip_tokenizer():
    """The CLIP BPE tokenizer (ships inside open_clip, no download)."""
    import open_clip

    return open_clip.get_tokenizer("ViT-L-14")
