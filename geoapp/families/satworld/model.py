"""SatWorld: a small GeoCLIP-style model for satellite/aerial views, trained offline on NASA imagery.

image (64 px) -> small ViT (open_clip ``VisionTransformer``, 16 px patches, 4 blocks, width 128) -> image head
(256 -> 256 -> 512) ; GPS -> GeoCLIP's *pretrained, frozen* location encoder -> 512.

Why this shape:

* The image side is a ViT with the same module layout as CLIP's vision tower, so Grad-CAM
  (``visual.transformer.resblocks[-1].ln_1`` and ``visual.grid_size``) works unchanged.
* The location encoder is GeoCLIP's published one, kept frozen: the image side learns to land
  in GeoCLIP's location space, the shipped file holds only the small trained parts (~2 MB in
  float16), and the location weights come from the ``geoclip`` package that already provides
  the 100K gallery (so the model needs no CLIP download and works offline).

Trained by ``python -m training.satworld.train`` (see ``assets/satworld/MODEL_CARD.md``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from geoapp.models import weights as weight_files
from geoapp.models.backbones import BackboneSpec, PreprocessConfig
from geoapp.models.checkpoint import load_checkpoint, save_checkpoint
from geoapp.models.geoclip import GeoCLIP, ImageHead, ModelIdentity, load_published_state
from geoapp.models.location_encoder import LocationEncoder, convert_reference_location_state_dict

FORMAT = "geoapp.satworld.v1"
ASSET_PATH = Path(__file__).resolve().parents[3] / "assets" / "satworld" / "satworld.pt"
LABEL = "SatWorld (offline model for satellite/aerial imagery; not for ground-level photos)"

# Blue Marble statistics would do as well; ImageNet-like constants keep the pipeline generic.
SATWORLD_MEAN = (0.5, 0.5, 0.5)
SATWORLD_STD = (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class SatWorldConfig:
    """Architecture of the image side (stored in the checkpoint, so files describe themselves)."""

    image_size: int = 64
    patch_size: int = 16  # 4 x 4 tokens: cheap enough to train on a shared CPU in minutes
    width: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    feature_dim: int = 256  # ViT output (projected CLS token) = image head input

    def preprocess(self) -> PreprocessConfig:
        # Bilinear (antialiased) resize: crops are rendered bilinearly, so train and test match.
        return PreprocessConfig(image_size=self.image_size, mean=SATWORLD_MEAN, std=SATWORLD_STD,
                                interpolation="bilinear", tencrop_resize=int(round(self.image_size * 8 / 7)))

    def spec(self) -> BackboneSpec:
        return BackboneSpec(f"satworld-vit-{self.layers}x{self.width}-{self.image_size}px", "satworld", None,
                            self.preprocess())


class SatWorldBackbone(nn.Module):
    """Small ViT image encoder with the ``ClipBackbone`` interface the predictor and Grad-CAM use."""

    def __init__(self, config: SatWorldConfig = SatWorldConfig()) -> None:
        super().__init__()
        from open_clip.transformer import VisionTransformer

        self.config = config
        self.spec = config.spec()
        self.vit = VisionTransformer(image_size=config.image_size, patch_size=config.patch_size, width=config.width,
                                     layers=config.layers, heads=config.heads, mlp_ratio=config.mlp_ratio,
                                     output_dim=config.feature_dim)

    @property
    def embed_dim(self) -> int:
        return self.config.feature_dim

    @property
    def visual(self) -> nn.Module:
        """The vision tower (Grad-CAM hooks ``visual.transformer.resblocks[-1].ln_1``)."""
        return self.vit

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vit(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        raise ValueError("text queries need the CLIP model (GeoCLIP); SatWorld is an image-only model")


class SatWorld(GeoCLIP):
    """GeoCLIP with a SatWorld image side and a frozen location encoder."""

    def __init__(self, config: SatWorldConfig = SatWorldConfig(), location_encoder: LocationEncoder | None = None) -> None:
        super().__init__(SatWorldBackbone(config), ImageHead(config.feature_dim, 512), location_encoder)
        self.config = config
        self.location_encoder.requires_grad_(False)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        raise ValueError("text queries need the CLIP model (GeoCLIP); SatWorld is an image-only model")

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen location encoder (that comes from the geoclip package)."""
        return {key: value for key, value in self.state_dict().items() if not key.startswith("location_encoder.")}


def pretrained_location_encoder() -> tuple[LocationEncoder, str]:
    """GeoCLIP's published location encoder (from the ``geoclip`` package) and its file digest."""
    path = weight_files.require(weight_files.GEOCLIP_LOCATION_ENCODER)
    encoder = LocationEncoder()
    encoder.load_state_dict(convert_reference_location_state_dict(load_published_state(path)))
    return encoder.eval(), weight_files.sha256_file(path)


def save_satworld(model: SatWorld, path: Path, location_sha256: str, extra: dict | None = None) -> None:
    """Write the trained parts in float16 (the location encoder is referenced by digest, not copied)."""
    state = {key: value.detach().cpu().to(torch.float16) if value.is_floating_point() else value.detach().cpu()
             for key, value in model.trainable_state_dict().items()}
    save_checkpoint(path, FORMAT, state, asdict(model.config),
                    {"location_encoder_sha256": location_sha256, "extra": extra or {}})


def load_satworld(path: str | Path | None = None) -> tuple[SatWorld, ModelIdentity]:
    """Load a SatWorld checkpoint (default: the shipped ``assets/satworld/satworld.pt``)."""
    path = Path(path) if path is not None else ASSET_PATH
    if not path.is_file():
        raise weight_files.WeightsMissingError(
            f"SatWorld model not found: {path}. It ships in the repository under assets/satworld/; "
            "retrain it with the command in assets/satworld/MODEL_CARD.md"
        )
    checkpoint = load_checkpoint(path, FORMAT, what="SatWorld checkpoint")
    encoder, location_sha = pretrained_location_encoder()
    if checkpoint.meta.get("location_encoder_sha256") not in (None, location_sha):
        raise ValueError(f"{path} was trained against a different GeoCLIP location encoder file")
    model = SatWorld(SatWorldConfig(**checkpoint.config), encoder)
    state = {key: value.float() if value.is_floating_point() else value for key, value in checkpoint.state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.startswith("location_encoder.")]
    if missing or unexpected:
        raise ValueError(f"{path} does not match the SatWorld architecture (missing {missing}, unexpected {unexpected})")
    model.eval()
    digest = hashlib.sha256()
    digest.update(checkpoint.sha256.encode())
    digest.update(location_sha.encode())
    identity = ModelIdentity(model="satworld", backbone=model.backbone.spec.name,
                             backbone_weights=f"satworld ({path.name})", heads_sha256=digest.hexdigest(),
                             random_weights=False)
    return model, identity


def image_encoder(weights: str | None = None) -> tuple[SatWorldBackbone, str]:
    """SatWorld's image encoder as another family's frozen backbone (declared in the spec as ``image_encoder``):
    None = the shipped checkpoint, "random" = a seeded random encoder (the same every time, for tests), or a path."""
    if weights == "random":
        torch.manual_seed(0)
        return SatWorldBackbone(SatWorldConfig()), "random"
    model, identity = load_satworld(weights)
    return model.backbone, identity.backbone_weights
