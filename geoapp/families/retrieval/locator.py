"""GeoCLIP locator: model + cached gallery + region prior -> Prediction (also used by SatWorld).

A prediction is one backbone forward (ten for TenCrop) and one matrix product against
location embeddings that were computed once and cached (see :mod:`geoapp.galleries.gallery`).

Large galleries are scored through a vector index (:mod:`geoapp.index`) instead: when
``choose_spec`` picks an approximate index for the gallery's size (1 M points and more), or the
caller asks with the ``index`` option (``auto``, ``exact``, ``flat``, ``ivf-flat``, ``ivf-pq`` or an
``IndexSpec``), the image embedding (through GeoCLIP's image head, L2-normalised; TenCrop: the mean of
the crops' normalised embeddings, which gives exactly the mean of their logits) retrieves its
``index_top`` (default 4096) nearest gallery points, logits = scale x cosine, and the softmax runs over
those retrieved points only (plus a region's extra grid points, always scored exactly); each record
says so in ``parameters["scoring"]`` and its warnings. With ``exact`` (the default below 1 M points)
nothing changes: one matrix product over every candidate.

A :class:`geoapp.galleries.gallery.PrebuiltGallery` (memory-mapped embeddings + prebuilt index, e.g. a
10 M-point dense gallery) is used as is: nothing is embedded at load. A region restricts an indexed
gallery to the ids of its gallery points inside the region (exact over those rows when the
embeddings are attached, which they are for prebuilt and cached galleries).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geoapp.families.base import (REGION_EXTRA_POINTS, CandidateSpace, Family, FamilyIdentity, GradCamResult,
                                  PredictOptions)
from geoapp.families.retrieval.evidence import RefinementEvidence
from geoapp.galleries.gallery import Gallery, LocationEmbeddingCache, PrebuiltGallery
from geoapp.geo.distance import validate_latlon
from geoapp.geo.refine import RefineSpec, refine_places
from geoapp.geo.regions import Region, RegionError, parse_region
from geoapp.imaging import LoadedImage, load_image
from geoapp.index import IndexCache, IndexSpec, VectorIndex, choose_spec, index_key
from geoapp.models.geoclip import GeoCLIP, ModelIdentity
from geoapp.models.preprocess import centre_crop_tensor, decode_side, ten_crop_tensor
from geoapp.results.prediction import Prediction, build_prediction, merge_candidates
from geoapp.runtime.batch import (PendingImage, auto_merge_km, failed_record, record_parameters, resolve_device,
                                  run_batched, source_name)
from geoapp.runtime.engines import ImageTower, TorchTower, TowerSource

_ENCODE_CHUNK = 8192
INDEX_TOP = 4096  # gallery points retrieved per query when scoring through a vector index


@dataclass
class CandidateSet:
    """The points scored for a prediction and their normalised embeddings (on the model's device)."""

    coords: np.ndarray  # [N, 2] float32
    embeddings: torch.Tensor | None  # [N, 512]; None when the gallery is scored through ``index``
    region: Region | None
    gallery_points: int
    extra_points: int
    index: VectorIndex | None = None  # indexed scoring: the gallery's index ...
    subset: np.ndarray | None = None  # ... restricted to these gallery ids (a region), None = all
    extra_coords: np.ndarray | None = None  # indexed scoring: region grid points, scored exactly
    extra_embeddings: torch.Tensor | None = None


class GeoCLIPLocator(Family):
    """GeoCLIP-style retrieval: an image encoder against location embeddings of a gallery (+ region grid).

    SatWorld is the same locator with its own small network (see :mod:`geoapp.families.satworld`).
    """

    def __init__(self, model: GeoCLIP, identity: ModelIdentity, gallery: Gallery | PrebuiltGallery,
                 device: torch.device, cache_dir: Path | None, spec=None, index: str | IndexSpec = "auto",
                 index_top: int = INDEX_TOP, index_dir: Path | None = None) -> None:
        if spec is None:
            raise ValueError("a retrieval locator needs its family's spec (GeoCLIP's, SatWorld's or a variant's)")
        self.spec = spec
        self.model = model.to(device).eval()
        self.identity = identity
        self.gallery = gallery
        self._gallery_digest = gallery.digest  # hashes every coordinate: once, not per described result
        self.device = device
        self.encoder_id = f"geoclip:{identity.heads_sha256}"
        self.embedding_cache = LocationEmbeddingCache(cache_dir, self.encoder_id)
        if isinstance(gallery, PrebuiltGallery) and gallery.encoder_id != self.encoder_id:
            raise ValueError(f"prebuilt gallery {gallery.name} was embedded by {gallery.encoder_id}, not by these "
                             f"weights ({self.encoder_id}); rebuild it")
        self.index_option = index
        self.index_top = int(index_top)
        self.index_cache = IndexCache(index_dir if index_dir is not None else
                                      (None if cache_dir is None else Path(cache_dir) / "indexes"))
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()
        self._gallery_set: CandidateSet | None = None
        self._region_sets: OrderedDict[str, CandidateSet] = OrderedDict()
        self._tokenizer = None
        self._encode_progress = None  # set by prepare(): (fraction, message) while encoding locations
        cfg = self.model.backbone.spec.preprocess
        # The frozen image tower; build_locator swaps in ONNX Runtime / OpenVINO when asked (geoapp.runtime).
        self.tower: ImageTower = TorchTower(TowerSource(self.spec.key, _ImageEmbeddingModel(self.model).eval(),
                                                        cfg.image_size, lambda image: centre_crop_tensor(image, cfg)))

    @property
    def random_weights(self) -> bool:
        return self.identity.random_weights

    def describe(self) -> FamilyIdentity:
        """Model, weights, device and gallery in use (for UIs, reports and case records)."""
        return FamilyIdentity(
            family=self.spec.key, label=self.spec.label, weights=self.identity.backbone_weights,
            weights_sha256=self.identity.heads_sha256, device=str(self.device), random_weights=self.random_weights,
            candidates=f"{len(self.gallery):,} gallery points ({self.gallery.name}) + a dense grid inside a region",
            input_domain=self.spec.input_domain, caveat=self.spec.caveat, runtime=self.tower.runtime,
            precision=self.tower.precision, runtime_note=self.tower.note,
            details={"backbone": self.identity.backbone, "gallery": self.gallery.name,
                     "gallery_points": len(self.gallery), "gallery_sha256": self._gallery_digest})

    def prepare(self, progress=None) -> CandidateSpace:
        """Encode (or read from the disk cache) the gallery's location embeddings, with a running count."""
        self._encode_progress = progress
        try:
            if progress:
                progress(0.0, f"Preparing {len(self.gallery):,} gallery locations (first run only; cached on disk) …")
            return self.restrict(None)
        finally:
            self._encode_progress = None

    def restrict(self, region: Any, extra_points: int | None = None) -> CandidateSpace:
        cands = self.candidate_set(region, **({} if extra_points is None else {"extra_points": extra_points}))
        where = f" inside {cands.region.label}" if cands.region is not None else ""
        text = f"{cands.gallery_points:,} gallery points" + (f" + {cands.extra_points:,} grid points" if cands.extra_points
                                                             else "") + where
        return CandidateSpace(cands.region, len(cands.coords), text)

    # ------------------------------------------------------------------ locations
    @torch.inference_mode()
    def encode_locations(self, latlon: Sequence[Sequence[float]] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw (un-normalised) location embeddings, float32 CPU tensor [N, 512]."""
        coords = torch.as_tensor(np.asarray(latlon, dtype=np.float32) if not isinstance(latlon, torch.Tensor) else latlon,
                                 dtype=torch.float32)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"latlon must have shape [N, 2] (lat, lon); got {tuple(coords.shape)}")
        validate_latlon(coords[:, 0].numpy(), coords[:, 1].numpy())
        chunks = []
        for chunk in coords.split(_ENCODE_CHUNK):
            chunks.append(self.model.encode_locations(chunk.to(self.device)).float().cpu())
            done = sum(len(c) for c in chunks)
            if self._encode_progress is not None and len(coords) > _ENCODE_CHUNK:
                self._encode_progress(done / len(coords), f"Encoding gallery locations: {done:,} of {len(coords):,} "
                                      "(first run only; cached on disk for the next ones) …")
        return torch.cat(chunks) if chunks else torch.zeros(0, self.model.location_encoder.out_features)

    def _normalised_embeddings(self, coords: np.ndarray) -> np.ndarray:
        return F.normalize(self.encode_locations(coords), dim=-1).numpy()

    def _embed(self, coords: np.ndarray) -> torch.Tensor:
        cached = self.embedding_cache.get(coords, self._normalised_embeddings)
        return torch.from_numpy(np.array(cached, dtype=np.float32, copy=True)).to(self.device)

    def index_spec(self, option: str | IndexSpec | None = None) -> IndexSpec:
        """The index used to score the gallery: ``option`` (a kind, "auto" or a spec), else the locator's."""
        option = self.index_option if option is None else option
        if isinstance(option, IndexSpec):
            return option
        if str(option or "auto") == "auto" and isinstance(self.gallery, PrebuiltGallery):
            prebuilt = _prebuilt_index_spec(self.gallery)
            if prebuilt is not None:  # built on purpose with the gallery (e.g. the dense gallery's IVF-PQ)
                return prebuilt
        return choose_spec(len(self.gallery), self.model.location_encoder.out_features, str(option or "auto"))

    def gallery_index(self, spec: IndexSpec) -> VectorIndex:
        """The gallery's vector index for ``spec``: a prebuilt gallery's own (when its kind matches), else
        built once from the gallery embeddings and cached on disk (``<cache>/indexes``)."""
        with self._lock:
            tag = repr(spec)
            if tag in self._indexes:
                return self._indexes[tag]
            index = None
            if isinstance(self.gallery, PrebuiltGallery):
                index = self.gallery.load_index()
                if index is not None and index.kind != spec.kind:
                    index = None
                elif index is not None and spec.approximate and index.spec.nlist == spec.nlist:
                    index.spec = spec  # search-time settings (nprobe, refine) from the request
            if index is None:
                index = self.index_cache.get_or_build(index_key(self.encoder_id, self._gallery_digest),
                                                      self._gallery_embeddings, spec)
                if index.vectors is None:  # memory-mapped: exact region search and re-ranking cost no memory
                    index.attach_vectors(self._gallery_embeddings())
            index.to_device(self.device)
            self._indexes[tag] = index
            return index

    def _gallery_embeddings(self) -> np.ndarray:
        """Normalised gallery embeddings [N, 512] (memory-mapped; float16 allowed for a prebuilt gallery)."""
        if isinstance(self.gallery, PrebuiltGallery):
            return self.gallery.embeddings()
        return self.embedding_cache.get(self.gallery.coords, self._normalised_embeddings)

    def _region_inside(self, parsed: Region) -> np.ndarray:
        coords = self.gallery.coords
        return np.asarray(parsed.contains(np.asarray(coords[:, 0], dtype=np.float64),
                                          np.asarray(coords[:, 1], dtype=np.float64)))

    def candidate_set(self, region: str | dict | Region | None = None, extra_points: int = REGION_EXTRA_POINTS,
                      index: str | IndexSpec | None = None) -> CandidateSet:
        """Gallery (and, for a region, gallery points inside it plus a dense grid of extra points).

        ``index`` (default: the locator's option): a kind or spec; an approximate (or flat) choice gives an
        indexed candidate set (no embeddings tensor; ``index`` and ``subset`` instead)."""
        spec = self.index_spec(index)
        if spec.kind != "exact":
            return self._indexed_candidate_set(region, extra_points, spec)
        with self._lock:
            if self._gallery_set is None:
                embeddings = (torch.from_numpy(np.array(self.gallery.embeddings(), dtype=np.float32)).to(self.device)
                              if isinstance(self.gallery, PrebuiltGallery) else self._embed(self.gallery.coords))
                self._gallery_set = CandidateSet(np.asarray(self.gallery.coords, dtype=np.float32), embeddings, None,
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

    def _indexed_candidate_set(self, region, extra_points: int, spec: IndexSpec) -> CandidateSet:
        index = self.gallery_index(spec)
        with self._lock:
            if region is None:
                return CandidateSet(self.gallery.coords, None, None, len(self.gallery), 0, index=index)
            parsed = parse_region(region)
            key = f"{parsed.key}|{extra_points}|{spec!r}"
            if key in self._region_sets:
                self._region_sets.move_to_end(key)
                return self._region_sets[key]
            inside = np.flatnonzero(self._region_inside(parsed))
            if extra_points > 0:
                extra = np.asarray(parsed.candidate_points(max_points=extra_points), dtype=np.float32).reshape(-1, 2)
            elif len(inside):
                extra = np.zeros((0, 2), dtype=np.float32)
            else:
                raise RegionError(f"no gallery point lies inside {parsed.key}; allow extra region points to search it")
            coords = np.concatenate([np.asarray(self.gallery.coords[inside], dtype=np.float32), extra])
            result = CandidateSet(coords, None, parsed, len(inside), len(extra), index=index, subset=inside,
                                  extra_coords=extra, extra_embeddings=self._embed(extra) if len(extra) else None)
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
        if self.tower.runtime != "torch":
            return self.tower(pixels)
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
    def _scored(self, embeddings: torch.Tensor, crops_per_image: int, candidates: CandidateSet
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(coords [M, 2], probabilities [M]) per image: every candidate (exact), or an index's retrieved ones."""
        if candidates.index is None:
            return [(candidates.coords, p) for p in self._probabilities(embeddings, crops_per_image, candidates)]
        return self._indexed_probabilities(embeddings, crops_per_image, candidates)

    @torch.inference_mode()
    def _indexed_probabilities(self, embeddings: torch.Tensor, crops_per_image: int, candidates: CandidateSet
                               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top ``index_top`` gallery neighbours of each image's mean normalised crop embedding (the mean of the
        crops' logits is the scale times its inner product), softmax over them and the region's grid points."""
        scale = float(self.model.logit_scale.exp())
        queries = F.normalize(embeddings.float(), dim=-1).view(-1, crops_per_image, embeddings.shape[-1]).mean(dim=1)
        norms = queries.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        unit = (queries / norms).cpu().numpy().astype(np.float32)
        scores, ids = candidates.index.search(unit, min(self.index_top, max(1, candidates.gallery_points)),
                                              subset=candidates.subset)
        extra_logits = (scale * (queries @ candidates.extra_embeddings.T)).double().cpu().numpy() \
            if candidates.extra_embeddings is not None else None
        results = []
        for row in range(len(unit)):
            valid = ids[row] >= 0
            found = ids[row][valid]
            logits = scale * float(norms[row]) * scores[row][valid].astype(np.float64)
            coords = np.asarray(self.gallery.coords[np.sort(found)], dtype=np.float32)[np.argsort(np.argsort(found))]
            if extra_logits is not None:
                logits = np.concatenate([logits, extra_logits[row]])
                coords = np.concatenate([coords, candidates.extra_coords])
            logits -= logits.max()
            probs = np.exp(logits)
            results.append((coords, probs / probs.sum()))
        return results

    @torch.inference_mode()
    def _probabilities(self, embeddings: torch.Tensor, crops_per_image: int, candidates: CandidateSet) -> np.ndarray:
        logits = self.model.logits(embeddings, candidates.embeddings)
        # TenCrop: average the logits of an image's crops before the softmax (paper evaluation).
        logits = logits.view(-1, crops_per_image, logits.shape[-1]).mean(dim=1)
        return logits.double().softmax(dim=-1).cpu().numpy()

    # ------------------------------------------------------------------ predictions
    def _predict(self, images: list, options: PredictOptions, on_error: str, progress) -> list[Prediction]:
        """Batched forwards; ``options.region_points`` extra grid points in a region (0 = gallery only,
        the GeoCLIP paper's Table 5 protocol)."""
        candidates = self.candidate_set(options.region, extra_points=options.region_points,
                                        index=options.extras.get("index"))
        merge = options.merge_km if options.merge_km is not None else auto_merge_km(candidates.region)
        tencrop, top_k = options.tencrop, int(options.top_k)
        crops = 10 if tencrop else 1
        refine = self.refine_spec(options)
        parameters = self._parameters(top_k, tencrop, candidates, merge)
        if refine.enabled:
            parameters["refinement"] = refine.to_dict()

        def prepare(image) -> tuple[LoadedImage, torch.Tensor]:
            loaded = self.load_image(image, tencrop)
            return loaded, self.pixels(loaded, tencrop)

        def predict_pending(pending: list[PendingImage]) -> list[Prediction]:
            start = time.perf_counter()
            embeddings = self.image_embeddings(torch.cat([p.tensors for p in pending]))
            forward_ms = (time.perf_counter() - start) * 1000 / len(pending)
            start = time.perf_counter()
            scored = self._scored(embeddings, crops, candidates)
            score_ms = (time.perf_counter() - start) * 1000 / len(pending)
            start = time.perf_counter()
            moves: list[dict] = [{}] * len(pending)
            notes: list[dict] = [{}] * len(pending)
            if refine.enabled:
                moves, notes = self._refine(embeddings, crops, candidates, scored, refine, merge)
            refine_ms = (time.perf_counter() - start) * 1000 / len(pending)
            predictions = []
            for item, (coords, probs), moved, note in zip(pending, scored, moves, notes):
                start = time.perf_counter()
                prediction = build_prediction(source_name(item.image, item.loaded), coords[:, 0],
                                              coords[:, 1], probs, top_k=top_k, merge_km=merge, moved=moved)
                prediction.parameters = dict(parameters)
                if note:
                    prediction.parameters["refinement"] = {**parameters["refinement"], **note}
                    back = {after: before for before, after in moved.items()}
                    prediction.evidence.append(RefinementEvidence(
                        [(c.rank, back.get((c.lat, c.lon), (c.lat, c.lon)), (c.lat, c.lon))
                         for c in prediction.candidates], refine.radius_km, refine.step_km))
                self._note_index(prediction, candidates)
                prediction.image = item.loaded.to_dict()
                prediction.region = candidates.region
                prediction.timings_ms = {"load": item.load_ms, "forward": forward_ms, "score": score_ms,
                                         **({"refine": refine_ms} if refine.enabled else {}),
                                         "postprocess": (time.perf_counter() - start) * 1000}
                predictions.append(prediction)
            return predictions

        return run_batched(images, prepare, predict_pending,
                           lambda image, message: failed_record(image, message, parameters),
                           on_error, options.batch_size, progress)

    # ------------------------------------------------------------------ refinement
    def refine_spec(self, options: PredictOptions) -> RefineSpec:
        """The fine-refinement settings of a prediction (``refine_km`` 0 turns it off)."""
        defaults = {o.name: o.default for o in self.spec.options}
        radius = options.extras.get("refine_km", defaults.get("refine_km", 0.0))
        step = options.extras.get("refine_step_km", defaults.get("refine_step_km", 0.5))
        # 0: refine the places the user is shown (top-k, at most 16); more costs ~55 location encodings each
        top = int(options.extras.get("refine_top", defaults.get("refine_top", 0)) or min(int(options.top_k), 16))
        return RefineSpec(radius_km=float(radius or 0.0), step_km=float(step or 0.5), top_n=top)

    @torch.inference_mode()
    def _refine(self, embeddings: torch.Tensor, crops: int, candidates: CandidateSet,
                scored: list[tuple[np.ndarray, np.ndarray]], spec: RefineSpec, merge_km: float
                ) -> tuple[list[dict], list[dict]]:
        """Where each image's top ``spec.top_n`` distinct places move: the best point of a fine local grid.

        ``scored``: (coords, probabilities) per image (all candidates, or an index's retrieved ones).
        Returns per image {(lat, lon) of a place's most probable point: its new (lat, lon)} for
        :func:`build_prediction`, and a note for the record. The location encoder is continuous, so
        points between gallery points score like gallery points. Places move after merging: each
        keeps its probability and merged points, and the heat map stays the gallery's.
        """
        seeds = []
        for coords, probs in scored:
            coords = np.asarray(coords, dtype=np.float64)
            places = merge_candidates(coords[:, 0], coords[:, 1], probs, spec.top_n, merge_km)
            seeds.append(np.array([[lat, lon] for lat, lon, _, _ in places], dtype=np.float64).reshape(-1, 2))
        per_image = embeddings.view(len(scored), crops, -1)

        def score(grids: list[np.ndarray]) -> list[np.ndarray]:
            locations = torch.from_numpy(self._normalised_embeddings(np.concatenate(grids).astype(np.float32)))
            locations = locations.to(self.device)
            scores, start = [], 0
            for image, grid in zip(per_image, grids):
                logits = self.model.logits(image, locations[start:start + len(grid)]).mean(dim=0)
                scores.append(logits.double().cpu().numpy())
                start += len(grid)
            return scores

        region = candidates.region
        inside = None if region is None else (
            lambda points: np.asarray(region.contains(points[:, 0], points[:, 1]), dtype=bool))
        results = refine_places(seeds, score, spec, inside)
        moves, notes = [], []
        for seed, result in zip(seeds, results):
            moves.append({(float(a), float(b)): (float(c), float(d)) for (a, b), (c, d) in zip(seed, result.points)})
            notes.append({"points_scored": int(result.points_scored),
                          "moved_km": [round(float(m), 3) for m in result.moved_km]})
        return moves, notes

    # ------------------------------------------------------------------ text -> map
    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP text features of ``texts`` through GeoCLIP's image head (paper §4.4), raw [B, 512]."""
        if self._tokenizer is None:
            from geoapp.models.backbones import clip_tokenizer

            self._tokenizer = clip_tokenizer()
        tokens = self._tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens).float()

    def text_map(self, text: str, options: PredictOptions | None = None, **overrides: Any) -> Prediction:
        """Where on the map does a text description fit? Same candidates, merging and surface as photos."""
        if not self.spec.capabilities.text:
            return super().text_map(text, options, **overrides)
        opts = PredictOptions.build(options, **({"top_k": 10, **overrides} if options is None else overrides))
        query = (text or "").strip()
        if not query:
            raise ValueError("the text query is empty")
        if len(query) > 300:
            raise ValueError("the text query is too long (at most 300 characters)")
        candidates = self.candidate_set(opts.region, extra_points=opts.region_points, index=opts.extras.get("index"))
        merge = opts.merge_km if opts.merge_km is not None else auto_merge_km(candidates.region)
        start = time.perf_counter()
        coords, probabilities = self._scored(self.text_embeddings([query]), 1, candidates)[0]
        scored = time.perf_counter()
        prediction = build_prediction(query, coords[:, 0], coords[:, 1], probabilities,
                                      top_k=int(opts.top_k), merge_km=merge)
        prediction.parameters = {**self._parameters(opts.top_k, False, candidates, merge), "query": query}
        self._note_index(prediction, candidates)
        prediction.region = candidates.region
        prediction.timings_ms = {"encode_and_score": (scored - start) * 1000,
                                 "postprocess": (time.perf_counter() - scored) * 1000}
        return self.finish(prediction)

    # ------------------------------------------------------------------ Grad-CAM
    def explain(self, image: Any, lat: float, lon: float) -> dict[str, GradCamResult]:
        """Grad-CAM towards the cosine similarity with the location embedding of (lat, lon)."""
        from geoapp.runtime.cam import (EmbeddingSimilarityTarget, cam_result, compute_cam, gradcam_note,
                                        vit_reshape_transform)

        cfg = self.model.backbone.spec.preprocess
        pixels = centre_crop_tensor(self.load_image(image).image, cfg).to(self.device)
        location = self.encode_locations([[lat, lon]])[0]
        visual = self.model.backbone.visual
        # ln_1 of the last block: its output still carries per-patch tokens (the CLS pooling comes after).
        maps = compute_cam(_ImageEmbeddingModel(self.model).eval(), [visual.transformer.resblocks[-1].ln_1], pixels,
                           [EmbeddingSimilarityTarget(location)], vit_reshape_transform(tuple(visual.grid_size)))
        target = f"cosine similarity to the location embedding of ({lat:.4f}, {lon:.4f})" + gradcam_note(self.tower)
        return {"photo": cam_result(maps[0], pixels[0], cfg.mean, cfg.std, target, self.random_weights)}

    # ------------------------------------------------------------------ helpers
    def _parameters(self, top_k: int, tencrop: bool, candidates: CandidateSet, merge_km: float | None) -> dict:
        if candidates.index is None:
            return record_parameters(top_k, tencrop, candidates, merge_km)
        retrieved = min(self.index_top, candidates.gallery_points)
        return record_parameters(top_k, tencrop, candidates, merge_km, index=candidates.index.spec.describe(),
                                 scoring=f"probabilities over the top {retrieved:,} retrieved gallery points"
                                         + (f" + {candidates.extra_points:,} grid points" if candidates.extra_points
                                            else ""))

    def _note_index(self, prediction: Prediction, candidates: CandidateSet) -> None:
        if candidates.index is not None:
            prediction.warnings.append(
                f"probabilities over the top {min(self.index_top, candidates.gallery_points):,} retrieved gallery "
                f"points ({candidates.index.spec.describe()} index over {candidates.index.size:,}), not a softmax "
                "over the whole gallery")


class _ImageEmbeddingModel(torch.nn.Module):
    """Pixels -> image embedding: the forward Grad-CAM differentiates."""

    def __init__(self, geoclip: GeoCLIP) -> None:
        super().__init__()
        self.geoclip = geoclip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.geoclip.encode_image(pixels)


def _prebuilt_index_spec(gallery: PrebuiltGallery) -> IndexSpec | None:
    """The spec of a prebuilt gallery's own index (from its ``.json`` sidecar), or None when it has none."""
    import json

    path = gallery.index_path()
    if path is None or not path.is_file():
        return None
    try:
        return IndexSpec.from_dict(json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gallery_from(option: Any) -> Gallery | PrebuiltGallery:
    """None: GeoCLIP's 100K MP-16 gallery; "dense", "dense:NAME" or a built gallery folder: the prebuilt
    dense gallery (``python -m geoapp gallery build-dense``; memory-mapped, nothing embedded at load, with a
    clear error naming the build command when it is not built); another PrebuiltGallery folder (with
    gallery.json); a CSV path; or a Gallery / PrebuiltGallery as is."""
    from geoapp.galleries import dense as dense_gallery
    if option is None:
        return Gallery.default()
    if isinstance(option, (Gallery, PrebuiltGallery)):
        return option
    if dense_gallery.is_dense_option(option):
        return dense_gallery.open_dense(option)
    if Path(option).is_dir():
        return PrebuiltGallery.open(option)
    return Gallery.from_csv(option)


def build_locator(spec, network: GeoCLIP, identity: ModelIdentity, options) -> GeoCLIPLocator:
    """A retrieval locator over ``options.extras['gallery']`` with the shared embedding cache, its image tower on
    the engine ``options.extras['runtime'/'precision']`` ask for (geoapp.runtime)."""
    from geoapp.runtime.request import RuntimeRequest
    from geoapp.runtime.towers import image_tower
    from geoapp.settings import get_settings

    cache_dir = options.extras.get("cache_dir")
    cache = Path(cache_dir) if cache_dir is not None else get_settings().embeddings_dir
    index_dir = Path(cache_dir) / "indexes" if cache_dir is not None else get_settings().indexes_dir
    locator = GeoCLIPLocator(network, identity, gallery_from(options.extras.get("gallery")),
                             resolve_device(options.device), cache, spec=spec, index=options.extras.get("index") or "auto",
                             index_top=int(options.extras.get("index_top") or INDEX_TOP), index_dir=index_dir)
    locator.tower = image_tower(locator.tower.source, RuntimeRequest.from_extras(options.extras), locator.device)
    return locator
