"""TransLocator inference: photo -> segmentation map -> dual-branch ViT -> geocell probabilities -> Prediction.

The family contract (:class:`~geoapp.families.base.Family`), so the CLI, UI and case store treat it
like every other family. Differences from retrieval:

* **Candidates are the fine geocells**: each stands for its cell's mean photo position; the
  probabilities are the softmax over the fine head's logits (TenCrop: the ten crops' logits are
  averaged first). Near-duplicate cells are merged like gallery points (``merge_km``).
* **Region restriction**: only fine cells whose mean coordinate lies inside the region are kept
  and their probabilities renormalised (a softmax over the kept logits). Cells are large in
  sparsely photographed places, so a small region may hold no cell centre: that is a clear
  :class:`~geoapp.geo.regions.RegionError`. No extra points are generated (``region_points`` is
  accepted for API parity and ignored: a classifier scores only its own cells).
* **Extra evidence** on each :class:`TransLocatorPrediction`: the segmentation map the model saw
  (class ids, colourised image, legend, class shares), the scene predicted by its scene heads
  (Places365 3 / 16 / 365 levels) and the attentive-fusion branch weights.
* **Grad-CAM** targets the chosen fine cell's logit, one map per branch (photo, segmentation).
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from geoapp.families.base import CandidateSpace, Family, FamilyIdentity, GradCamResult, PredictOptions
from geoapp.families.translocator.results import SegmentationSummary, TransLocatorPrediction
from geoapp.geo.geocells import GeocellHierarchy
from geoapp.geo.regions import Region, RegionError, parse_region
from geoapp.imaging import LoadedImage, load_image
from geoapp.families.translocator.network import (IN21K_MEAN, IN21K_STD, SEG_MEAN, SEG_STD, TransLocator, TransLocatorConfig,
                                        build_translocator, load_translocator_checkpoint)
from geoapp.models.weights import WeightsMissingError
from geoapp.results.prediction import Prediction, build_prediction
from geoapp.runtime.batch import (PendingImage, auto_merge_km, failed_record, record_parameters, resolve_device,
                                  run_batched, source_name)
from geoapp.settings import get_settings


CHECKPOINT_NAME = "translocator.pt"
ASSET_CHECKPOINT = Path(__file__).resolve().parents[3] / "assets" / "translocator" / CHECKPOINT_NAME
# Default cells for a random-weight model: GeoCLIP's 100K gallery partitioned like the paper's
# cells (min 50, max 5000/2000/1000 photos per cell) would give ~300 fine cells; these maxima
# are scaled to the gallery's size (~1/47 of MP-16) so a random model's map has useful detail.
DEFAULT_CELL_MIN = 5
DEFAULT_CELL_MAX = (1000, 400, 150)
DEFAULT_SEGMENTER = "segformer-ade20k"  # SegFormer-B2 on ADE20K (geoapp.families.translocator.segmentation)
TENCROP_SCALE = 256 / 224  # shorter side before cropping, relative to the crop (as torchvision's TenCrop recipe)


@dataclass
class CellCandidates:
    """The fine cells scored for a prediction (all of them, or those inside a region)."""

    coords: np.ndarray  # [N, 2] float64 mean (lat, lon) of each kept cell
    indices: np.ndarray  # [N] int64 index of each kept cell in the fine level
    region: Region | None
    gallery_points: int  # = N (named like the GeoCLIP CandidateSet for shared reporting)
    extra_points: int = 0


def default_checkpoint_paths() -> list[Path]:
    """Where a trained TransLocator is looked for when no checkpoint is given."""
    settings = get_settings()
    paths = []
    if settings.weights_dir is not None:
        paths += [settings.weights_dir / CHECKPOINT_NAME, settings.weights_dir / "translocator" / CHECKPOINT_NAME]
    return paths + [ASSET_CHECKPOINT]


@functools.lru_cache(maxsize=2)
def default_cell_table() -> GeocellHierarchy:
    """Geocells for a random-weight model: the GeoCLIP gallery partitioned with our partitioner."""
    from geoapp.galleries.gallery import Gallery

    coords = Gallery.default().coords.astype(np.float64)
    return GeocellHierarchy.build(coords[:, 0], coords[:, 1], min_count=DEFAULT_CELL_MIN, max_counts=DEFAULT_CELL_MAX)


def _normalise(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return TF.normalize(pixels.float().div(255.0), list(mean), list(std))


class TransLocatorGeolocator(Family):
    """Predict where photos were taken with a TransLocator. Build with :meth:`load` or the registry."""

    def __init__(self, model: TransLocator, cells: GeocellHierarchy, segmenter, device: torch.device,
                 weights_sha256: str, source: str) -> None:
        if len(cells.fine) != model.config.cell_counts[2]:
            raise ValueError(f"{len(cells.fine)} fine cells for a model with {model.config.cell_counts[2]} fine outputs")
        if segmenter is None and model.config.dual_branch:
            raise ValueError("the dual-branch TransLocator needs a segmenter for its second input")
        self.model = model.to(device).eval()
        self.cells = cells
        self.segmenter = segmenter
        self.device = device
        self.weights_sha256 = weights_sha256
        self.source = source
        self._all_cells = CellCandidates(cells.fine.coords, np.arange(len(cells.fine)), None, len(cells.fine))
        from geoapp.families.translocator import SPEC

        self.spec = SPEC  # the registry replaces it for a variant

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str | torch.device | None = None,
             backbone_weights: str | None = None, segmenter=None,
             config: TransLocatorConfig | None = None) -> "TransLocatorGeolocator":
        """Load a trained checkpoint (default: ``$GEOAPP_WEIGHTS_DIR/translocator.pt`` or
        ``assets/translocator/translocator.pt``; ``backbone_weights=PATH`` works too), or with
        ``backbone_weights="random"`` and no checkpoint a random model (``config``, default the
        paper's architecture) over :func:`default_cell_table`.
        ``segmenter``: a loaded segmenter, a segmenter name, or None for the default one (random
        too when the model is random).
        """
        resolved = resolve_device(device)
        if backbone_weights not in (None, "random"):
            if checkpoint is not None:
                raise ValueError("give the TransLocator checkpoint once: checkpoint=PATH (CLI: --checkpoint PATH)")
            warnings.warn("--backbone-weights PATH for a TransLocator checkpoint is deprecated: use --checkpoint PATH "
                          "(API: checkpoint=PATH); --backbone-weights now means the backbone only",
                          DeprecationWarning, stacklevel=3)
            checkpoint, backbone_weights = backbone_weights, None  # the old meaning, still accepted
        if checkpoint is None and backbone_weights != "random":
            checkpoint = next((p for p in default_checkpoint_paths() if p.is_file()), None)
            if checkpoint is None:
                looked = ", ".join(str(p) for p in default_checkpoint_paths())
                raise WeightsMissingError(
                    f"No trained TransLocator checkpoint ({CHECKPOINT_NAME}). To fix: train one with training/translocator "
                    f"(see training/README.md) and pass its path (checkpoint=PATH; on the command line --checkpoint PATH) "
                    f"or put it at {ASSET_CHECKPOINT}; "
                    f"for a test run use backbone weights 'random' (meaningless, flagged results). Looked in: {looked}."
                )
        if checkpoint is not None:
            model, cells, meta = load_translocator_checkpoint(checkpoint)
            sha, source = meta["sha256"], str(checkpoint)
        else:
            cells = default_cell_table()
            base = config or TransLocatorConfig()
            model = build_translocator(replace(base, cell_counts=cells.sizes), "random")
            sha, source = "random", "random"
        if segmenter is None and not model.config.dual_branch:
            return cls(model, cells, None, resolved, sha, source)  # ViT-MT needs no segmentation map
        return cls(model, cells, _resolve_segmenter(segmenter, model.random_weights, resolved), resolved, sha, source)

    @property
    def random_weights(self) -> bool:
        return bool(self.model.random_weights or getattr(self.segmenter, "random_weights", False))

    @property
    def preprocess_size(self) -> int:
        return self.model.config.img_size

    def describe(self) -> FamilyIdentity:
        """Model, weights, device and geocells in use (for UIs, reports and case records)."""
        config = self.model.config
        spec = self.spec
        fine = len(self.cells.fine)
        return FamilyIdentity(
            family=spec.key, label=spec.label, weights=self.model.weights_description,
            weights_sha256=self.weights_sha256, device=str(self.device), random_weights=self.random_weights,
            candidates=f"{fine:,} fine geocells ({self.cells.fine.name})", input_domain=spec.input_domain,
            caveat=spec.caveat,
            details={"variant": "translocator" if config.dual_branch else "translocator-vit-mt",
                     "backbone": f"{config.backbone} x{2 if config.dual_branch else 1} ({config.embed_dim}-d, depth "
                                 f"{config.depth}, {config.img_size}px)",
                     "checkpoint": self.source, "segmenter": _segmenter_identity(self.segmenter),
                     "geocells": {"name": self.cells.fine.name, "coarse": len(self.cells.coarse),
                                  "middle": len(self.cells.middle), "fine": fine}})

    # ------------------------------------------------------------------ candidates
    def candidate_set(self, region: str | dict | Region | None = None, extra_points: int | None = None) -> CellCandidates:
        """All fine cells, or those whose mean coordinate lies inside ``region`` (RegionError when none does)."""
        if region is None:
            return self._all_cells
        parsed = parse_region(region)
        coords = self._all_cells.coords
        inside = np.flatnonzero(np.asarray(parsed.contains(coords[:, 0], coords[:, 1]), dtype=bool))
        if inside.size == 0:
            raise RegionError(f"none of this model's {len(coords)} fine geocells has its centre inside {parsed.key}; "
                              "choose a larger region (cells are large where few photos were taken)")
        return CellCandidates(coords[inside], inside, parsed, int(inside.size))

    def restrict(self, region: Any) -> CandidateSpace:
        cells = self.candidate_set(region)
        where = f" inside {cells.region.label}" if cells.region is not None else ""
        return CandidateSpace(cells.region, len(cells.coords), f"{len(cells.coords):,} fine geocells{where}")

    # ------------------------------------------------------------------ images
    def load_image(self, image, tencrop: bool = False) -> LoadedImage:
        """Decode and normalise an image (path, bytes, file object or PIL image)."""
        side = self.preprocess_size
        return load_image(image, min_side=int(round(side * TENCROP_SCALE)) if tencrop else side)

    def crops(self, image: Image.Image, tencrop: bool = False) -> torch.Tensor:
        """uint8 [1 or 10, 3, S, S]: centre crop, or TenCrop (4 corners + centre, and their flips)."""
        side = self.preprocess_size
        if tencrop:
            resized = TF.resize(image.convert("RGB"), int(round(side * TENCROP_SCALE)), interpolation=TF.InterpolationMode.BICUBIC)
            return torch.stack(TF.ten_crop(TF.pil_to_tensor(resized), side))
        resized = TF.resize(image.convert("RGB"), side, interpolation=TF.InterpolationMode.BICUBIC)
        return TF.pil_to_tensor(TF.center_crop(resized, side)).unsqueeze(0)

    def model_inputs(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """uint8 crops -> (normalised RGB, normalised colourised segmentation, class maps [N, H, W]).

        The segmentation parts are None for ViT-MT without a segmenter (the map is evidence only there).
        """
        from geoapp.families.translocator.segmentation import colourise_tensor

        crops = crops.to(self.device)
        rgb = _normalise(crops, IN21K_MEAN, IN21K_STD)
        if self.segmenter is None:
            return rgb, None, None
        class_maps = self.segmenter.segment(crops)
        return rgb, _normalise(colourise_tensor(class_maps), SEG_MEAN, SEG_STD), class_maps

    @torch.inference_mode()
    def forward(self, rgb: torch.Tensor, seg: torch.Tensor | None, crops_per_image: int) -> dict[str, torch.Tensor]:
        """Logits averaged over each image's crops (TenCrop), float32 on CPU."""
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda"):
            output = self.model(rgb, seg if self.model.config.dual_branch else None)

        def per_image(values: torch.Tensor) -> torch.Tensor:
            return values.float().view(-1, crops_per_image, values.shape[-1]).mean(dim=1).cpu()

        result = {"fine": per_image(output.cell_logits[2]), "branch_weights": per_image(output.branch_weights)}
        for level, logits in enumerate(output.scene_logits):
            result[f"scene{level}"] = per_image(logits)
        return result

    # ------------------------------------------------------------------ predictions
    def _predict(self, images: list, options: PredictOptions, on_error: str, progress) -> list[Prediction]:
        """Batched forwards; unreadable inputs get a record with ``.error``."""
        candidates = self.candidate_set(options.region)
        merge = options.merge_km if options.merge_km is not None else auto_merge_km(candidates.region)
        tencrop, top_k = options.tencrop, int(options.top_k)
        crops_per_image = 10 if tencrop else 1

        def prepare(image) -> tuple[LoadedImage, torch.Tensor]:
            loaded = self.load_image(image, tencrop)
            return loaded, self.crops(loaded.image, tencrop)

        def predict_pending(pending: list[PendingImage]) -> list[Prediction]:
            start = time.perf_counter()
            rgb, seg, class_maps = self.model_inputs(torch.cat([p.tensors for p in pending]))
            segment_ms = (time.perf_counter() - start) * 1000 / len(pending)
            start = time.perf_counter()
            outputs = self.forward(rgb, seg, crops_per_image)
            forward_ms = (time.perf_counter() - start) * 1000 / len(pending)
            predictions = []
            for row, item in enumerate(pending):
                start = time.perf_counter()
                # The map shown is the one of the centre crop (index 4 of a TenCrop).
                shown = row * crops_per_image + (4 if tencrop else 0)
                prediction = self._prediction(item.image, item.loaded, outputs, row, candidates, top_k, merge,
                                              None if class_maps is None else class_maps[shown])
                prediction.parameters = self._parameters(top_k, tencrop, candidates, merge)
                prediction.timings_ms = {"load": item.load_ms, "segment": segment_ms, "forward": forward_ms,
                                         "postprocess": (time.perf_counter() - start) * 1000}
                predictions.append(prediction)
            return predictions

        parameters = self._parameters(top_k, tencrop, candidates, None)
        return run_batched(images, prepare, predict_pending,
                           lambda image, message: failed_record(image, message, parameters),
                           on_error, options.batch_size, progress)

    def explain(self, image: Any, lat: float, lon: float) -> dict[str, GradCamResult]:
        """Grad-CAM of each branch towards the logit of the fine cell nearest to (lat, lon)."""
        from geoapp.families.translocator.explain import gradcam_translocator, nearest_fine_cell

        maps = gradcam_translocator(self, image, nearest_fine_cell(self, lat, lon))
        return {"photo": maps.rgb, **({"segmentation": maps.segmentation} if maps.segmentation is not None else {})}

    # ------------------------------------------------------------------ helpers
    def _prediction(self, image, loaded: LoadedImage, outputs: dict[str, torch.Tensor], row: int,
                    candidates: CellCandidates, top_k: int, merge_km: float,
                    class_map: torch.Tensor | None) -> TransLocatorPrediction:
        # Softmax over the kept cells only = softmax over all cells, restricted and renormalised.
        kept = outputs["fine"][row][torch.from_numpy(candidates.indices)]
        probabilities = kept.double().softmax(dim=0).numpy()
        base = build_prediction(source_name(image, loaded), candidates.coords[:, 0], candidates.coords[:, 1],
                                probabilities, top_k=int(top_k), merge_km=merge_km)
        weights = outputs["branch_weights"][row]
        prediction = TransLocatorPrediction(
            **{name: getattr(base, name) for name in Prediction.__dataclass_fields__},
            scene=self._scene(outputs, row),
            segmentation=None if class_map is None else SegmentationSummary.from_class_map(
                class_map.cpu().numpy(), _segmenter_identity(self.segmenter)),
            branch_weights={"rgb": float(weights[0]), "segmentation": float(weights[1])},
        )
        prediction.image = loaded.to_dict()
        prediction.region = candidates.region
        return prediction

    def _scene(self, outputs: dict[str, torch.Tensor], row: int):
        """The scene heads' answer as a ``SceneResult`` (each level: argmax of its own head)."""
        from geoapp.families.translocator.places365 import PLACES365_NAMES, SCENE3_NAMES, SCENE16_NAMES
        from geoapp.families.translocator.scenes import SceneResult

        if self.model.config.scene_counts != (3, 16, 365):
            return None  # a custom scene setup: no names to show
        p3, p16, p365 = (outputs[f"scene{level}"][row].double().softmax(dim=0) for level in range(3))
        i3, i16, i365 = (int(p.argmax()) for p in (p3, p16, p365))
        top5 = torch.topk(p365, 5)
        return SceneResult(label365=PLACES365_NAMES[i365], index365=i365, probability=float(p365[i365]),
                           label16=SCENE16_NAMES[i16], index16=i16, label3=SCENE3_NAMES[i3], index3=i3,
                           top5=[(PLACES365_NAMES[int(i)], float(v)) for v, i in zip(top5.values, top5.indices)],
                           probability16=float(p16[i16]), probability3=float(p3[i3]))

    def _parameters(self, top_k: int, tencrop: bool, candidates: CellCandidates, merge_km: float | None) -> dict:
        return record_parameters(top_k, tencrop, candidates, merge_km,
                                 candidates_are="fine geocells (mean photo position of each cell)")


def _resolve_segmenter(segmenter, model_is_random: bool, device: torch.device):
    """A loaded segmenter as is; a name or None -> ``load_segmenter`` (random weights with a random model)."""
    if segmenter is not None and not isinstance(segmenter, str):
        return segmenter
    from geoapp.families.translocator.segmentation import load_segmenter

    name = segmenter or DEFAULT_SEGMENTER
    return load_segmenter(name, weights="random" if model_is_random else None, device=device)


def _segmenter_identity(segmenter) -> dict:
    if segmenter is None:
        return {}
    identity = dict(getattr(segmenter, "identity", {}) or {})
    identity.setdefault("name", getattr(getattr(segmenter, "spec", None), "name", type(segmenter).__name__))
    identity["random_weights"] = bool(getattr(segmenter, "random_weights", False))
    return identity


def load(spec, options) -> TransLocatorGeolocator:
    """Registry loader: ``options.checkpoint`` (default: $GEOAPP_WEIGHTS_DIR or assets/translocator), or
    ``backbone_weights="random"`` for a random model; extras ``segmenter`` (a name or a loaded one) and
    ``config`` (a TransLocatorConfig for random models)."""
    config = options.extras.get("config")
    if isinstance(config, str):
        config = TransLocatorConfig.preset("tiny-64" if config == "tiny" else config)  # "tiny": the 64 px test model
    return TransLocatorGeolocator.load(checkpoint=options.checkpoint, device=options.device,
                                       backbone_weights=options.backbone_weights,
                                       segmenter=options.extras.get("segmenter"), config=config)
