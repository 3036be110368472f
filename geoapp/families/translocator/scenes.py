"""Places365 scene labels (365 categories -> 16 groups -> indoor / nature / urban).

TransLocator multi-tasks on these three levels; the UI shows them as context for a photo.
The classifier is a torchvision ResNet-18 or -50 with 365 outputs, trained by CSAIL on
Places365-Standard (MIT licence). Their checkpoints (``resnet18_places365.pth.tar``,
``resnet50_places365.pth.tar``) are dicts whose ``state_dict`` keys carry the ``module.``
prefix of ``nn.DataParallel``; they are read with ``torch.load(weights_only=True)`` from a
path you give or from torch hub's ``checkpoints`` folder, and fetched only by an explicit
``python -m geoapp weights download places365-resnet18``.

Preprocessing is CSAIL's own (``run_placesCNN_basic.py``): resize to 224 x 224, ImageNet
mean/std. Level-2 and level-1 probabilities are sums of the 365 probabilities over each
group of :func:`~geoapp.families.translocator.places365.scene_hierarchy`, and each level's label is the
argmax of its own probabilities (so a photo split between two kinds of forest still counts
as "forest, field, jungle").
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from geoapp.models import weights as weight_files
from geoapp.families.translocator.places365 import PLACES365_NAMES, scene_hierarchy
from geoapp.models.preprocess import batch_to_network_input
from geoapp.models.weights import WeightFile, WeightsMissingError

__all__ = ["SceneLabeller", "SceneResult", "load_scene_labeller", "scene_hierarchy"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = (224, 224)
NUM_CATEGORIES = 365
CHECKPOINTS: dict[str, WeightFile] = {
    "resnet18": weight_files.PLACES365_RESNET18,
    "resnet50": weight_files.PLACES365_RESNET50,
}


@dataclass(frozen=True)
class SceneResult:
    """Scene labels of one image at the three Places365 levels."""

    label365: str
    index365: int
    probability: float  # of label365
    label16: str
    index16: int
    label3: str  # "indoor", "nature" or "urban"
    index3: int
    top5: list[tuple[str, float]]  # the five most likely categories (name, probability)
    probability16: float = 0.0  # of label16 (summed over its categories)
    probability3: float = 0.0  # of label3

    def to_dict(self) -> dict:
        return {**asdict(self), "top5": [[name, p] for name, p in self.top5]}


def _build_resnet(arch: str) -> nn.Module:
    import torchvision

    if arch not in CHECKPOINTS:
        raise ValueError(f"unknown Places365 architecture {arch!r}; choose from {', '.join(CHECKPOINTS)}")
    return getattr(torchvision.models, arch)(weights=None, num_classes=NUM_CATEGORIES)


def read_places365_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a CSAIL Places365 checkpoint (or of a plain state dict), ``module.`` prefix removed."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({str(error)[:200]}); "
                         f"re-download it with `{weight_files.DOWNLOAD_COMMAND} places365-resnet18`") from error
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (expected {{'state_dict': {{name: tensor}}}})")
    # nn.DataParallel saved every name as "module.<name>".
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


@dataclass
class SceneLabeller:
    """A Places365 classifier with its preprocessing and the scene hierarchy."""

    arch: str
    model: nn.Module
    random_weights: bool
    identity: dict  # name, source, sha256 (or "random"), random_weights
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    names16: tuple[str, ...] = field(init=False)
    names3: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        map365to16, map16to3, self.names16, self.names3 = scene_hierarchy()
        # One-hot group matrices turn 365 probabilities into 16 and 3 by a matrix product.
        self._to16 = F.one_hot(torch.from_numpy(map365to16), 16).float().to(self.device)  # [365, 16]
        self._to3 = F.one_hot(torch.from_numpy(map16to3), 3).float().to(self.device)  # [16, 3]

    @property
    def warnings(self) -> list[str]:
        from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

        return [RANDOM_WEIGHTS_WARNING] if self.random_weights else []

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float [B, 3, H, W] -> normalised float at the network's input size."""
        return batch_to_network_input(images, INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD, self.device, "predict")

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax over the 365 categories, [B, 365]."""
        return self.model(self._pixels(images)).softmax(dim=-1)

    def predict(self, images: torch.Tensor) -> list[SceneResult]:
        """One :class:`SceneResult` per image of a uint8 / [0, 1] float batch [B, 3, H, W]."""
        probs365 = self.probabilities(images)
        probs16 = probs365 @ self._to16
        probs3 = probs16 @ self._to3
        top_p, top_i = probs365.topk(5, dim=-1)
        results = []
        for row in range(probs365.shape[0]):
            i365 = int(top_i[row, 0])
            i16 = int(probs16[row].argmax())
            i3 = int(probs3[row].argmax())
            results.append(SceneResult(
                label365=PLACES365_NAMES[i365], index365=i365, probability=float(top_p[row, 0]),
                label16=self.names16[i16], index16=i16, label3=self.names3[i3], index3=i3,
                top5=[(PLACES365_NAMES[int(i)], float(p)) for p, i in zip(top_p[row], top_i[row])],
                probability16=float(probs16[row, i16]), probability3=float(probs3[row, i3]),
            ))
        return results

    def predict_pil(self, image: Image.Image) -> SceneResult:
        if not isinstance(image, Image.Image):
            raise TypeError(f"predict_pil() takes a PIL image; got {type(image).__name__}")
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return self.predict(torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0))[0]


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str, path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        other = next((a for a in CHECKPOINTS if a != arch), arch)
        raise ValueError(f"{path} does not fit a {arch} with {NUM_CATEGORIES} outputs (is it a {other} "
                         f"checkpoint? pass arch={other!r}): {str(error)[:300]}") from error


def load_scene_labeller(arch: str = "resnet18", weights: str | Path | None = None,
                        device: str | torch.device | None = None) -> SceneLabeller:
    """Build a Places365 scene labeller.

    ``weights``: None = CSAIL's checkpoint for ``arch`` from torch hub's checkpoints folder or
    $GEOAPP_WEIGHTS_DIR (:class:`WeightsMissingError` at once if absent, with the download
    URL and command); ``"random"`` = random weights (tests; flagged); or a checkpoint path.
    """
    if arch not in CHECKPOINTS:
        raise ValueError(f"unknown Places365 architecture {arch!r}; choose from {', '.join(CHECKPOINTS)}")
    if weights == "random":
        with torch.random.fork_rng(devices=[]):  # reproducible, global RNG untouched
            torch.manual_seed(0)
            model = _build_resnet(arch)
        identity = {"name": f"places365-{arch}", "source": "random", "sha256": "random"}
        random_weights = True
    else:
        if weights is None:
            path = weight_files.require(CHECKPOINTS[arch])
            source = CHECKPOINTS[arch].source
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsMissingError(f"Places365 checkpoint not found: {path}. Fix: "
                                          f"{CHECKPOINTS[arch].fix_hint()}")
            source = f"local:{path}"
        model = _build_resnet(arch)
        _load_state(model, read_places365_checkpoint(path), arch, path)
        identity = {"name": f"places365-{arch}", "source": source, "sha256": weight_files.sha256_file(path)}
        random_weights = False
    identity["random_weights"] = random_weights
    resolved = torch.device(device) if device is not None else \
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return SceneLabeller(arch=arch, model=model.to(resolved).eval(), random_weights=random_weights,
                         identity=identity, device=resolved)
