"""Regional locator: photo -> frozen features -> regional head -> Prediction (+ reference matches).

* Candidates: one per anchor of the model (a country for ``classifier``/``offset``, a cell for
  ``cells``/``hybrid``, a gallery point for ``retrieval``), placed where the head decodes it
  (offset heads move it inside its box), with the head's softmax probabilities.
* Region restriction: only candidates inside the region (and so inside the model's countries)
  are kept and renormalised; a region outside them is a clear RegionError naming the countries.
* TenCrop: the ten crops' features are averaged before the head.
* Evidence: :class:`~geoapp.families.regional.evidence.ReferenceMatches` (most similar photos of
  the collection, cosine on the same features).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoapp.families.base import CandidateSpace, Family, FamilyIdentity, PredictOptions
from geoapp.families.regional.backbone import FeatureExtractor, load_extractor
from geoapp.families.regional.evidence import ReferenceMatch, ReferenceMatches
from geoapp.families.regional.heads import HeadConfig, RegionalHead
from geoapp.families.regional.model import References, RegionalModel, Tables, load_model
from geoapp.geo.distance import haversine_km
from geoapp.geo.regions import Region, RegionError, parse_region
from geoapp.imaging import LoadedImage, load_image
from geoapp.models.preprocess import decode_side
from geoapp.models.weights import WeightsMissingError
from geoapp.results.prediction import Prediction, build_prediction
from geoapp.runtime.batch import (
    PendingImage,
    auto_merge_km,
    failed_record,
    resolve_device,
    run_batched,
    source_name,
)

REFERENCE_MATCHES = 5
AERIAL_CAVEAT = ("This regional model was trained on satellite/aerial raster crops, not on ground-level photos: "
                 "for a ground-level photo its answer says nothing about where the photo was taken.")
SATWORLD_CAVEAT = ("This regional model uses SatWorld's image encoder (trained on satellite imagery) as its feature "
                   "extractor; on ground-level photos those features are weak. Rebuild it with --backbone ViT-L-14 "
                   "once the CLIP weights are present (python -m geoapp weights download).")


class RegionalLocator(Family):
    """A regional model behind the family contract. Build with :func:`load` (the registry's loader)."""

    def __init__(self, model: RegionalModel, extractor: FeatureExtractor, device: torch.device, folder: Path | None,
                 sha256: str, source: str) -> None:
        from geoapp.families.regional import SPEC

        self.spec = SPEC  # the registry replaces it with the variant's spec
        self.model = model.to(device)
        self.extractor = extractor
        self.device = device
        self.folder = folder
        self.sha256 = sha256
        self.source = source

    # ------------------------------------------------------------------ identity
    @property
    def random_weights(self) -> bool:
        return self.extractor.random or self.sha256 == "random"

    def describe(self) -> FamilyIdentity:
        meta = self.model.meta
        anchors, _ = self.model.anchors()
        countries = ", ".join(self.model.tables.countries)
        what = {"classifier": "countries", "offset": "countries (offset inside each box)", "cells": "cells",
                "hybrid": "cells (offset inside each cell)", "retrieval": "gallery points"}[self.model.kind]
        return FamilyIdentity(
            family=self.spec.key, label=self.spec.label,
            weights=f"{meta.get('method', self.model.kind)} head on {self.extractor.name} features ({self.source})",
            weights_sha256=self.sha256, device=str(self.device), random_weights=self.random_weights,
            candidates=f"{len(anchors):,} {what} in {countries}", input_domain=self.spec.input_domain,
            caveat=self._caveat(),
            details={"method": meta.get("method"), "countries": list(self.model.tables.countries),
                     "backbone": self.extractor.identity, "training_images": meta.get("training_images"),
                     "metrics": meta.get("metrics", {}), "reference_photos": len(self.model.references)})

    def _caveat(self) -> str | None:
        if self.random_weights:
            return None  # the random-weights warning says it all
        if self.model.meta.get("training_domain") == "satellite/aerial image":
            return AERIAL_CAVEAT
        if self.extractor.name == "satworld":
            return SATWORLD_CAVEAT
        return None

    # ------------------------------------------------------------------ candidates
    def _region_mask(self, region: Any) -> tuple[Region | None, np.ndarray]:
        anchors, _ = self.model.anchors()
        if region is None:
            return None, np.ones(len(anchors), dtype=bool)
        parsed = region if isinstance(region, Region) else parse_region(region)
        inside = np.asarray(parsed.contains(anchors[:, 0], anchors[:, 1]), dtype=bool)
        if not inside.any():
            countries = ", ".join(self.model.tables.countries)
            raise RegionError(f"{parsed.label} holds none of this model's {len(anchors)} candidates: it covers "
                              f"{countries} only. Choose a region inside those countries, or no region.")
        return parsed, inside

    def restrict(self, region: Any) -> CandidateSpace:
        parsed, inside = self._region_mask(region)
        where = f" inside {parsed.label}" if parsed is not None else ""
        return CandidateSpace(parsed, int(inside.sum()), f"{int(inside.sum()):,} candidates{where}")

    # ------------------------------------------------------------------ images
    def load_image(self, image: Any, tencrop: bool = False) -> LoadedImage:
        return load_image(image, min_side=decode_side(self.extractor.preprocess, tencrop))

    def features(self, images: list) -> np.ndarray:
        """Raw features [N, D] of readable inputs (for evaluation and tests)."""
        pixels = torch.cat([self.extractor.pixels(self.load_image(im).image) for im in images])
        return self.extractor.encode(pixels).numpy()

    def _predict(self, images: list, options: PredictOptions, on_error: str, progress) -> list[Prediction]:
        region, mask = self._region_mask(options.region)
        merge = options.merge_km if options.merge_km is not None else auto_merge_km(region)
        crops = 10 if options.tencrop else 1
        parameters = {"top_k": int(options.top_k), "tencrop": bool(options.tencrop),
                      "region": region.key if region is not None else None, "merge_km": merge,
                      "candidate_points": int(mask.sum()), "candidates_are": self.describe().candidates}

        def prepare(image) -> tuple[LoadedImage, torch.Tensor]:
            loaded = self.load_image(image, options.tencrop)
            return loaded, self.extractor.pixels(loaded.image, options.tencrop)

        def predict_pending(pending: list[PendingImage]) -> list[Prediction]:
            start = time.perf_counter()
            features = self.extractor.encode(torch.cat([p.tensors for p in pending]), crops)
            decoded = self.model.decode(features.to(self.device))
            forward_ms = (time.perf_counter() - start) * 1000 / len(pending)
            matches, similarity = self.model.references.nearest(features.numpy(), REFERENCE_MATCHES)
            results = []
            for row, item in enumerate(pending):
                start = time.perf_counter()
                coords, probs = decoded.coords[row], decoded.probs[row]
                keep = mask
                if region is not None:
                    keep = mask & np.asarray(region.contains(coords[:, 0], coords[:, 1]), dtype=bool)
                if not keep.any():  # decoded offsets all left the region: fall back to the anchors inside it
                    keep, coords = mask, decoded.anchors
                kept = probs[keep] / max(float(probs[keep].sum()), 1e-300)
                prediction = build_prediction(source_name(item.image, item.loaded), coords[keep, 0], coords[keep, 1],
                                              kept, top_k=int(options.top_k), merge_km=merge)
                prediction.image = item.loaded.to_dict()
                prediction.region = region
                prediction.parameters = dict(parameters)
                prediction.evidence = [self._matches(matches[row], similarity[row], prediction)]
                prediction.timings_ms = {"load": item.load_ms, "forward": forward_ms,
                                         "postprocess": (time.perf_counter() - start) * 1000}
                results.append(prediction)
            return results

        return run_batched(images, prepare, predict_pending,
                           lambda image, message: failed_record(image, message, parameters),
                           on_error, options.batch_size, progress)

    def _matches(self, indices: np.ndarray, similarity: np.ndarray, prediction: Prediction) -> ReferenceMatches:
        refs = self.model.references
        top = prediction.top
        found = []
        for rank, (index, value) in enumerate(zip(indices, similarity), start=1):
            lat, lon = (float(v) for v in refs.coords[index])
            thumb = refs.thumbnails[index] if index < len(refs.thumbnails) else ""
            found.append(ReferenceMatch(
                rank=rank, name=refs.names[index], lat=lat, lon=lon, similarity=float(value),
                distance_to_top_km=None if top is None else float(haversine_km(top.lat, top.lon, lat, lon)),
                thumbnail=str(self.folder / thumb) if thumb and self.folder is not None else None))
        return ReferenceMatches(found)


# ---------------------------------------------------------------------------------------------- loading
def load(spec, options) -> RegionalLocator:
    """Registry loader: the variant's checkpoint (``options.checkpoint``), or with
    ``backbone_weights="random"`` and no checkpoint a tiny random model (extras ``method``:
    classifier|offset|cells|hybrid|retrieval, ``countries``: "SE,CH")."""
    device = resolve_device(options.device)
    if options.checkpoint is None:
        if not options.random:
            from geoapp.families.regional import BUILD_COMMAND

            raise WeightsMissingError(
                "A regional model is built from your own geotagged photos; none is chosen. To fix: build one with "
                f"`{BUILD_COMMAND}` and use --model regional:my-area (`python -m geoapp models` lists the built ones).")
        model = random_model(str(options.extras.get("method", "cells")), str(options.extras.get("countries", "SE,CH")))
        extractor = load_extractor(model.meta["backbone"]["name"], "random", device)
        return RegionalLocator(model, extractor, device, None, "random", "random")
    model, sha = load_model(options.checkpoint)
    backbone = model.meta.get("backbone", {})
    weights = "random" if options.random else (options.backbone_weights or backbone.get("weights_path"))
    extractor = load_extractor(backbone.get("name", "satworld"), weights, device)
    folder = Path(options.checkpoint)
    folder = folder if folder.is_dir() else folder.parent
    return RegionalLocator(model, extractor, device, folder, sha, str(options.checkpoint))


def country_tables(codes: list[str], points_per_country: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes [C, 4], anchors [C, 2], a few grid points per country [C*k, 3] with the country index last)."""
    boxes, anchors, grid = [], [], []
    for index, code in enumerate(codes):
        region = parse_region(code)
        south, west, north, east = region.bounds
        points = region.candidate_points(max_points=points_per_country)
        boxes.append([south, west, north, east])
        anchors.append(points.mean(axis=0))
        grid.append(np.column_stack([points, np.full(len(points), index)]))
    return np.array(boxes, np.float64), np.array(anchors, np.float64), np.concatenate(grid)


def random_model(method: str, countries: str, feature_dim: int = 256) -> RegionalModel:
    """A tiny random model over a few grid points of ``countries`` (contract tests; flagged random)."""
    codes = [c.strip().upper() for c in countries.split(",") if c.strip()]
    boxes, anchors, grid = country_tables(codes)
    cell_boxes = np.column_stack([grid[:, :2] - 0.5, grid[:, :2] + 0.5])
    classes = len(codes) if method in ("classifier", "offset") else len(grid)
    torch.manual_seed(0)
    head = RegionalHead(HeadConfig(kind=method, feature_dim=feature_dim, classes=classes, hidden=64, embed_dim=32,
                                   frequencies=16))
    tables = Tables(countries=codes, country_boxes=boxes, country_anchors=anchors,
                    feature_mean=np.zeros(feature_dim), feature_std=np.ones(feature_dim),
                    cell_coords=grid[:, :2], cell_boxes=cell_boxes, cell_country=grid[:, 2].astype(np.int64),
                    gallery_coords=grid[:, :2], gallery_country=grid[:, 2].astype(np.int64))
    return RegionalModel(head, tables, References.empty(feature_dim),
                         {"method": method, "backbone": {"name": "satworld"}, "training_images": 0})
