"""GeoCLIP (Vivanco et al., NeurIPS 2023): image-to-GPS retrieval, our implementation.

image -> frozen CLIP ViT-L/14 (768-d projected features) -> image head MLP (768 -> 768 -> 512)
GPS   -> location encoder (Equal Earth + random Fourier features at 3 scales + MLPs) -> 512
score = exp(logit_scale) * cos(image, location); softmax over a gallery of GPS points.

The pretrained heads and logit scale are the files shipped in the ``geoclip`` PyPI package,
read with ``torch.load(weights_only=True)`` and renamed into our module layout.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from geoapp.models import weights as weight_files
from geoapp.models.backbones import BACKBONES, BackboneSpec, ClipBackbone, build_clip_backbone
from geoapp.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from geoapp.models.location_encoder import LocationEncoder, convert_reference_location_state_dict

CLIP_FEATURE_DIM = 768
EMBED_DIM = 512


class ImageHead(nn.Sequential):
    """GeoCLIP's trainable MLP on top of the frozen CLIP image features."""

    def __init__(self, in_features: int = CLIP_FEATURE_DIM, out_features: int = EMBED_DIM) -> None:
        # Same indices as the reference checkpoint (0 = Linear, 1 = ReLU, 2 = Linear).
        super().__init__(nn.Linear(in_features, in_features), nn.ReLU(), nn.Linear(in_features, out_features))


@dataclass(frozen=True)
class ModelIdentity:
    """What produced a result: recorded with every prediction and analysis."""

    model: str
    backbone: str
    backbone_weights: str
    heads_sha256: str  # digest over the head/location/scale weights actually loaded
    random_weights: bool

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "backbone": self.backbone,
            "backbone_weights": self.backbone_weights,
            "heads_sha256": self.heads_sha256,
            "random_weights": self.random_weights,
        }


class GeoCLIP(nn.Module):
    """Backbone + image head + location encoder + logit scale."""

    def __init__(self, backbone: ClipBackbone, image_head: ImageHead | None = None,
                 location_encoder: LocationEncoder | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.image_head = image_head or ImageHead()
        self.location_encoder = location_encoder or LocationEncoder()
        # Learnable temperature, initialised to 1/0.07 as in CLIP and the paper.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    # -- encoders (raw, un-normalised outputs) --------------------------------------------
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, H, W] -> image embeddings [B, 512] (not normalised)."""
        clip_features = self.backbone.encode_image(pixels)
        return self.image_head(clip_features.float())

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP text features through the image head (paper §4.4, text-to-map queries)."""
        return self.image_head(self.backbone.encode_text(tokens).float())

    def encode_locations(self, latlon: torch.Tensor) -> torch.Tensor:
        """(lat, lon) degrees [N, 2] -> location embeddings [N, 512] (not normalised)."""
        return self.location_encoder(latlon.float())

    def logits(self, image_embeddings: torch.Tensor, location_embeddings_normalised: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarity [B, N]; locations must already be L2-normalised (cached)."""
        image = F.normalize(image_embeddings.float(), dim=-1)
        return self.logit_scale.exp() * (image @ location_embeddings_normalised.T)

    def forward(self, pixels: torch.Tensor, latlon: torch.Tensor) -> torch.Tensor:
        """Logits of each image against each location, as in the reference ``GeoCLIP.forward``."""
        locations = F.normalize(self.encode_locations(latlon), dim=-1)
        return self.logits(self.encode_image(pixels), locations)


def load_published_state(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError) as error:
        raise weight_files.WeightsMissingError(
            f"Could not read {path} ({error}); the file is damaged. Reinstall with "
            "`pip install --force-reinstall -r requirements.txt`."
        ) from error


def load_pretrained_heads(model: GeoCLIP) -> str:
    """Load the published image head, location encoder and logit scale; returns a digest of them."""
    digest = hashlib.sha256()
    paths = {}
    for weight in (weight_files.GEOCLIP_IMAGE_HEAD, weight_files.GEOCLIP_LOCATION_ENCODER, weight_files.GEOCLIP_LOGIT_SCALE):
        paths[weight.key] = weight_files.require(weight)
    model.image_head.load_state_dict(load_published_state(paths[weight_files.GEOCLIP_IMAGE_HEAD.key]))
    model.location_encoder.load_state_dict(
        convert_reference_location_state_dict(load_published_state(paths[weight_files.GEOCLIP_LOCATION_ENCODER.key]))
    )
    scale = load_published_state(paths[weight_files.GEOCLIP_LOGIT_SCALE.key])
    with torch.no_grad():
        model.logit_scale.copy_(torch.as_tensor(scale, dtype=torch.float32).reshape(()))
    for key in sorted(paths):
        digest.update(weight_files.sha256_file(paths[key]).encode())
    return digest.hexdigest()


def load_location_encoder(heads: str | Path = "pretrained") -> tuple[LocationEncoder, str]:
    """The location encoder alone (no CLIP backbone) and the embedding identity a locator built with the same
    ``heads`` uses (``"geoclip:" + ModelIdentity.heads_sha256``: embeddings made under another id are stale).

    ``heads``: "pretrained" (the geoclip package files) or a geoapp heads checkpoint path.
    Raises :class:`~geoapp.models.weights.WeightsMissingError` at once when a file is absent.
    """
    encoder = LocationEncoder()
    if heads == "pretrained":
        paths = {w.key: weight_files.require(w) for w in
                 (weight_files.GEOCLIP_IMAGE_HEAD, weight_files.GEOCLIP_LOCATION_ENCODER, weight_files.GEOCLIP_LOGIT_SCALE)}
        encoder.load_state_dict(convert_reference_location_state_dict(
            load_published_state(paths[weight_files.GEOCLIP_LOCATION_ENCODER.key])))
        digest = hashlib.sha256()
        for key in sorted(paths):  # the same digest as load_pretrained_heads
            digest.update(weight_files.sha256_file(paths[key]).encode())
        heads_sha256 = digest.hexdigest()
    else:
        checkpoint, sigmas = _read_heads(Path(heads))
        encoder = LocationEncoder(sigmas)
        encoder.load_state_dict(checkpoint.sub_state("location_encoder"))
        heads_sha256 = checkpoint.sha256  # as load_heads_checkpoint
    encoder.eval()
    return encoder, f"geoclip:{heads_sha256}"


def state_digest(module: nn.Module) -> str:
    """SHA-256 over a module's tensors (identifies weights that did not come from a file)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_geoclip(backbone: str | BackboneSpec = "ViT-L-14", backbone_weights: str | Path | None = None,
                  heads: str | Path = "pretrained") -> tuple[GeoCLIP, ModelIdentity]:
    """Build GeoCLIP.

    ``backbone_weights``: None/"pretrained"/"openai" for the real OpenAI CLIP weights, "random"
    for random weights (tests/benchmarks; every result is flagged), or a checkpoint path.
    ``heads``: "pretrained" (the geoclip package files), "random", or a path to a geoapp
    checkpoint (saved by ``training``) holding ``image_head``/``location_encoder``/``logit_scale``.
    """
    spec = BACKBONES[backbone] if isinstance(backbone, str) else backbone
    requested = "pretrained" if backbone_weights in (None, "pretrained", "openai") else backbone_weights
    # Heads first: they are small and fail fast when missing.
    if heads == "pretrained":
        for weight in (weight_files.GEOCLIP_IMAGE_HEAD, weight_files.GEOCLIP_LOCATION_ENCODER, weight_files.GEOCLIP_LOGIT_SCALE):
            weight_files.require(weight)
    clip_backbone, backbone_description = build_clip_backbone(spec, requested)
    model = GeoCLIP(clip_backbone)
    if heads == "pretrained":
        heads_digest = load_pretrained_heads(model)
    elif heads == "random":
        heads_digest = state_digest(nn.ModuleList([model.image_head, model.location_encoder]))
    else:
        heads_digest = load_heads_checkpoint(model, Path(heads))
    model.eval()
    identity = ModelIdentity(
        model="GeoCLIP",  # the network (the family key is the registry's business)
        backbone=spec.name,
        backbone_weights=backbone_description,
        heads_sha256=heads_digest,
        random_weights=(requested == "random" or heads == "random"),
    )
    return model, identity


HEADS_FORMAT = "geoapp.geoclip_heads.v1"


def save_heads_checkpoint(model: GeoCLIP, path: Path, extra: dict | None = None) -> None:
    """Save the trainable parts (image head, location encoder, logit scale) in the checkpoint convention."""
    state = {**{f"image_head.{k}": v for k, v in model.image_head.state_dict().items()},
             **{f"location_encoder.{k}": v for k, v in model.location_encoder.state_dict().items()},
             "logit_scale": model.logit_scale.detach().reshape(())}
    save_checkpoint(path, HEADS_FORMAT, state, {"sigmas": list(model.location_encoder.sigmas)},
                    {"extra": extra or {}})


def _read_heads(path: Path) -> tuple[Checkpoint, tuple]:
    checkpoint = load_checkpoint(path, HEADS_FORMAT, what="GeoCLIP heads checkpoint")
    sigmas = checkpoint.config.get("sigmas", checkpoint.meta.get("sigmas"))  # older files kept them beside
    return checkpoint, tuple(sigmas)


def load_heads_checkpoint(model: GeoCLIP, path: Path) -> str:
    """Load a checkpoint written by :func:`save_heads_checkpoint`; returns its file digest."""
    checkpoint, sigmas = _read_heads(path)
    if sigmas != model.location_encoder.sigmas:
        model.location_encoder = LocationEncoder(sigmas)
    model.image_head.load_state_dict(checkpoint.sub_state("image_head"))
    model.location_encoder.load_state_dict(checkpoint.sub_state("location_encoder"))
    with torch.no_grad():
        model.logit_scale.copy_(checkpoint.state["logit_scale"].reshape(()))
    return checkpoint.sha256
