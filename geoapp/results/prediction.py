"""Prediction results analysts can use: distinct candidate places with names and evidence.

Torch-free: it turns (candidate coordinates, probabilities) into a :class:`Prediction`.
Near-duplicate candidates (points of the same place in the gallery) are merged greedily:
in order of probability, a point within ``merge_km`` of an already-kept candidate adds its
probability to that candidate instead of becoming a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from geoapp.geo.distance import haversine_km

MASS_RADII_KM = (25, 200, 750)
DEFAULT_MERGE_KM = 25.0  # the GeoCLIP paper's "city" threshold: candidates closer than this are one place
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: this result comes from a model with random (untrained) weights; "
    "it is for testing only and says nothing about where the photo was taken."
)


def percent(probability: float) -> str:
    """A probability as analysts read it: one decimal, two significant digits below 0.1 %."""
    value = 100.0 * float(probability)
    return f"{value:.1f} %" if value >= 0.1 else f"{value:.2g} %"


@dataclass
class GradCamResult:
    """One Grad-CAM map: where in the analysed crop the match with a candidate came from."""

    heatmap: np.ndarray  # [H, W] float32 in [0, 1]
    overlay: Image.Image  # heatmap blended on the analysed crop
    crop: Image.Image  # the pixels the model saw
    target: str
    random_weights: bool

    def side_by_side(self) -> Image.Image:
        """The analysed crop and its overlay next to each other (for reports)."""
        canvas = Image.new("RGB", (self.crop.width * 2 + 8, self.crop.height), "white")
        canvas.paste(self.crop, (0, 0))
        canvas.paste(self.overlay, (self.crop.width + 8, 0))
        return canvas


@dataclass
class Candidate:
    """One distinct candidate place."""

    rank: int
    lat: float
    lon: float
    probability: float  # summed over the merged near-duplicate points
    distance_to_top_km: float
    merged_points: int
    place: object | None = None  # geoapp.geo.places.Place

    @property
    def place_label(self) -> str:
        return getattr(self.place, "label", "") if self.place is not None else ""

    @property
    def country_code(self) -> str:
        return getattr(self.place, "country_code", "") if self.place is not None else ""

    def to_dict(self) -> dict:
        place = self.place.to_dict() if hasattr(self.place, "to_dict") else None
        return {
            "rank": self.rank,
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "probability": self.probability,
            "distance_to_top_km": round(self.distance_to_top_km, 3),
            "merged_points": self.merged_points,
            "place": self.place_label,
            "country_code": self.country_code,
            "place_details": place,
        }


@dataclass
class ProbabilitySurface:
    """Probabilities over every scored candidate point (for heatmaps)."""

    lat: np.ndarray
    lon: np.ndarray
    probability: np.ndarray

    def __len__(self) -> int:
        return int(self.probability.shape[0])

    def top(self, max_points: int = 5000, mass: float = 0.999) -> "ProbabilitySurface":
        """The most probable points holding ``mass`` of the probability, at most ``max_points``."""
        order = np.argsort(-self.probability)
        cumulative = np.cumsum(self.probability[order])
        keep = min(max_points, int(np.searchsorted(cumulative, mass)) + 1, len(order))
        idx = order[:keep]
        return ProbabilitySurface(self.lat[idx], self.lon[idx], self.probability[idx])

    def to_dict(self, max_points: int = 5000) -> dict:
        top = self.top(max_points)
        return {
            "points": len(self),
            "returned": len(top),
            "lat": np.round(top.lat, 5).tolist(),
            "lon": np.round(top.lon, 5).tolist(),
            "probability": top.probability.tolist(),
        }


@dataclass
class Prediction:
    """The result for one image (or the error that prevented one)."""

    source: str
    candidates: list[Candidate] = field(default_factory=list)
    mass_within_km: dict[int, float] = field(default_factory=dict)
    surface: ProbabilitySurface | None = None
    model: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    image: dict = field(default_factory=dict)
    region: object | None = None  # geoapp.geo.regions.Region
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    # Family-specific evidence (geoapp.families.base.EvidenceItem): segmentation, scene, search path ...
    evidence: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def random_weights(self) -> bool:
        return bool(self.model.get("random_weights"))

    @property
    def top(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def to_dict(self, include_surface: bool = False, surface_max_points: int = 5000) -> dict:
        data = {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "random_weights": self.random_weights,
            "warnings": list(self.warnings),
            "candidates": [c.to_dict() for c in self.candidates],
            "mass_within_km": {str(k): v for k, v in self.mass_within_km.items()},
            "model": dict(self.model),
            "parameters": dict(self.parameters),
            "image": dict(self.image),
            "region": self.region.to_geojson() if self.region is not None and hasattr(self.region, "to_geojson") else None,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        for item in self.evidence:
            data[item.key] = item.to_dict()
        data["evidence"] = [{"key": item.key, "title": item.title} for item in self.evidence]
        if include_surface and self.surface is not None:
            data["surface"] = self.surface.to_dict(surface_max_points)
        return data

    @property
    def caveats(self) -> list[str]:
        """Warnings that come from the model family (not from the file): shown next to every figure."""
        caveat = self.model.get("caveat")
        return [caveat] if caveat else []


def merge_candidates(lat: np.ndarray, lon: np.ndarray, prob: np.ndarray, top_k: int, merge_km: float,
                     pool_size: int | None = None) -> list[tuple[float, float, float, int]]:
    """Greedy merge of near-duplicates; returns up to ``top_k`` (lat, lon, summed probability, count).

    Only the ``pool_size`` most probable points are considered (the rest carry negligible
    mass); each kept candidate sits on its most probable point.
    """
    if prob.size == 0:
        return []
    pool_size = pool_size or max(2000, 100 * top_k)
    order = np.argsort(-prob)[:pool_size]
    max_kept = max(4 * top_k, top_k + 20)
    kept_lat: list[float] = []
    kept_lon: list[float] = []
    kept_prob: list[float] = []
    kept_count: list[int] = []
    for i in order:
        if kept_lat and merge_km > 0:
            d = haversine_km(lat[i], lon[i], np.asarray(kept_lat), np.asarray(kept_lon))
            nearest = int(np.argmin(d))
            if d[nearest] <= merge_km:
                kept_prob[nearest] += float(prob[i])
                kept_count[nearest] += 1
                continue
        if len(kept_lat) < max_kept:
            kept_lat.append(float(lat[i]))
            kept_lon.append(float(lon[i]))
            kept_prob.append(float(prob[i]))
            kept_count.append(1)
    ranked = sorted(zip(kept_lat, kept_lon, kept_prob, kept_count), key=lambda c: -c[2])
    return ranked[:top_k]


def build_prediction(source: str, lat: np.ndarray, lon: np.ndarray, prob: np.ndarray, *, top_k: int,
                     merge_km: float, place_names: bool = True,
                     moved: Mapping[tuple[float, float], tuple[float, float]] | None = None) -> Prediction:
    """Distinct top-k candidates, distances, probability mass near the top, and the surface.

    ``moved`` relocates merged places after merging (fine refinement): a place whose most probable
    point is a key sits at the value instead, with the same probability and merged points.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    merged = merge_candidates(lat, lon, prob, top_k, merge_km)
    if moved:
        merged = _fold_close(
            [(*moved.get((m[0], m[1]), (m[0], m[1])), m[2], m[3]) for m in merged], merge_km)
    candidates: list[Candidate] = []
    mass: dict[int, float] = {}
    if merged:
        top_lat, top_lon = merged[0][0], merged[0][1]
        places = _place_names([m[0] for m in merged], [m[1] for m in merged]) if place_names else [None] * len(merged)
        for rank, ((c_lat, c_lon, c_prob, count), place) in enumerate(zip(merged, places), start=1):
            candidates.append(Candidate(
                rank=rank, lat=c_lat, lon=c_lon, probability=min(1.0, c_prob),
                distance_to_top_km=float(haversine_km(top_lat, top_lon, c_lat, c_lon)),
                merged_points=count, place=place,
            ))
        distances = haversine_km(top_lat, top_lon, lat, lon)
        # min(1, ...): float summation can overshoot 1 by an ulp, and a probability above 1 reads as a bug.
        mass = {radius: min(1.0, float(prob[distances <= radius].sum())) for radius in MASS_RADII_KM}
    return Prediction(source=source, candidates=candidates, mass_within_km=mass,
                      surface=ProbabilitySurface(lat, lon, prob))


def _fold_close(places: list[tuple[float, float, float, int]], merge_km: float) -> list[tuple[float, float, float, int]]:
    """Places that moved within ``merge_km`` of a more probable one join it (they are one place now)."""
    kept: list[list] = []
    for lat, lon, prob, count in places:
        near = [k for k in kept if merge_km > 0 and haversine_km(k[0], k[1], lat, lon) <= merge_km]
        if near:
            near[0][2] += prob
            near[0][3] += count
        else:
            kept.append([lat, lon, prob, count])
    return sorted((tuple(k) for k in kept), key=lambda c: -c[2])


def _place_names(lats: list[float], lons: list[float]) -> list[object | None]:
    from geoapp.geo.places import get_place_index

    return list(get_place_index().nearest_many(np.asarray(lats), np.asarray(lons)))
