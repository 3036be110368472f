"""Geolocator: model + cached gallery + region prior -> Prediction.

A prediction is one backbone forward (ten for TenCrop) and one matrix product against
location embeddings that were computed once and cached (see :mod:`geoapp.gallery`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geoapp.gallery import Gallery, LocationEmbeddingCache
from geoapp.geo.distance import validate_latlon
from geoapp.geo.regions import Region, RegionError, parse_region
from geoapp.imaging import ImageLoadError, LoadedImage, load_image
from geoapp.models.backbones import BACKBONES
from geoapp.models.geoclip import GeoCLIP, ModelIdentity, build_geoclip
from geoapp.models.preprocess import centre_crop_tensor, decode_side, ten_crop_tensor
from geoapp.prediction import RANDOM_WEIGHTS_WARNING, Prediction, build_prediction
from geoapp.settings import get_settings

log = logging.getLogger(__name__)

AUTO_MODEL = "auto"  # GeoCLIP when its CLIP weights are on this machine, else the shipped SatWorld model
SATWORLD_NOTICE = (
    "SatWorld model: trained on satellite/aerial imagery (NASA Blue Marble crops); it is not made for "
    "ground-level photos, so for those its answer says nothing about where the photo was taken."
)

MODELS = ("geoclip", "satworld", "translocator", "ensemble")  # satworld: issue 6; translocator, ensemble: issue 7
DEFAULT_MERGE_KM = 25.0  # the paper's "city" threshold: candidates closer than this are one place
REGION_EXTRA_POINTS = 10_000  # extra candidates generated inside a region (see Region.candidate_points)
_ENCODE_CHUNK = 8192


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; a clear error for an unusable device."""
    if device is None or str(device) == "auto":
        device = get_settings().device or ("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu")
    return resolved


@dataclass
class CandidateSet:
    """The points scored for a prediction and their normalised embeddings (on the model's device)."""

    coords: np.ndarray  # [N, 2] float32
    embeddings: torch.Tensor  # [N, 512]
    region: Region | None
    gallery_points: int
    extra_points: int


class Geolocator:
    """Predict where photos were taken. Build with :meth:`load`."""

    def __init__(self, model: GeoCLIP, identity: ModelIdentity, gallery: Gallery, device: torch.device,
                 cache_dir: Path | None) -> None:
        self.model = model.to(device).eval()
        self.identity = identity
        self.gallery = gallery
        self.device = device
        self.embedding_cache = LocationEmbeddingCache(cache_dir, f"geoclip:{identity.heads_sha256}")
        self._lock = threading.RLock()
        self._gallery_set: CandidateSet | None = None
        self._region_sets: OrderedDict[str, CandidateSet] = OrderedDict()
        self._tokenizer = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, model: str = "geoclip", device: str | torch.device | None = None,
             backbone_weights: str | Path | None = None, *, backbone: str = "ViT-L-14",
             heads: str | Path = "pretrained", gallery: str | Path | Gallery | None = None,
             cache_dir: str | Path | None = None, checkpoint: str | Path | None = None,
             segmenter=None) -> "Geolocator":
        """Load a geolocator.

        ``backbone_weights``: None (real OpenAI CLIP weights, from the local cache; fails at
        once with the fix when missing), ``"random"`` (real architecture, random weights: for
        tests and benchmarks only, every result is flagged), or a checkpoint path.
        ``gallery``: None for GeoCLIP's 100K MP-16 gallery, or a CSV path / :class:`Gallery`.
        ``checkpoint``/``segmenter``: TransLocator and the ensemble only (see
        :mod:`geoapp.translocator_predict` and :mod:`geoapp.ensemble`, whose geolocators have the
        same prediction API and results).
        """
        if model not in MODELS:
            raise ValueError(f"Unknown model {model!r}; available: {', '.join(MODELS)}")
        if model == "translocator":
            from geoapp.translocator_predict import TransLocatorGeolocator

            return TransLocatorGeolocator.load(checkpoint=checkpoint, device=device, backbone_weights=backbone_weights,
                                               segmenter=segmenter)
        if model == "ensemble":
            # TransLocator (``checkpoint``, or random with backbone_weights="random") + GeoCLIP (same backbone weights).
            from geoapp.ensemble import EnsembleGeolocator
            from geoapp.translocator_predict import TransLocatorGeolocator

            random = backbone_weights == "random"
            # A path in backbone_weights is the TransLocator checkpoint (the CLI's --backbone-weights PATH).
            path = None if backbone_weights in (None, "random") else backbone_weights
            clip_weights = "random" if random else None
            cells = TransLocatorGeolocator.load(checkpoint=checkpoint or path, device=device,
                                                backbone_weights="random" if random else None,
                                                segmenter=segmenter)
            retrieval = cls.load("geoclip", device, clip_weights, backbone=backbone, heads=heads, gallery=gallery,
                                 cache_dir=cache_dir)
            return EnsembleGeolocator(retrieval, cells)
        if backbone not in BACKBONES:
            raise ValueError(f"Unknown backbone {backbone!r}; available: {', '.join(BACKBONES)}")
        resolved = resolve_device(device)
        if gallery is None:
            gallery_obj = Gallery.default()
        elif isinstance(gallery, Gallery):
            gallery_obj = gallery
        else:
            gallery_obj = Gallery.from_csv(gallery)
        if model == "satworld":
            # SatWorld (issue 6): the shipped offline model; ``heads`` may name another SatWorld checkpoint.
            from geoapp.models.satworld import load_satworld

            network, identity = load_satworld(None if heads == "pretrained" else heads)
        else:
            network, identity = build_geoclip(backbone, backbone_weights, heads)
        cache = Path(cache_dir) if cache_dir is not None else get_settings().embeddings_dir
        return cls(network, identity, gallery_obj, resolved, cache)

    @property
    def random_weights(self) -> bool:
        return self.identity.random_weights

    def describe(self) -> dict:
        """Model, weights, device and gallery in use (for UIs, reports and case records)."""
        return {
            **self.identity.to_dict(),
            "device": str(self.device),
            "gallery": self.gallery.name,
            "gallery_points": len(self.gallery),
            "gallery_sha256": self.gallery.digest,
        }

    # ------------------------------------------------------------------ locations
    @torch.inference_mode()
    def encode_locations(self, latlon: Sequence[Sequence[float]] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw (un-normalised) location embeddings, float32 CPU tensor [N, 512]."""
        coords = torch.as_tensor(np.asarray(latlon, dtype=np.float32) if not isinstance(latlon, torch.Tensor) else latlon,
                                 dtype=torch.float32)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"latlon must have shape [N, 2] (lat, lon); got {tuple(coords.shape)}")
        validate_latlon(coords[:, 0].numpy(), coords[:, 1].numpy())
        chunks = [self.model.encode_locations(chunk.to(self.device)).float().cpu()
                  for chunk in coords.split(_ENCODE_CHUNK)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.model.location_encoder.out_features)

    def _normalised_embeddings(self, coords: np.ndarray) -> np.ndarray:
        return F.normalize(self.encode_locations(coords), dim=-1).numpy()

    def _embed(self, coords: np.ndarray) -> torch.Tensor:
        cached = self.embedding_cache.get(coords, self._normalised_embeddings)
        return torch.from_numpy(np.array(cached, dtype=np.float32, copy=True)).to(self.device)

    def candidate_set(self, region: str | dict | Region | None = None, extra_points: int = REGION_EXTRA_POINTS) -> CandidateSet:
        """Gallery (and, for a region, gallery points inside it plus a dense grid of extra points)."""
        with self._lock:
            if self._gallery_set is None:
                self._gallery_set = CandidateSet(self.gallery.coords, self._embed(self.gallery.coords), None,
                                                 len(self.gallery), 0)
            if region is None:
                return self._gallery_set
            parsed = parse_region(region)
            key = f"{parsed.key}|{extra_points}"
            if key in self._region_sets:
                self._region_sets.move_to_end(key)
                return self._region_sets[key]
            gallery = self._gallery_set
            inside = np.asarray(parsed.contains(gallery.coords[:, 0].astype(np.float64), gallery.coords[:, 1].astype(np.float64)))
            if extra_points > 0:
                extra = np.asarray(parsed.candidate_points(max_points=extra_points), dtype=np.float32).reshape(-1, 2)
            elif inside.any():
                extra = np.zeros((0, 2), dtype=np.float32)  # gallery points only (paper's Table 5 protocol)
            else:
                raise RegionError(f"no gallery point lies inside {parsed.key}; allow extra region points to search it")
            coords = np.concatenate([gallery.coords[inside], extra]).astype(np.float32)
            embeddings = torch.cat([gallery.embeddings[torch.from_numpy(np.flatnonzero(inside)).to(self.device)],
                                    self._embed(extra) if len(extra) else gallery.embeddings[:0]])
            result = CandidateSet(coords, embeddings, parsed, int(inside.sum()), len(extra))
            self._region_sets[key] = result
            while len(self._region_sets) > 8:
                self._region_sets.popitem(last=False)
            return result

    # ------------------------------------------------------------------ images
    def pixels(self, loaded: LoadedImage, tencrop: bool = False) -> torch.Tensor:
        """Backbone input for a decoded image: the CLIP centre crop [1, 3, S, S], or its ten crops [10, 3, S, S]."""
        cfg = self.model.backbone.spec.preprocess
        return ten_crop_tensor(loaded.image, cfg) if tencrop else centre_crop_tensor(loaded.image, cfg)

    def load_image(self, image, tencrop: bool = False) -> LoadedImage:
        """Decode and normalise an image (path, bytes, file object or PIL image)."""
        return load_image(image, min_side=decode_side(self.model.backbone.spec.preprocess, tencrop))

    @torch.inference_mode()
    def image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw image embeddings [B, 512] for preprocessed pixels (half precision backbone on CUDA)."""
        pixels = pixels.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                return self.model.encode_image(pixels).float()
        return self.model.encode_image(pixels)

    @torch.inference_mode()
    def location_logits(self, image_embeddings: torch.Tensor, coords: np.ndarray) -> torch.Tensor:
        """Logits [B, N] of raw image embeddings against any (lat, lon) points (the location
        encoder is continuous, so points outside the gallery score like gallery points)."""
        points = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
        locations = torch.from_numpy(self._normalised_embeddings(points)).to(self.device)
        return self.model.logits(image_embeddings, locations)

    @torch.inference_mode()
    def _probabilities(self, embeddings: torch.Tensor, crops_per_image: int, candidates: CandidateSet) -> np.ndarray:
        logits = self.model.logits(embeddings, candidates.embeddings)
        # TenCrop: average the logits of an image's crops before the softmax (paper evaluation).
        logits = logits.view(-1, crops_per_image, logits.shape[-1]).mean(dim=1)
        return logits.double().softmax(dim=-1).cpu().numpy()

    # ------------------------------------------------------------------ predictions
    def predict(self, image, top_k: int = 5, region: str | dict | Region | None = None, tencrop: bool = False,
                merge_km: float | None = None, region_points: int = REGION_EXTRA_POINTS) -> Prediction:
        """Predict one image. Bad images raise :class:`~geoapp.imaging.ImageLoadError`; bad regions
        raise :class:`~geoapp.geo.regions.RegionError` (both ``ValueError``)."""
        result = self.predict_batch([image], top_k=top_k, region=region, tencrop=tencrop, merge_km=merge_km,
                                    on_error="raise", region_points=region_points)
        return result[0]

    def predict_batch(self, images: Iterable, top_k: int = 5, region: str | dict | Region | None = None,
                      tencrop: bool = False, merge_km: float | None = None, batch_size: int = 8,
                      on_error: str = "record", progress: Callable[[int], None] | None = None,
                      region_points: int = REGION_EXTRA_POINTS) -> list[Prediction]:
        """Predict many images with batched forwards.

        With ``on_error="record"`` (default) every input gets a :class:`Prediction`; those that
        could not be read carry ``.error`` and no candidates, and the batch carries on.
        ``region_points``: at most this many extra grid points inside a region (0 = gallery
        points only, the GeoCLIP paper's Table 5 protocol).
        """
        check_batch_options(top_k, on_error)
        candidates = self.candidate_set(region, extra_points=region_points)
        merge = merge_km if merge_km is not None else auto_merge_km(candidates.region)
        crops = 10 if tencrop else 1

        def prepare(image) -> tuple[LoadedImage, torch.Tensor]:
            loaded = self.load_image(image, tencrop)
            return loaded, self.pixels(loaded, tencrop)

        def predict_pending(pending: list[PendingImage]) -> list[Prediction]:
            start = time.perf_counter()
            embeddings = self.image_embeddings(torch.cat([p.tensors for p in pending]))
            forward_ms = (time.perf_counter() - start) * 1000 / len(pending)
            start = time.perf_counter()
            probabilities = self._probabilities(embeddings, crops, candidates)
            score_ms = (time.perf_counter() - start) * 1000 / len(pending)
            predictions = []
            for item, probs in zip(pending, probabilities):
                start = time.perf_counter()
                prediction = build_prediction(source_name(item.image, item.loaded), candidates.coords[:, 0],
                                              candidates.coords[:, 1], probs, top_k=int(top_k), merge_km=merge)
                self._annotate(prediction, item.loaded, candidates, top_k, tencrop, merge)
                prediction.timings_ms = {"load": item.load_ms, "forward": forward_ms, "score": score_ms,
                                         "postprocess": (time.perf_counter() - start) * 1000}
                predictions.append(prediction)
            return predictions

        def failed(image, message: str) -> Prediction:
            return self._failed(image, message, top_k, tencrop, candidates)

        return run_batched(images, prepare, predict_pending, failed, on_error, batch_size, progress)

    # ------------------------------------------------------------------ text -> map
    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP text features of ``texts`` through GeoCLIP's image head (paper §4.4), raw [B, 512]."""
        if self._tokenizer is None:
            from geoapp.models.backbones import clip_tokenizer

            self._tokenizer = clip_tokenizer()
        tokens = self._tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens).float()

    def text_map(self, text: str, top_k: int = 10, region: str | dict | Region | None = None,
                 merge_km: float | None = None, region_points: int = REGION_EXTRA_POINTS) -> Prediction:
        """Where on the map does a text description fit? Same candidates, merging and surface as photos."""
        query = (text or "").strip()
        if not query:
            raise ValueError("the text query is empty")
        if len(query) > 300:
            raise ValueError("the text query is too long (at most 300 characters)")
        candidates = self.candidate_set(region, extra_points=region_points)
        merge = merge_km if merge_km is not None else auto_merge_km(candidates.region)
        start = time.perf_counter()
        probabilities = self._probabilities(self.text_embeddings([query]), 1, candidates)[0]
        scored = time.perf_counter()
        prediction = build_prediction(query, candidates.coords[:, 0], candidates.coords[:, 1], probabilities,
                                      top_k=int(top_k), merge_km=merge)
        prediction.model = self.describe()
        prediction.parameters = {**self._parameters(top_k, False, candidates, merge), "query": query}
        prediction.region = candidates.region
        if self.random_weights:
            prediction.warnings.append(RANDOM_WEIGHTS_WARNING)
        prediction.timings_ms = {"encode_and_score": (scored - start) * 1000,
                                 "postprocess": (time.perf_counter() - scored) * 1000}
        return prediction

    # ------------------------------------------------------------------ helpers
    def _parameters(self, top_k: int, tencrop: bool, candidates: CandidateSet, merge_km: float | None) -> dict:
        return {
            "top_k": int(top_k),
            "tencrop": bool(tencrop),
            "region": candidates.region.key if candidates.region is not None else None,
            "merge_km": merge_km,
            "candidate_points": int(len(candidates.coords)),
            "gallery_points": candidates.gallery_points,
            "extra_region_points": candidates.extra_points,
        }

    def _annotate(self, prediction: Prediction, loaded: LoadedImage, candidates: CandidateSet, top_k: int,
                  tencrop: bool, merge_km: float) -> None:
        prediction.model = self.describe()
        prediction.parameters = self._parameters(top_k, tencrop, candidates, merge_km)
        prediction.image = loaded.to_dict()
        prediction.region = candidates.region
        if self.random_weights:
            prediction.warnings.append(RANDOM_WEIGHTS_WARNING)
        if self.identity.model == "satworld":
            prediction.warnings.append(SATWORLD_NOTICE)

    def _failed(self, image, message: str, top_k: int, tencrop: bool, candidates: CandidateSet) -> Prediction:
        return Prediction(source=source_name(image, None), error=message, model=self.describe(),
                          parameters=self._parameters(top_k, tencrop, candidates, None))


@dataclass
class PendingImage:
    """A decoded input waiting for its batch's forward."""

    index: int
    image: object  # as given by the caller (path, bytes, ...)
    loaded: LoadedImage
    tensors: torch.Tensor
    load_ms: float


def check_batch_options(top_k: int, on_error: str) -> None:
    if not 1 <= int(top_k) <= 1000:
        raise ValueError(f"top_k must be between 1 and 1000; got {top_k}")
    if on_error not in ("record", "raise"):
        raise ValueError("on_error must be 'record' or 'raise'")


def run_batched(images: Iterable, prepare: Callable[[object], tuple[LoadedImage, torch.Tensor]],
                predict_pending: Callable[[list[PendingImage]], list[Prediction]],
                failed: Callable[[object, str], Prediction], on_error: str, batch_size: int,
                progress: Callable[[int], None] | None) -> list[Prediction]:
    """The batch loop every geolocator shares: decode each input, forward full batches, keep order.

    An input that cannot be read (:class:`ImageLoadError`) raises with ``on_error="raise"``, else
    gets ``failed(image, message)`` in its place and the batch carries on.
    """
    images = list(images)
    results: list[Prediction | None] = [None] * len(images)
    pending: list[PendingImage] = []

    def drain() -> None:
        if pending:
            for item, prediction in zip(pending, predict_pending(pending)):
                results[item.index] = prediction
                if progress:
                    progress(1)
            pending.clear()

    for index, image in enumerate(images):
        start = time.perf_counter()
        try:
            loaded, tensors = prepare(image)
        except ImageLoadError as error:
            if on_error == "raise":
                raise
            results[index] = failed(image, str(error))
            if progress:
                progress(1)
            continue
        pending.append(PendingImage(index, image, loaded, tensors, (time.perf_counter() - start) * 1000))
        if len(pending) >= max(1, int(batch_size)):
            drain()
    drain()
    return [r for r in results if r is not None]


def auto_merge_km(region: Region | None) -> float:
    """25 km worldwide; inside a region, finer (1/40 of its extent, at least 0.5 km) so small areas keep detail."""
    if region is None:
        return DEFAULT_MERGE_KM
    return float(min(DEFAULT_MERGE_KM, max(0.5, region.extent_km / 40)))


def source_name(image, loaded: LoadedImage | None) -> str:
    """The path as given for files (so batch records can be traced back), else the display name."""
    if isinstance(image, (str, Path)):
        return str(image)
    return loaded.name if loaded is not None else f"<{type(image).__name__}>"


def choose_model(model: str = AUTO_MODEL, backbone_weights: str | Path | None = None) -> tuple[str, str | None]:
    """Resolve ``"auto"``: GeoCLIP when it can run with real weights, else SatWorld (offline, shipped).

    Returns (model, notice); the notice says why SatWorld was chosen and how to get GeoCLIP.
    An explicit model name is returned unchanged (missing weights then fail loudly at load).
    """
    if model != AUTO_MODEL:
        return model, None
    if backbone_weights not in (None, ""):
        return "geoclip", None  # random or a checkpoint: the caller asked for GeoCLIP's architecture
    from geoapp.models import weights

    missing = [w for w in weights.ALL_FILES if weights.find(w) is None]
    if not missing:
        return "geoclip", None
    names = ", ".join(w.filename for w in missing)
    return "satworld", (f"GeoCLIP weights missing ({names}; fix: {weights.DOWNLOAD_COMMAND}), so the offline "
                        f"SatWorld model is used instead. {SATWORLD_NOTICE}")
