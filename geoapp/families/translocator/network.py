"""TransLocator (Pramanick et al., ECCV 2022): a dual-branch ViT for geocell classification.

    RGB photo ──► ViT-B/16 ──┐  after every encoder layer but the last, the two CLS tokens
    segmentation ► ViT-B/16 ─┘  are fused (MFF, eq. 4) and the result replaces both
    final CLS tokens ──► attentive fusion (eqs. 5-7) ──► f_mm (2d) ──► coarse / middle / fine
                                                                   cells + 3 scene heads

Choices where the paper is ambiguous (each one is tested in ``tests/models/test_translocator.py``):

* **MFF (eq. 4)**: per layer ``l``, ``cls = g_l(f_l_rgb(cls_rgb) + f_l_seg(cls_seg))`` with
  modality-specific projections ``f`` (LayerNorm -> Linear d->d_f -> GELU) and one
  back-projection ``g`` (Linear d_f->d) per layer; nothing is shared across layers (our
  reading of the paper's per-layer ``f^l_i``, ``g^l``). The fused token *replaces* the CLS token
  of both branches (no residual) and feeds the next layer, so fusion runs after layers
  1..L-1: after the last layer there is no next layer, and the two final CLS tokens must stay
  distinct for the attentive fusion to weigh them.
* **Attentive fusion (eqs. 5-7)**: one MLP (dense [d, 8, 1], tanh in between, as in
  attention-based pooling) shared by both branches scores each final (normed) CLS token; a
  softmax over the two branches gives ``w_rgb, w_seg``; ``f_mm = [(1+w_rgb) cls_rgb ‖ (1+w_seg) cls_seg]``.
* **Heads (Table A.2)**: the table lists ``[768, 3298]``, ``[768, 3000, 7202]``,
  ``[768, 6000, 12893]``, ``[768, 3/16/365]``, i.e. input width first. ``f_mm`` is 2x768, so
  the first layer of each head takes 1536 inputs (768 for the single-branch ViT-MT, where the
  table then holds exactly); hidden layers use GELU.
* **Loss (eq. 8)**: ``(1-α-β) L_coarse + α L_middle + β L_fine + γ L_scene``, label-smoothed CE;
  ``L_scene`` is the mean over the scene levels that carry labels (label -1 = unknown).
* **Inputs**: both branches start from the ImageNet-21k ViT-B/16 (``augreg_in21k``), so both use
  its normalisation (mean = std = 0.5 per channel): RGB pixels, and the *colourised*
  segmentation map (ADE20K palette, uint8 RGB) treated as an image.
* **ViT-MT** (``dual_branch=False``): the paper's single-branch multi-task ablation: RGB only,
  no MFF, no attentive fusion (``branch_weights`` = [1, 0]).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geoapp.geo.geocells import GeocellHierarchy, GeocellPartition
from geoapp.models import weights as weight_files
from geoapp.models.checkpoint import load_checkpoint, save_checkpoint
from geoapp.models.presets import load_presets, pick
from geoapp.models.weights import WeightFile, WeightsMissingError

CHECKPOINT_FORMAT = "geoapp.translocator.v1"
CellTable = GeocellHierarchy  # the geocells a checkpoint carries: coarse/middle/fine + fine -> coarser maps
IN21K_MEAN = (0.5, 0.5, 0.5)  # timm's pretrained cfg for vit_base_patch16_224.augreg_in21k
IN21K_STD = (0.5, 0.5, 0.5)
SEG_MEAN = IN21K_MEAN  # the colourised map goes through the same normalisation (same init)
SEG_STD = IN21K_STD

VIT_B16_IN21K = WeightFile(
    key="timm/vit_base_patch16_224.augreg_in21k",
    description="ViT-B/16 ImageNet-21k (AugReg) initialisation of both TransLocator branches",
    filename="model.safetensors",
    source="hf-hub:timm/vit_base_patch16_224.augreg_in21k",
    licence="Apache-2.0",
    alternatives=("pytorch_model.bin",),
)


@dataclass(frozen=True)
class TransLocatorConfig:
    """Architecture (stored in checkpoints, so a file describes itself)."""

    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768  # d: token width of each branch
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    dual_branch: bool = True  # False = ViT-MT (RGB only)
    fusion_dim: int = 768  # d_f: width of the MFF projection space
    attn_hidden: int = 8  # hidden width of the attentive-fusion scorer ([d, 8, 1])
    cell_counts: tuple[int, int, int] = (3298, 7202, 12893)  # coarse, middle, fine
    cell_hidden: tuple[int | None, int | None, int | None] = (None, 3000, 6000)  # None = a single Linear
    scene_counts: tuple[int, ...] = (3, 16, 365)  # Places365 hierarchy: 3 / 16 / 365 classes
    backbone: str = "vit_base_patch16_224.augreg_in21k"  # timm architecture (and in21k weights)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell_counts", tuple(int(n) for n in self.cell_counts))
        object.__setattr__(self, "cell_hidden", tuple(None if h is None else int(h) for h in self.cell_hidden))
        object.__setattr__(self, "scene_counts", tuple(int(n) for n in self.scene_counts))
        if len(self.cell_counts) != 3 or len(self.cell_hidden) != 3 or min(self.cell_counts) < 1:
            raise ValueError("cell_counts and cell_hidden need three entries (coarse, middle, fine), counts >= 1")
        if self.img_size % self.patch_size or self.embed_dim % self.num_heads:
            raise ValueError("img_size must be a multiple of patch_size and embed_dim of num_heads")

    @classmethod
    def preset(cls, name: str, **overrides) -> "TransLocatorConfig":
        """A named architecture from ``presets.json`` (paper, tiny, tiny-64), with field overrides."""
        values = pick(load_presets("geoapp.families.translocator", dict), name, "TransLocator")
        return cls.from_dict({**values, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "TransLocatorConfig":
        """A few-thousand-parameter model with the same structure, for tests and CPU training."""
        return cls.preset("tiny", **overrides)

    @property
    def grid_size(self) -> tuple[int, int]:
        side = self.img_size // self.patch_size
        return side, side

    @property
    def feature_dim(self) -> int:
        """Width of f_mm, the heads' input."""
        return self.embed_dim * (2 if self.dual_branch else 1)

    def to_dict(self) -> dict:
        data = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> "TransLocatorConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TransLocator config fields: {', '.join(unknown)}")
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})


@dataclass
class TransLocatorOutput:
    cell_logits: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # coarse, middle, fine: [B, n_cells]
    scene_logits: tuple[torch.Tensor, ...]  # one [B, n] per scene level
    branch_weights: torch.Tensor  # [B, 2]: attentive-fusion weights (w_rgb, w_seg); sums to 1
    features: torch.Tensor  # [B, feature_dim]: f_mm
    cls_history: list[dict[str, torch.Tensor]] | None = None  # per fused layer: rgb_before, seg_before, fused


class ClsFusion(nn.Module):
    """MFF at one layer (eq. 4): project both CLS tokens, sum, project back."""

    def __init__(self, dim: int, fusion_dim: int) -> None:
        super().__init__()
        self.project_rgb = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, fusion_dim), nn.GELU())
        self.project_seg = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, fusion_dim), nn.GELU())
        self.back_project = nn.Linear(fusion_dim, dim)

    def forward(self, cls_rgb: torch.Tensor, cls_seg: torch.Tensor) -> torch.Tensor:
        return self.back_project(self.project_rgb(cls_rgb) + self.project_seg(cls_seg))


class AttentiveFusion(nn.Module):
    """Eqs. 5-7: shared scorer over the branches' CLS tokens, softmax, (1 + w) scaling, concatenation."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.scorer = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, cls_rgb: torch.Tensor, cls_seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.cat([self.scorer(cls_rgb), self.scorer(cls_seg)], dim=1)  # [B, 2]
        weights = scores.softmax(dim=1)
        fused = torch.cat([(1 + weights[:, :1]) * cls_rgb, (1 + weights[:, 1:]) * cls_seg], dim=1)
        return fused, weights


def _head(in_features: int, hidden: int | None, out_features: int) -> nn.Module:
    if hidden is None:
        return nn.Linear(in_features, out_features)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, out_features))


class TransLocator(nn.Module):
    """Two timm ViTs (or one for ViT-MT) + MFF + attentive fusion + cell and scene heads."""

    def __init__(self, config: TransLocatorConfig, rgb_branch: nn.Module, seg_branch: nn.Module | None) -> None:
        super().__init__()
        if config.dual_branch != (seg_branch is not None):
            raise ValueError("a dual-branch config needs a segmentation branch; ViT-MT must not have one")
        self.config = config
        self.rgb_branch = rgb_branch
        self.seg_branch = seg_branch
        fused_layers = config.depth - 1 if config.dual_branch else 0
        self.fusions = nn.ModuleList(ClsFusion(config.embed_dim, config.fusion_dim) for _ in range(fused_layers))
        self.attentive_fusion = AttentiveFusion(config.embed_dim, config.attn_hidden) if config.dual_branch else None
        width = config.feature_dim
        self.cell_heads = nn.ModuleList(_head(width, hidden, count) for hidden, count in zip(config.cell_hidden, config.cell_counts))
        self.scene_heads = nn.ModuleList(nn.Linear(width, count) for count in config.scene_counts)
        # Set by build_translocator / load_translocator_checkpoint; results of random models are flagged.
        self.random_weights = True
        self.weights_description = "random"

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.rgb_branch.patch_embed.grid_size)

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.rgb_branch.num_prefix_tokens)

    def gradcam_layers(self) -> dict[str, nn.Module]:
        """Per branch, the module whose output still holds per-patch tokens at the last block."""
        layers = {"rgb": self.rgb_branch.blocks[-1].norm1}
        if self.seg_branch is not None:
            layers["seg"] = self.seg_branch.blocks[-1].norm1
        return layers

    @staticmethod
    def _embed(vit: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        tokens = vit._pos_embed(vit.patch_embed(pixels))
        return vit.norm_pre(vit.patch_drop(tokens))

    def forward(self, rgb: torch.Tensor, seg: torch.Tensor | None = None, *, record_cls: bool = False) -> TransLocatorOutput:
        """``rgb``/``seg``: normalised [B, 3, H, W]; ``seg`` is required by the dual-branch model."""
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must be [batch, 3, height, width], got {tuple(rgb.shape)}")
        history: list[dict[str, torch.Tensor]] | None = [] if record_cls else None
        x_rgb = self._embed(self.rgb_branch, rgb)
        if self.seg_branch is None:
            x_rgb = self.rgb_branch.norm(self.rgb_branch.blocks(x_rgb))
            features = x_rgb[:, 0]
            weights = torch.zeros(rgb.shape[0], 2, device=rgb.device, dtype=features.dtype)
            weights[:, 0] = 1
        else:
            if seg is None or seg.shape != rgb.shape:
                raise ValueError("the dual-branch TransLocator needs a segmentation map shaped like the RGB input "
                                 f"(rgb {tuple(rgb.shape)}, seg {None if seg is None else tuple(seg.shape)})")
            x_seg = self._embed(self.seg_branch, seg)
            for layer in range(self.config.depth):
                x_rgb = self.rgb_branch.blocks[layer](x_rgb)
                x_seg = self.seg_branch.blocks[layer](x_seg)
                if layer < len(self.fusions):
                    fused = self.fusions[layer](x_rgb[:, 0], x_seg[:, 0])
                    if history is not None:
                        history.append({"rgb_before": x_rgb[:, 0].detach(), "seg_before": x_seg[:, 0].detach(),
                                        "fused": fused.detach()})
                    x_rgb = torch.cat([fused.unsqueeze(1), x_rgb[:, 1:]], dim=1)
                    x_seg = torch.cat([fused.unsqueeze(1), x_seg[:, 1:]], dim=1)
            features, weights = self.attentive_fusion(self.rgb_branch.norm(x_rgb)[:, 0], self.seg_branch.norm(x_seg)[:, 0])
        cells = tuple(head(features) for head in self.cell_heads)
        scenes = tuple(head(features) for head in self.scene_heads)
        return TransLocatorOutput(cells, scenes, weights, features, history)


# ---------------------------------------------------------------------------------------------- building
def _create_vit(config: TransLocatorConfig, pretrained_file: Path | None = None) -> nn.Module:
    import timm

    overlay = {}
    if pretrained_file is not None:
        # Google's .npz needs timm's custom loader; the hub's safetensors/bin are plain state dicts.
        overlay = {"pretrained_cfg_overlay": {"file": str(pretrained_file), "custom_load": pretrained_file.suffix == ".npz"}}
    return timm.create_model(config.backbone, pretrained=pretrained_file is not None, num_classes=0,
                             img_size=config.img_size, patch_size=config.patch_size, embed_dim=config.embed_dim,
                             depth=config.depth, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
                             drop_path_rate=config.drop_path_rate, **overlay)


def in21k_weights_path() -> Path:
    """Local copy of the ImageNet-21k ViT-B/16 weights, or :class:`WeightsMissingError` at once (no network)."""
    path = weight_files.find(VIT_B16_IN21K)
    if path is not None:
        return path
    repo = VIT_B16_IN21K.source.partition(":")[2]
    looked = [str(p) for p in weight_files.candidate_paths(VIT_B16_IN21K)] or ["(the Hugging Face cache is empty)"]
    raise WeightsMissingError(
        f"Missing weights: {VIT_B16_IN21K.filename} — {VIT_B16_IN21K.description}, from the Hugging Face repo "
        f"{repo!r}. To fix (needs internet, once): `hf download {repo} {VIT_B16_IN21K.filename}` (standard Hugging Face "
        f"cache), or copy the file into $GEOAPP_WEIGHTS_DIR/{repo.split('/')[-1]}/. Looked in: {', '.join(looked)}."
    )


def build_translocator(config: TransLocatorConfig, weights: str | Path | None = None) -> TransLocator:
    """Build a TransLocator.

    ``weights``: None/"in21k" = both branches from the ImageNet-21k ViT-B/16 in the local cache
    (heads and fusion layers random: the start of training); "random" = everything random
    (tests, benchmarks; flagged); or a path to a checkpoint written by
    :func:`save_translocator_checkpoint` whose config must equal ``config``.
    """
    if weights in (None, "in21k", "pretrained"):
        source = in21k_weights_path()  # before building anything: a missing file fails at once
        try:
            rgb = _create_vit(config, source)
        except RuntimeError as error:
            raise ValueError(f"{source} does not fit the configured ViT ({config.embed_dim}-d, depth {config.depth}, "
                             f"patch {config.patch_size}): {error}") from error
        seg = None
        if config.dual_branch:
            seg = _create_vit(config)
            seg.load_state_dict(rgb.state_dict())
        model = TransLocator(config, rgb, seg)
        model.random_weights, model.weights_description = True, f"{VIT_B16_IN21K.key} branches, untrained heads"
        return model
    if weights == "random":
        return TransLocator(config, _create_vit(config), _create_vit(config) if config.dual_branch else None)
    checkpoint = _read_checkpoint(Path(weights))
    stored = TransLocatorConfig.from_dict(checkpoint["config"])
    if stored != config:
        raise ValueError(f"{weights} holds a different TransLocator architecture ({stored}); "
                         "use load_translocator_checkpoint to build the stored one")
    return _model_from_checkpoint(checkpoint, Path(weights))


# ---------------------------------------------------------------------------------------------- checkpoints
def save_translocator_checkpoint(model: TransLocator, path: str | Path, cells: CellTable, extra: dict | None = None,
                                 *, random_weights: bool | None = None) -> Path:
    """Write config + weights + geocells (all inference needs). ``random_weights`` defaults to the
    model's flag: a trainer sets it to False once the weights are trained."""
    if cells.sizes != model.config.cell_counts:
        raise ValueError(f"cell table has {cells.sizes} cells per level, the model {model.config.cell_counts}")
    flag = model.random_weights if random_weights is None else bool(random_weights)
    return save_checkpoint(path, CHECKPOINT_FORMAT, model.state_dict(), model.config.to_dict(),
                           {"cells": _cells_to_dict(cells), "random_weights": flag, "extra": dict(extra or {})})


def _read_checkpoint(path: Path) -> dict:
    checkpoint = load_checkpoint(path, CHECKPOINT_FORMAT, what="TransLocator checkpoint")
    return {**checkpoint.meta, "config": checkpoint.config, "state": checkpoint.state, "sha256": checkpoint.sha256}


def _model_from_checkpoint(checkpoint: dict, path: Path) -> TransLocator:
    config = TransLocatorConfig.from_dict(checkpoint["config"])
    model = TransLocator(config, _create_vit(config), _create_vit(config) if config.dual_branch else None)
    try:
        model.load_state_dict(checkpoint["state"])
    except RuntimeError as error:
        raise ValueError(f"{path} does not match its own TransLocator config: {error}") from error
    model.random_weights = bool(checkpoint.get("random_weights", False))
    model.weights_description = f"checkpoint {path.name}" + (" (random weights)" if model.random_weights else "")
    return model.eval()


def _cells_to_dict(cells: CellTable) -> dict:
    """Partitions plus the stored parent maps (plain lists: ``weights_only`` loading stays possible)."""
    return {**cells.to_dict(), "fine_to_middle": [int(i) for i in cells.fine_to_middle],
            "fine_to_coarse": [int(i) for i in cells.fine_to_coarse]}


def _cells_from_dict(data: object, path: Path) -> CellTable:
    try:
        levels = [GeocellPartition.from_dict(data[level]) for level in ("coarse", "middle", "fine")]
        return GeocellHierarchy(*levels, fine_to_middle=np.asarray(data["fine_to_middle"], dtype=np.int64),
                                fine_to_coarse=np.asarray(data["fine_to_coarse"], dtype=np.int64))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: the geocell table in the checkpoint is malformed ({error})") from error


def load_translocator_checkpoint(path: str | Path) -> tuple[TransLocator, CellTable, dict]:
    """(model in eval mode, its geocells, metadata: extra fields, file digest, random_weights)."""
    path = Path(path)
    checkpoint = _read_checkpoint(path)
    model = _model_from_checkpoint(checkpoint, path)
    cells = _cells_from_dict(checkpoint.get("cells"), path)
    if cells.sizes != model.config.cell_counts:
        raise ValueError(f"{path}: its cell table {cells.sizes} does not fit its heads {model.config.cell_counts}")
    meta = {"extra": dict(checkpoint.get("extra") or {}), "sha256": checkpoint["sha256"],
            "random_weights": model.random_weights, "path": str(path)}
    return model, cells, meta


__all__ = ["CellTable", "TransLocator", "TransLocatorConfig", "TransLocatorOutput", "build_translocator",
           "in21k_weights_path", "load_translocator_checkpoint", "save_translocator_checkpoint"]
