"""ADE20K semantic segmentation (150 classes): TransLocator's second input, and a UI overlay.

Models are segmentation_models_pytorch (smp) architectures; an architecture is data
(:class:`SegmenterSpec`) and its weights a :class:`~geoapp.models.weights.WeightFile`:

* ``segformer-ade20k`` (default): SegFormer-B2 trained on ADE20K, as smp publishes it on the
  Hugging Face hub (``smp-hub/segformer-b2-512x512-ade-160k``), loaded by ``smp.from_pretrained``
  from the local cache only; ``segformer-b0-ade20k`` (fast) and ``upernet-convnext-tiny-ade20k``
  (MIT-licensed weights) likewise.
* ``hrnet-w18-ade20k``: FPN on an HRNet-W18 encoder (timm ``tu-hrnet_w18``), with no released
  ADE20K weights: for training one's own (TransLocator used an HRNet segmenter). ImageNet
  encoder weights are used when cached, else the whole model is random (and flagged).
* ``tiny-test``: a small random SegFormer for tests.

How the map reaches TransLocator: :func:`colourise` turns the class map into an RGB image
with the ADE20K palette (:mod:`geoapp.families.translocator.ade20k`), and that image goes through the
segmentation branch like a photo. The paper feeds the segmentation map "as an image"; a
colour image keeps the branch a stock 3-channel ViT (same patch embedding and initialisation
as the RGB branch), where one-hot maps would need a 150-channel stem.

Preprocessing follows the smp-hub checkpoints' own evaluation config: resize (not crop) to
512 x 512, ImageNet mean/std; logits are resized back so the map matches the input size.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from geoapp.models import weights as weight_files
from geoapp.families.translocator.ade20k import ADE20K_CLASSES, ADE20K_PALETTE, NUM_CLASSES
from geoapp.models.preprocess import batch_to_network_input
from geoapp.models.weights import WeightFile, WeightsMissingError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Above this many output pixels, class ids are taken at network resolution and resized with
# nearest neighbour (a 12 Mpx photo would otherwise need 150 x 12 M float logits).
MAX_LOGIT_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class SegmenterSpec:
    """One segmenter: smp architecture + encoder, where its weights come from, how to feed it."""

    name: str
    arch: str  # smp class name: "Segformer", "UPerNet", "FPN", ...
    encoder: str  # smp encoder name: "mit_b2", "tu-convnext_tiny", "tu-hrnet_w18", ...
    hub_repo: str | None  # smp-hub repo with the trained ADE20K model (None: no released weights)
    input_size: tuple[int, int] = (512, 512)  # (H, W) the network sees
    mean: tuple[float, float, float] = IMAGENET_MEAN  # on [0, 1] pixels
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = NUM_CLASSES
    weights: WeightFile | None = None  # the trained checkpoint (config.json + model.safetensors)
    encoder_weights: WeightFile | None = None  # ImageNet encoder init, used when cached (training)
    arch_kwargs: tuple[tuple[str, Any], ...] = ()  # extra smp constructor arguments
    description: str = ""

    def build(self) -> nn.Module:
        """The architecture with random weights (never downloads anything)."""
        import segmentation_models_pytorch as smp

        model_class = getattr(smp, self.arch, None)
        if model_class is None:
            raise ValueError(f"segmentation_models_pytorch has no architecture {self.arch!r}")
        return model_class(encoder_name=self.encoder, encoder_weights=None, classes=self.num_classes,
                           **dict(self.arch_kwargs))


SEGFORMER_B2 = SegmenterSpec(
    "segformer-ade20k", "Segformer", "mit_b2", "smp-hub/segformer-b2-512x512-ade-160k",
    weights=weight_files.SEGFORMER_B2_ADE20K, arch_kwargs=(("decoder_segmentation_channels", 768),),
    description="SegFormer-B2, ADE20K 150 classes (mIoU 46.5 in the SegFormer paper)",
)
SEGFORMER_B0 = SegmenterSpec(
    "segformer-b0-ade20k", "Segformer", "mit_b0", "smp-hub/segformer-b0-512x512-ade-160k",
    weights=weight_files.SEGFORMER_B0_ADE20K, arch_kwargs=(("decoder_segmentation_channels", 256),),
    description="SegFormer-B0, ADE20K 150 classes (mIoU 37.4; fast on CPU)",
)
UPERNET_CONVNEXT_T = SegmenterSpec(
    "upernet-convnext-tiny-ade20k", "UPerNet", "tu-convnext_tiny", "smp-hub/upernet-convnext-tiny",
    weights=weight_files.UPERNET_CONVNEXT_TINY_ADE20K, arch_kwargs=(("decoder_channels", 512),),
    description="UPerNet + ConvNeXt-T, ADE20K 150 classes (MIT-licensed weights)",
)
HRNET_W18 = SegmenterSpec(
    "hrnet-w18-ade20k", "FPN", "tu-hrnet_w18", None, encoder_weights=weight_files.HRNET_W18_IMAGENET,
    description="FPN + HRNet-W18 (timm), 150 ADE20K classes, for training (no released ADE20K weights)",
)
TINY_TEST = SegmenterSpec(
    "tiny-test", "Segformer", "mit_b0", None, input_size=(64, 64),
    arch_kwargs=(("decoder_segmentation_channels", 32),),
    description="small random SegFormer for tests; never for real results",
)
SEGMENTERS: dict[str, SegmenterSpec] = {s.name: s for s in (SEGFORMER_B2, SEGFORMER_B0, UPERNET_CONVNEXT_T,
                                                             HRNET_W18, TINY_TEST)}


@dataclass
class Segmenter:
    """An ADE20K segmentation network with its preprocessing; call :meth:`segment`."""

    spec: SegmenterSpec
    model: nn.Module
    random_weights: bool
    identity: dict  # name, source, sha256 (or "random"), random_weights
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def class_names(self) -> tuple[str, ...]:
        return ADE20K_CLASSES

    @property
    def warnings(self) -> list[str]:
        from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

        return [RANDOM_WEIGHTS_WARNING] if self.random_weights else []

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float [B, 3, H, W] -> normalised float at the network's input size."""
        return batch_to_network_input(images, self.spec.input_size, self.spec.mean, self.spec.std, self.device, "segment")

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores [B, 150, h, w] at the network's input size."""
        return self.model(self._pixels(images))

    @torch.no_grad()
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Class ids (long, 0..149) [B, H, W], same H, W as ``images`` (on the images' device)."""
        height, width = int(images.shape[-2]), int(images.shape[-1])
        scores = self.logits(images)
        if height * width <= MAX_LOGIT_PIXELS:
            scores = F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=False)
            class_map = scores.argmax(dim=1)
        else:
            class_map = F.interpolate(scores.argmax(dim=1, keepdim=True).float(), size=(height, width),
                                      mode="nearest").squeeze(1).long()
        return class_map.to(images.device)

    def segment_pil(self, image: Image.Image) -> np.ndarray:
        """Class ids [H, W] uint8 for one PIL image (any mode; converted to RGB)."""
        if not isinstance(image, Image.Image):
            raise TypeError(f"segment_pil() takes a PIL image; got {type(image).__name__}")
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0)
        return self.segment(tensor)[0].cpu().numpy().astype(np.uint8)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _digest(path: Path) -> str:
    return weight_files.sha256_file(path)


def _load_hub_checkpoint(spec: SegmenterSpec) -> tuple[nn.Module, dict]:
    """The spec's smp-hub checkpoint from the local cache (never the network), via smp.from_pretrained."""
    if spec.weights is None:
        raise WeightsMissingError(
            f"Segmenter {spec.name!r} has no released ADE20K weights; pass weights='random' (to train it) "
            f"or a checkpoint path, or use {SEGFORMER_B2.name!r}.")
    model_file = weight_files.require(spec.weights)  # fails at once, naming the repo and the command
    return _load_smp_folder(model_file.parent, spec), {
        "name": spec.name, "source": spec.weights.source, "sha256": _digest(model_file)}


def _load_smp_folder(folder: Path, spec: SegmenterSpec) -> nn.Module:
    """A folder written by smp's ``save_pretrained`` (config.json + model.safetensors)."""
    import segmentation_models_pytorch as smp

    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_path} is not a readable segmentation_models_pytorch config: {error}") from error
    if "classes" in config and config["classes"] != spec.num_classes:
        raise ValueError(f"{folder} holds a model with {config.get('classes')} classes; "
                         f"an ADE20K segmenter needs {spec.num_classes}")
    # A local folder: from_pretrained reads it directly and makes no hub request.
    return smp.from_pretrained(str(folder))


def _load_checkpoint_path(path: Path, spec: SegmenterSpec) -> tuple[nn.Module, dict]:
    """A user checkpoint: an smp save_pretrained folder, or a state dict (.safetensors / .pt) for ``spec``."""
    if not path.exists():
        raise WeightsMissingError(f"Segmenter checkpoint not found: {path}")
    if path.is_dir():
        weights_file = path / "model.safetensors"
        if not weights_file.is_file():
            raise WeightsMissingError(f"{path} has no model.safetensors (expected an smp save_pretrained folder)")
        return _load_smp_folder(path, spec), {"name": spec.name, "source": f"local:{path}",
                                             "sha256": _digest(weights_file)}
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
            raise ValueError(f"{path} is not a readable PyTorch checkpoint: {error}") from error
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    model = spec.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit segmenter {spec.name!r} ({spec.arch} + {spec.encoder}): "
                         f"{str(error)[:300]}") from error
    return model, {"name": spec.name, "source": f"local:{path}", "sha256": _digest(path)}


def _build_with_encoder_init(spec: SegmenterSpec) -> tuple[nn.Module, dict, bool]:
    """Architecture for training: ImageNet encoder weights if cached (timm loads them from the file), else random."""
    cached = weight_files.find(spec.encoder_weights) if spec.encoder_weights is not None else None
    if cached is None:
        return spec.build(), {"name": spec.name, "source": "random", "sha256": "random"}, True
    import segmentation_models_pytorch as smp

    # smp hands extra kwargs to timm.create_model; the overlay points timm's own loader at the local file.
    model = getattr(smp, spec.arch)(encoder_name=spec.encoder, encoder_weights=True, classes=spec.num_classes,
                                    pretrained_cfg_overlay={"file": str(cached)}, **dict(spec.arch_kwargs))
    # The decoder and head are still random: the model is not an ADE20K segmenter until trained.
    return model, {"name": spec.name, "source": f"encoder:{spec.encoder_weights.source}",
                   "sha256": _digest(cached)}, True


def load_segmenter(name: str = "segformer-ade20k", weights: str | Path | None = None,
                   device: str | torch.device | None = None) -> Segmenter:
    """Build a segmenter.

    ``weights``: None = the spec's released checkpoint from the local Hugging Face cache
    (:class:`WeightsMissingError` at once if absent, naming the repo and the download command;
    for ``hrnet-w18-ade20k``: ImageNet encoder init when cached, otherwise random);
    ``"random"`` = random initialisation (tests; flagged); or a path (smp folder or state dict).
    """
    spec = SEGMENTERS.get(name)
    if spec is None:
        raise ValueError(f"unknown segmenter {name!r}; choose from {', '.join(SEGMENTERS)}")
    if weights == "random":
        with torch.random.fork_rng(devices=[]):  # reproducible test models, global RNG untouched
            torch.manual_seed(0)
            model = spec.build()
        identity, random_weights = {"name": spec.name, "source": "random", "sha256": "random"}, True
    elif weights is None and spec.weights is None:
        model, identity, random_weights = _build_with_encoder_init(spec)
    elif weights is None:
        model, identity = _load_hub_checkpoint(spec)
        random_weights = False
    else:
        model, identity = _load_checkpoint_path(Path(weights).expanduser(), spec)
        random_weights = False
    identity["random_weights"] = random_weights
    resolved = _resolve_device(device)
    model = model.to(resolved).eval()
    return Segmenter(spec=spec, model=model, random_weights=random_weights, identity=identity, device=resolved)


def _as_numpy_map(class_map: np.ndarray | torch.Tensor) -> np.ndarray:
    array = class_map.detach().cpu().numpy() if isinstance(class_map, torch.Tensor) else np.asarray(class_map)
    if array.ndim < 2:
        raise ValueError(f"a class map is [H, W] or [B, H, W]; got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"a class map holds integer class ids; got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"class ids must be 0..{NUM_CLASSES - 1}; got {array.min()}..{array.max()}")
    return array


def colourise(class_map: np.ndarray | torch.Tensor) -> np.ndarray:
    """ADE20K palette colours: [H, W] -> [H, W, 3] uint8, [B, H, W] -> [B, H, W, 3]."""
    return ADE20K_PALETTE[_as_numpy_map(class_map)]


def colourise_tensor(class_map: torch.Tensor) -> torch.Tensor:
    """[B, H, W] long -> [B, 3, H, W] uint8 on the same device (the TransLocator segmentation input)."""
    if class_map.ndim != 3:
        raise ValueError(f"colourise_tensor takes [B, H, W]; got {tuple(class_map.shape)}")
    palette = torch.from_numpy(ADE20K_PALETTE.copy()).to(class_map.device)
    return palette[class_map.long()].permute(0, 3, 1, 2).contiguous()


def class_shares(class_map: np.ndarray | torch.Tensor) -> list[tuple[str, float]]:
    """(class name, share of the pixels) for every class present, largest first (ties: class id)."""
    array = _as_numpy_map(class_map)
    counts = np.bincount(array.ravel(), minlength=NUM_CLASSES)
    total = counts.sum()
    if total == 0:
        return []
    order = sorted(np.flatnonzero(counts), key=lambda i: (-counts[i], i))
    return [(ADE20K_CLASSES[i], float(counts[i] / total)) for i in order]


def legend(class_map: np.ndarray | torch.Tensor, top: int = 10) -> list[tuple[str, tuple[int, int, int], float]]:
    """The ``top`` largest classes as (name, RGB colour, share), for a UI legend."""
    if top < 1:
        raise ValueError(f"top must be at least 1; got {top}")
    index = {name: i for i, name in enumerate(ADE20K_CLASSES)}
    return [(name, tuple(int(c) for c in ADE20K_PALETTE[index[name]]), share)
            for name, share in class_shares(class_map)[:top]]

