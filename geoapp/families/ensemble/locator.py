"""Ensemble of TransLocator (geocell classifier) and GeoCLIP (image-to-GPS retrieval).

The rule (also in ``ENSEMBLE_RULE``, which every result carries):

1. **Candidate pool** = the union of GeoCLIP's ``GEOCLIP_POOL`` most likely points (gallery, plus
   the extra points of a region) and the mean positions of TransLocator's ``CELL_POOL`` most
   likely fine cells (only cells inside the region, when one is set).
2. **GeoCLIP re-ranking** (as G3 re-ranks its candidates by image-GPS similarity): every pool
   point is scored by GeoCLIP's image-location logit (its location encoder is continuous, so a
   cell centre is scored like a gallery point); ``q_geoclip`` = softmax over the pool (TenCrop:
   the crops' logits are averaged first).
3. **TransLocator share**: each pool point lies in one fine cell (S2 containment; the nearest cell
   centre where no cell contains it); ``q_translocator`` = that cell's probability divided by the
   number of pool points in the cell (a cell's mass is shared, not multiplied, by its points),
   renormalised over the pool.
4. **Mixture**: ``p = w * q_geoclip + (1 - w) * q_translocator`` with ``w = geoclip_weight``
   (default 0.5). A linear pool, not a product: when one model is confidently wrong the other's
   candidates keep probability, which is what an analyst comparing hypotheses needs.

The result is TransLocator's prediction record re-scored over the pool (it keeps TransLocator's evidence:
segmentation map, scene and branch weights), so the UI, CLI and case store show it
like any other prediction. It is flagged random when either member has random weights.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from geoapp.families.base import (DEFAULT_MERGE_KM, CandidateSpace, Family, FamilyIdentity, GradCamResult,
                                  PredictOptions)
from geoapp.families.retrieval.locator import GeoCLIPLocator
from geoapp.geo.distance import haversine_km
from geoapp.geo.regions import parse_region
from geoapp.imaging import ImageLoadError
from geoapp.results.prediction import Prediction, build_prediction

GEOCLIP_POOL = 256
CELL_POOL = 64
DEFAULT_GEOCLIP_WEIGHT = 0.5
ENSEMBLE_RULE = (
    "pool = GeoCLIP top-256 points + TransLocator top-64 fine-cell centres; "
    "p = w * softmax(GeoCLIP image-location logits over the pool) "
    "+ (1 - w) * (TransLocator cell probability / pool points in that cell, renormalised); w = geoclip_weight"
)


def mixture(geoclip_logits: np.ndarray, point_cells: np.ndarray, cell_probability: np.ndarray,
            geoclip_weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-4 of the rule for one image: (p, q_geoclip, q_translocator) over the pool.

    ``geoclip_logits`` [P]: GeoCLIP logits of the pool points; ``point_cells`` [P]: fine-cell
    index of each point; ``cell_probability`` [C]: TransLocator's probability of every fine cell
    (0 outside the region).
    """
    if not 0.0 <= geoclip_weight <= 1.0:
        raise ValueError(f"geoclip_weight must be between 0 and 1; got {geoclip_weight}")
    logits = np.asarray(geoclip_logits, dtype=np.float64)
    q_geoclip = np.exp(logits - logits.max())
    q_geoclip /= q_geoclip.sum()
    cells = np.asarray(point_cells, dtype=np.int64)
    points_per_cell = np.bincount(cells, minlength=len(cell_probability))
    q_translocator = np.asarray(cell_probability, dtype=np.float64)[cells] / points_per_cell[cells]
    total = q_translocator.sum()
    # No pool point in any cell with mass (possible only with a region cutting cells): GeoCLIP decides.
    q_translocator = q_translocator / total if total > 0 else np.zeros_like(q_translocator)
    weight = geoclip_weight if total > 0 else 1.0
    return weight * q_geoclip + (1.0 - weight) * q_translocator, q_geoclip, q_translocator


@runtime_checkable
class CellClassifier(Protocol):
    """What the ensemble needs of its geocell member (TransLocator), which it gets through the registry: families
    never import each other, so the member is checked by what it offers, not by its class."""

    cells: Any  # the geocell hierarchy; ``.fine`` has ``assign(lat, lon)``, ``lat``, ``lon``

    def candidate_set(self, region: Any = None) -> Any: ...

    def predict_batch(self, images: list, options: PredictOptions | None = None, **kwargs: Any) -> list[Prediction]: ...


class EnsembleGeolocator(Family):
    """TransLocator + GeoCLIP behind the family contract."""

    def __init__(self, geoclip: GeoCLIPLocator, translocator: CellClassifier,
                 geoclip_weight: float = DEFAULT_GEOCLIP_WEIGHT) -> None:
        if not isinstance(translocator, CellClassifier) or not hasattr(translocator.cells, "fine"):
            raise ValueError("the ensemble's second member must be a geocell classifier (TransLocator)")
        if not isinstance(geoclip, GeoCLIPLocator):
            raise ValueError("the ensemble's first member must be a GeoCLIP geolocator")
        if not 0.0 <= geoclip_weight <= 1.0:
            raise ValueError(f"geoclip_weight must be between 0 and 1; got {geoclip_weight}")
        from geoapp.families.ensemble import SPEC

        self.spec = SPEC
        self.geoclip = geoclip
        self.translocator = translocator
        self.geoclip_weight = float(geoclip_weight)

    @property
    def random_weights(self) -> bool:
        return bool(self.geoclip.random_weights or self.translocator.random_weights)

    @property
    def device(self) -> torch.device:
        return self.geoclip.device

    def describe(self) -> FamilyIdentity:
        geoclip, translocator = self.geoclip.describe(), self.translocator.describe()
        members = {"geoclip": geoclip.to_dict(), "translocator": translocator.to_dict()}
        return FamilyIdentity(
            family=self.spec.key, label=self.spec.label,
            weights=f"GeoCLIP: {geoclip.weights}; TransLocator: {translocator.weights}",
            weights_sha256=None, device=str(self.device), random_weights=self.random_weights,
            candidates=f"GeoCLIP top-{GEOCLIP_POOL} points + TransLocator top-{CELL_POOL} cell centres per photo",
            input_domain=self.spec.input_domain, caveat=self.spec.caveat, runtime=geoclip.runtime,
            precision=geoclip.precision,  # GeoCLIP's tower; TransLocator's runs on torch (its note says so)
            runtime_note=geoclip.runtime_note and f"GeoCLIP's image tower: {geoclip.runtime_note}; TransLocator "
                                                   "runs on torch",
            details={"members": members, "geoclip_weight": self.geoclip_weight, "rule": ENSEMBLE_RULE,
                     "backbone": members["geoclip"].get("backbone")})

    def candidate_set(self, region=None, extra_points: int | None = None):
        """Resolve the region for both members (a RegionError from either is raised here)."""
        self.translocator.candidate_set(region)
        if extra_points is None:
            return self.geoclip.candidate_set(region)
        return self.geoclip.candidate_set(region, extra_points=extra_points)

    def restrict(self, region: Any) -> CandidateSpace:
        cells = self.translocator.restrict(region)
        points = self.geoclip.restrict(region)
        return CandidateSpace(points.region, points.size + cells.size, f"{points.description}; {cells.description}")

    def load_image(self, image, tencrop: bool = False):
        return self.geoclip.load_image(image, tencrop)

    def text_map(self, text: str, options: PredictOptions | None = None, **overrides: Any) -> Prediction:
        return self.geoclip.text_map(text, options, **overrides)

    def explain(self, image: Any, lat: float, lon: float) -> dict[str, GradCamResult]:
        """GeoCLIP's map: the ensemble re-ranks its pool by GeoCLIP similarity."""
        return self.geoclip.explain(image, lat, lon)

    def _predict(self, images: list, options: PredictOptions, on_error: str, progress) -> list[Prediction]:
        """One record per image (unreadable ones carry ``.error``, as with the single models)."""
        chosen = options.extras.get("geoclip_weight")
        weight = float(self.geoclip_weight if chosen is None else chosen)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"geoclip_weight must be between 0 and 1; got {weight}")
        region = None if options.region is None else parse_region(options.region)  # parsed once, for both members
        geoclip_set = self.candidate_set(region, options.region_points)
        if geoclip_set.embeddings is None:
            raise ValueError("the ensemble re-scores GeoCLIP's whole gallery, so it needs an exact (in-memory) "
                             "gallery; this one is searched through a vector index (a dense or very large gallery). "
                             "Use GeoCLIP alone with it, or the ensemble with the default gallery.")
        # TransLocator's kept fine cells (indices in the same order as every result's surface): once per batch.
        kept_cells = self.translocator.candidate_set(region).indices
        # TransLocator first: it reads the file, so a bad file fails once, with its message.
        member_options = replace(options, region=region)
        cell_results = self.translocator.predict_batch(images, member_options, on_error=on_error)
        results: list[Prediction] = []
        for image, cells in zip(images, cell_results):
            if cells.ok:
                try:
                    cells = self._combine(image, cells, kept_cells, geoclip_set, options.top_k, options.tencrop,
                                          options.merge_km, weight)
                except ImageLoadError as error:  # readable for one decoder path, not the other
                    if on_error == "raise":
                        raise
                    cells = Prediction(source=cells.source, error=str(error))
            results.append(cells)
            if progress:
                progress(1)
        return results

    # ------------------------------------------------------------------ helpers
    def _combine(self, image, cells: Prediction, kept_cells: np.ndarray, geoclip_set, top_k: int,
                 tencrop: bool, merge_km: float | None, weight: float) -> Prediction:
        start = time.perf_counter()
        loaded = self.geoclip.load_image(image, tencrop)
        embeddings = self.geoclip.image_embeddings(self.geoclip.pixels(loaded, tencrop))
        crops = embeddings.shape[0]
        with torch.inference_mode():
            gallery_logits = self.geoclip.model.logits(embeddings, geoclip_set.embeddings).mean(dim=0)
        pool_g = torch.topk(gallery_logits, min(GEOCLIP_POOL, gallery_logits.numel())).indices.cpu().numpy()

        surface = cells.surface  # TransLocator's kept cells with their probabilities
        order = np.argsort(-surface.probability)[:CELL_POOL]
        cell_coords = np.stack([surface.lat[order], surface.lon[order]], axis=1).astype(np.float32)
        with torch.inference_mode():
            cell_logits = self.geoclip.location_logits(embeddings, cell_coords).view(crops, -1).mean(dim=0)

        lat = np.concatenate([geoclip_set.coords[pool_g, 0], cell_coords[:, 0]]).astype(np.float64)
        lon = np.concatenate([geoclip_set.coords[pool_g, 1], cell_coords[:, 1]]).astype(np.float64)
        logits = np.concatenate([gallery_logits[torch.from_numpy(pool_g).to(gallery_logits.device)].cpu().numpy(),
                                 cell_logits.cpu().numpy()])
        fine = self.translocator.cells.fine
        cell_probability = np.zeros(len(fine), dtype=np.float64)
        cell_probability[kept_cells] = surface.probability
        point_cells = self._cells_of(lat, lon)
        probability, _, _ = mixture(logits, point_cells, cell_probability, weight)

        merge = merge_km if merge_km is not None else float(cells.parameters.get("merge_km") or DEFAULT_MERGE_KM)
        base = build_prediction(cells.source, lat, lon, probability, top_k=int(top_k), merge_km=merge)
        for name in ("candidates", "mass_within_km", "surface"):
            setattr(cells, name, getattr(base, name))
        cells.parameters = {**cells.parameters, "candidates_are": "GeoCLIP points and TransLocator cell centres",
                            "candidate_points": int(len(lat)), "geoclip_pool": int(len(pool_g)),
                            "cell_pool": int(len(order)), "geoclip_weight": weight,
                            "merge_km": merge}
        cells.timings_ms = {**cells.timings_ms, "geoclip_and_mix": (time.perf_counter() - start) * 1000}
        return cells

    def _cells_of(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Fine cell of each point: S2 containment, else the nearest cell centre."""
        fine = self.translocator.cells.fine
        index = np.asarray(fine.assign(lat, lon), dtype=np.int64)
        for i in np.flatnonzero(index < 0):
            index[i] = int(np.argmin(haversine_km(lat[i], lon[i], fine.lat, fine.lon)))
        return index


def load(spec, options) -> EnsembleGeolocator:
    """Registry loader: the members load through the registry with the same options (the checkpoint is
    TransLocator's; GeoCLIP uses its published heads). Extra ``geoclip_weight`` sets w."""
    from geoapp.families import registry

    members = dict(options.extras.get("members") or {})  # already loaded members (the app shares them)
    translocator = members.get("translocator") or registry.get("translocator").load(options)
    geoclip = members.get("geoclip") or registry.get("geoclip").load(replace(options, checkpoint=None))
    weight = options.extras.get("geoclip_weight", DEFAULT_GEOCLIP_WEIGHT)
    return EnsembleGeolocator(geoclip, translocator, float(weight))
