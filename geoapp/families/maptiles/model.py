"""Photo encoder and per-zoom map encoders (Kim, Jang & Kim, §3.2), as one module with a checkpoint.

* **Photo encoder**: a ViT image tower (CLIP ViT-B/32 for the paper preset), frozen.
* **Map encoder of zoom z**: the *same* tower whose last ``trainable_blocks`` (2) transformer blocks
  are replaced by a copy of their own per level. Trained with them, and stored with them: the final
  LayerNorm (``ln_post``), the output projection (``proj``) and a per-level logit scale (the
  softmax temperature of training, reused to turn similarities into probabilities). Everything
  else (patch embedding, positions, the first blocks) is shared with the photo encoder and frozen,
  so a checkpoint stores only ``levels.<z>.*`` (+ the tower itself for presets trained from scratch).

Presets (architecture as data): ``clip-vit-b32`` (the paper: open_clip ``ViT-B-32``, 224 px, OpenAI
weights), ``crossview-small`` (a small ViT trained here from scratch on the offline cross-view task),
``tiny`` (tests).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from geoapp.models.backbones import OPENAI_MEAN, OPENAI_STD, PreprocessConfig
from geoapp.models.checkpoint import load_checkpoint
from geoapp.models.checkpoint import save_checkpoint as write_checkpoint


CHECKPOINT_FORMAT = "geoapp-maptiles-1"  # the format label, for safetensors files and the older torch.save ones


@dataclass(frozen=True)
class EncoderConfig:
    """A ViT image tower (open_clip ``VisionTransformer``) and how its map encoders are trained."""

    name: str
    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    embed_dim: int = 512
    quick_gelu: bool = True  # OpenAI CLIP uses QuickGELU
    trainable_blocks: int = 2  # the paper: the last two transformer blocks per zoom level
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size, mean=self.mean, std=self.std,
                                tencrop_resize=int(self.image_size * 8 / 7))

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, EncoderConfig] = {
    "clip-vit-b32": EncoderConfig("clip-vit-b32"),
    "crossview-small": EncoderConfig("crossview-small", image_size=32, patch_size=8, width=96, layers=4, heads=4,
                                     embed_dim=96, quick_gelu=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    "tiny": EncoderConfig("tiny", image_size=32, patch_size=16, width=32, layers=3, heads=2, embed_dim=32,
                          quick_gelu=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
}


def preset(name: str) -> EncoderConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown map-tile encoder preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def build_tower(config: EncoderConfig) -> nn.Module:
    """A randomly initialised open_clip vision tower of ``config``."""
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    vision = CLIPVisionCfg(layers=config.layers, width=config.width, head_width=config.width // config.heads,
                           patch_size=config.patch_size, image_size=config.image_size)
    return _build_vision_tower(config.embed_dim, vision, quick_gelu=config.quick_gelu)


def clip_vit_b32_tower(weights: str | Path = "pretrained") -> nn.Module:
    """The paper's photo encoder / map-encoder trunk: CLIP ViT-B/32's vision tower ("pretrained": the OpenAI
    weight file, found locally or a WeightsMissingError naming the download command; "random"; or a path)."""
    from geoapp.models.backbones import BackboneSpec, build_clip_backbone
    from geoapp.models.weights import CLIP_VIT_B32_OPENAI

    backbone, _ = build_clip_backbone(BackboneSpec("ViT-B-32", "ViT-B-32-quickgelu", CLIP_VIT_B32_OPENAI), weights)
    return backbone.clip.visual


class LevelHead(nn.Module):
    """What one zoom level trains: the last blocks, the final norm, the projection and a logit scale."""

    def __init__(self, tower: nn.Module, trainable_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in tower.transformer.resblocks[-trainable_blocks:])
        self.ln_post = copy.deepcopy(tower.ln_post)
        self.proj = nn.Parameter(tower.proj.detach().clone())
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))


@dataclass
class CheckpointMeta:
    """What a checkpoint says about itself (stored beside the weights)."""

    preset: str
    zooms: tuple[int, ...]
    description: str = ""
    training: dict = field(default_factory=dict)  # data, steps, metrics (written by the trainer)
    crossview_demo: bool = False  # trained on NASA raster renderings, not on ground photos


class MapTileModel(nn.Module):
    """Photo tower + one :class:`LevelHead` per zoom level of the search."""

    def __init__(self, config: EncoderConfig, zooms: tuple[int, ...], tower: nn.Module | None = None) -> None:
        super().__init__()
        if config.trainable_blocks < 1 or config.trainable_blocks > config.layers:
            raise ValueError(f"trainable_blocks must be 1..{config.layers}; got {config.trainable_blocks}")
        self.config = config
        self.zooms = tuple(int(z) for z in zooms)
        if list(self.zooms) != sorted(set(self.zooms)):
            raise ValueError(f"zoom levels must be increasing and distinct; got {zooms}")
        self.tower = tower if tower is not None else build_tower(config)
        if getattr(self.tower, "pool_type", "tok") != "tok" or getattr(self.tower, "attn_pool", None) is not None:
            raise ValueError("map encoders need a class-token ViT (open_clip pool_type 'tok')")
        self.levels = nn.ModuleDict({str(z): LevelHead(self.tower, config.trainable_blocks) for z in self.zooms})
        self.freeze_tower()

    # ------------------------------------------------------------------ parameters
    def freeze_tower(self, frozen: bool = True) -> None:
        """The photo encoder / shared trunk is frozen (the paper); from-scratch pretraining unfreezes it."""
        self.tower.requires_grad_(not frozen)

    def trainable_parameters(self, zoom: int) -> list[nn.Parameter]:
        """What training zoom ``zoom`` updates (its LevelHead only)."""
        return list(self.levels[str(zoom)].parameters())

    def head(self, zoom: int) -> LevelHead:
        key = str(int(zoom))
        if key not in self.levels:
            raise ValueError(f"this model has map encoders for zooms {self.zooms}, not {zoom}")
        return self.levels[key]

    # ------------------------------------------------------------------ forward
    def _trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tokens after the shared blocks (all but the last ``trainable_blocks``)."""
        x = self.tower._embeds(pixels)
        for block in self.tower.transformer.resblocks[:-self.config.trainable_blocks]:
            x = block(x)
        return x

    def encode_photo(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised photo embeddings [B, D] (the tower as it is: CLIP's image encoder)."""
        return self.tower(pixels)

    def encode_tiles(self, pixels: torch.Tensor, zoom: int) -> torch.Tensor:
        """Unnormalised tile embeddings [B, D] with zoom ``zoom``'s map encoder."""
        return self.encode_from_trunk(self._trunk(pixels), zoom)

    def trunk_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tokens after the frozen shared blocks: a trainer computes them once per tile."""
        return self._trunk(pixels)

    def encode_from_trunk(self, tokens: torch.Tensor, zoom: int) -> torch.Tensor:
        """Zoom ``zoom``'s trainable part on trunk tokens -> unnormalised tile embeddings [B, D]."""
        head = self.head(zoom)
        x = tokens
        for block in head.blocks:
            x = block(x)
        return head.ln_post(x[:, 0]) @ head.proj

    def logit_scale(self, zoom: int) -> torch.Tensor:
        return self.head(zoom).logit_scale.exp().clamp(max=100.0)

    def init_level_from_tower(self, zoom: int) -> None:
        """Start level ``zoom`` from the tower's own last blocks (the finest level's start)."""
        fresh = LevelHead(self.tower, self.config.trainable_blocks).to(next(self.tower.parameters()).device)
        fresh.logit_scale.data.copy_(self.head(zoom).logit_scale.data)
        self.head(zoom).load_state_dict(fresh.state_dict())

    def copy_level(self, source: int, target: int) -> None:
        """Start level ``target`` from the weights of level ``source`` (finest -> coarsest training)."""
        self.head(target).load_state_dict(self.head(source).state_dict())

    # ------------------------------------------------------------------ identity
    def level_digest(self, zoom: int) -> str:
        """SHA-256 of everything zoom ``zoom``'s map encoder computes with (the cache key)."""
        digest = hashlib.sha256(f"{self.config.name}:{zoom}".encode())
        states = [("tower", self.tower.state_dict()), ("head", self.head(zoom).state_dict())]
        for prefix, state in states:
            for name in sorted(state):
                tensor = state[name].detach().to("cpu", torch.float32).contiguous()
                digest.update(f"{prefix}.{name}".encode())
                digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()


def similarities(photo: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """Cosine similarities [P, T] of photo and tile embeddings."""
    return F.normalize(photo.float(), dim=-1) @ F.normalize(tiles.float(), dim=-1).T


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(model: MapTileModel, path: str | Path, meta: CheckpointMeta, *, include_tower: bool,
                    half: bool = False) -> Path:
    """Write the trained parts (per-level heads; the tower too when it was trained here) in the project's one
    checkpoint convention (safetensors + JSON config and meta: :mod:`geoapp.models.checkpoint`).

    ``half``: float16 on disk (shipped assets); loading turns them back into float32.
    """
    state = {f"levels.{k}": v for k, v in model.levels.state_dict().items()}
    if include_tower:
        state.update({f"tower.{k}": v for k, v in model.tower.state_dict().items()})
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in state.items()}
    return write_checkpoint(path, CHECKPOINT_FORMAT, state, model.config.to_dict(), asdict(meta))


def read_checkpoint(path: str | Path) -> dict:
    """``{"format", "config", "meta", "state"}`` of a map-tile checkpoint, read by the one loader (safetensors, or an
    older ``torch.save`` file such as the shipped one with ``weights_only=True``: reading never runs code)."""
    checkpoint = load_checkpoint(path, CHECKPOINT_FORMAT, what="map-tile checkpoint")
    meta = checkpoint.meta.get("meta", checkpoint.meta) if checkpoint.legacy else checkpoint.meta
    return {"format": checkpoint.format, "config": checkpoint.config, "meta": dict(meta), "state": checkpoint.state}


def model_from_checkpoint(payload: dict, tower: nn.Module | None = None) -> tuple[MapTileModel, CheckpointMeta]:
    """Build the model a checkpoint describes; ``tower``: a pretrained tower when the checkpoint has none."""
    config = EncoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()})
    meta_data = dict(payload["meta"])
    meta = CheckpointMeta(**{**meta_data, "zooms": tuple(meta_data["zooms"])})
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state"].items()}
    has_tower = any(k.startswith("tower.") for k in state)
    if not has_tower and tower is None:
        raise ValueError("this checkpoint holds only the map-encoder levels: the pretrained tower "
                         f"({config.name}) must be given")
    model = MapTileModel(config, meta.zooms, tower=None if has_tower else tower)
    if has_tower:
        model.tower.load_state_dict({k[len("tower."):]: v for k, v in state.items() if k.startswith("tower.")})
    model.levels.load_state_dict({k[len("levels."):]: v for k, v in state.items() if k.startswith("levels.")})
    model.freeze_tower()
    return model.eval(), meta
