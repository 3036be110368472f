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

The result is a :class:`~geoapp.translocator_results.TransLocatorPrediction` over the pool (with
TransLocator's segmentation map, scene and branch weights), so the UI, CLI and case store show it
like any other prediction. It is flagged random when either member has random weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import torch

from geoapp.geo.distance import haversine_km
from geoapp.geo.regions import Region, parse_region
from geoapp.imaging import ImageLoadError
from geoapp.predict import DEFAULT_MERGE_KM
from geoapp.prediction import RANDOM_WEIGHTS_WARNING, Prediction, build_prediction
from geoapp.translocator_results import TransLocatorPrediction

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


class EnsembleGeolocator:
    """TransLocator + GeoCLIP behind the common geolocator API (``predict``, ``predict_batch``, ``describe``)."""

    model_family = "ensemble"

    def __init__(self, geoclip, translocator, geoclip_weight: float = DEFAULT_GEOCLIP_WEIGHT) -> None:
        if getattr(translocator, "model_family", None) != "translocator":
            raise ValueError("the ensemble's second member must be a TransLocator geolocator")
        if not 0.0 <= geoclip_weight <= 1.0:
            raise ValueError(f"geoclip_weight must be between 0 and 1; got {geoclip_weight}")
        self.geoclip = geoclip
        self.translocator = translocator
        self.geoclip_weight = float(geoclip_weight)

    @property
    def random_weights(self) -> bool:
        return bool(self.geoclip.random_weights or self.translocator.random_weights)

    @property
    def device(self) -> torch.device:
        return self.geoclip.device

    def describe(self) -> dict:
        return {
            "model": "ensemble",
            "members": {"geoclip": self.geoclip.describe(), "translocator": self.translocator.describe()},
            "geoclip_weight": self.geoclip_weight,
            "rule": ENSEMBLE_RULE,
            "random_weights": self.random_weights,
        }

    def candidate_set(self, region: str | dict | Region | None = None, extra_points: int | None = None):
        """Resolve the region for both members (a RegionError from either is raised here)."""
        self.translocator.candidate_set(region)
        if extra_points is None:
            return self.geoclip.candidate_set(region)
        return self.geoclip.candidate_set(region, extra_points=extra_points)

    def load_image(self, image, tencrop: bool = False):
        return self.geoclip.load_image(image, tencrop)

    def text_map(self, *args, **kwargs) -> Prediction:
        return self.geoclip.text_map(*args, **kwargs)

    def predict(self, image, top_k: int = 5, region: str | dict | Region | None = None, tencrop: bool = False,
                merge_km: float | None = None, region_points: int | None = None) -> TransLocatorPrediction:
        """Predict one image; bad images raise :class:`~geoapp.imaging.ImageLoadError`, bad regions RegionError."""
        return self.predict_batch([image], top_k=top_k, region=region, tencrop=tencrop, merge_km=merge_km,
                                  on_error="raise", region_points=region_points)[0]

    def predict_batch(self, images: Iterable, top_k: int = 5, region: str | dict | Region | None = None,
                      tencrop: bool = False, merge_km: float | None = None, batch_size: int = 8, on_error: str = "record",
                      progress: Callable[[int], None] | None = None,
                      region_points: int | None = None) -> list[Prediction]:
        """One record per image (unreadable ones carry ``.error``, as with the single models)."""
        images = list(images)
        region = None if region is None else parse_region(region)  # parsed once, shared by both members
        geoclip_set = self.candidate_set(region, region_points)
        # TransLocator's kept fine cells (indices in the same order as every result's surface): once per batch.
        kept_cells = self.translocator.candidate_set(region).indices
        # TransLocator first: it reads the file, so a bad file fails once, with its message.
        cell_results = self.translocator.predict_batch(images, top_k=top_k, region=region, tencrop=tencrop,
                                                       merge_km=merge_km, batch_size=batch_size, on_error=on_error)
        results: list[Prediction] = []
        for image, cells in zip(images, cell_results):
            if cells.ok:
                try:
                    cells = self._combine(image, cells, kept_cells, geoclip_set, top_k, tencrop, merge_km)
                except ImageLoadError as error:  # readable for one decoder path, not the other
                    if on_error == "raise":
                        raise
                    cells = Prediction(source=cells.source, error=str(error), model=self.describe())
            else:
                cells.model = self.describe()
            results.append(cells)
            if progress:
                progress(1)
        return results

    # ------------------------------------------------------------------ helpers
    def _combine(self, image, cells: TransLocatorPrediction, kept_cells: np.ndarray, geoclip_set, top_k: int,
                 tencrop: bool, merge_km: float | None) -> TransLocatorPrediction:
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
        probability, _, _ = mixture(logits, point_cells, cell_probability, self.geoclip_weight)

        merge = merge_km if merge_km is not None else float(cells.parameters.get("merge_km") or DEFAULT_MERGE_KM)
        base = build_prediction(cells.source, lat, lon, probability, top_k=int(top_k), merge_km=merge)
        for name in ("candidates", "mass_within_km", "surface"):
            setattr(cells, name, getattr(base, name))
        cells.model = self.describe()
        cells.parameters = {**cells.parameters, "candidates_are": "GeoCLIP points and TransLocator cell centres",
                            "candidate_points": int(len(lat)), "geoclip_pool": int(len(pool_g)),
                            "cell_pool": int(len(order)), "geoclip_weight": self.geoclip_weight,
                            "merge_km": merge}
        if self.random_weights and RANDOM_WEIGHTS_WARNING not in cells.warnings:
            cells.warnings.append(RANDOM_WEIGHTS_WARNING)
        cells.timings_ms = {**cells.timings_ms, "geoclip_and_mix": (time.perf_counter() - start) * 1000}
        return cells

    def _cells_of(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Fine cell of each point: S2 containment, else the nearest cell centre."""
        fine = self.translocator.cells.fine
        index = np.asarray(fine.assign(lat, lon), dtype=np.int64)
        for i in np.flatnonzero(index < 0):
            index[i] = int(np.argmin(haversine_km(lat[i], lon[i], fine.lat, fine.lon)))
        return index
