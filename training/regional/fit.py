"""Train one regional method on frozen features, and measure it (country accuracy, % within 1/25/200/750 km).

Method presets (:data:`METHODS`) name the paper's models and our extra rows; each is a head kind
plus how its targets are built (cells, gallery, negatives, label smoothing). Training is a plain
AdamW loop over in-memory features (minutes on a CPU).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from geoapp.families.regional.heads import (
    SIGMA_PRESETS,
    Batch,
    HeadConfig,
    RegionalHead,
    haversine_smoothed_targets,
    loss,
)
from geoapp.families.regional.locator import country_tables
from geoapp.families.regional.model import References, RegionalModel, Tables
from geoapp.geo.distance import haversine_km
from geoapp.geo.regional_cells import CellConfig, Cells, build_cells

log = logging.getLogger("training.regional")
THRESHOLDS_KM = (1, 25, 200, 750)


@dataclass(frozen=True)
class MethodSpec:
    """One model of the comparison: a head kind and how its targets are made."""

    name: str
    kind: str  # classifier | offset | cells | hybrid | retrieval
    title: str
    cell_method: str | None = None  # cells/hybrid: a geoapp.geo.regional_cells method
    location_encoder: str = "rff"  # retrieval: rff | mlp
    sigmas: str = "paper"  # retrieval: a SIGMA_PRESETS name
    negatives: str = "sampled"  # retrieval: sampled (from the training set) | queue (earlier batches)
    label_smoothing_km: float | None = None  # cells/hybrid: PIGEON haversine smoothing (tau, km)


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("classifier", "classifier", "Baseline (country classifier)"),
    MethodSpec("offset", "offset", "Regression (country + offset, multi-task)"),
    MethodSpec("cells-down", "cells", "Cells, top-down", cell_method="top-down"),
    MethodSpec("cells-consolidated", "cells", "Cells, top-down + consolidation", cell_method="consolidated"),
    MethodSpec("cells-up", "cells", "Cells, bottom-up (theirs)", cell_method="bottom-up"),
    MethodSpec("cells-heatmap", "cells", "Cells, bottom-up, heat map only (ablation)", cell_method="heatmap"),
    MethodSpec("cells-coord-wcss", "cells", "Cells, bottom-up, WCSS on coordinates (ablation)",
               cell_method="coord-wcss"),
    MethodSpec("cells-smooth", "cells", "Cells, bottom-up + haversine label smoothing (τ 65 km)",
               cell_method="bottom-up", label_smoothing_km=65.0),
    MethodSpec("retrieval-mlp", "retrieval", "Retrieval, MLP location encoder", location_encoder="mlp"),
    MethodSpec("retrieval-rff", "retrieval", "Retrieval, RFF location encoder (σ 2^0, 2^8, 2^16)"),
    MethodSpec("retrieval-rff-queue", "retrieval", "Retrieval, RFF, negatives from a queue (M 1024)",
               negatives="queue"),
    MethodSpec("retrieval-rff-geoclip", "retrieval", "Retrieval, RFF with GeoCLIP's σ (2^0, 2^4, 2^8)",
               sigmas="geoclip"),
    MethodSpec("hybrid", "hybrid", "Hybrid: bottom-up cells + offset in the cell", cell_method="bottom-up"),
)}
BUILD_METHODS = ("cells-up", "cells-down", "cells-consolidated", "offset", "retrieval-rff", "retrieval-mlp",
                 "hybrid", "classifier")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and target settings shared by every method."""

    epochs: int = 20
    retrieval_epochs: int = 30
    batch_size: int = 256
    retrieval_batch_size: int = 512  # contrastive heads: more in-batch negatives, fewer location-encoder passes
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    dropout: float = 0.1
    cell_min: int = 200  # n: images a cell needs (paper: 200)
    negatives: int = 1024  # M: sampled negatives, or the queue length
    gallery_per_country: int = 4000  # retrieval gallery: grid points per country (plus the training locations)
    seed: int = 0
    device: str = "cpu"
    threads: int = 1  # torch CPU threads: these small MLPs run fastest on one (many threads only contend)


@dataclass
class TrainingSet:
    """Frozen features of geotagged photos in the chosen countries."""

    features: np.ndarray  # [N, D] float32
    coords: np.ndarray  # [N, 2] float64
    country: np.ndarray  # [N] int64 index into ``countries``
    countries: list[str]

    def subset(self, index: np.ndarray) -> TrainingSet:
        return TrainingSet(self.features[index], self.coords[index], self.country[index], self.countries)

    def __len__(self) -> int:
        return len(self.coords)


@dataclass
class Metrics:
    """Held-out results in the paper's columns (percentages)."""

    images: int
    country: float
    within_km: dict[int, float]
    median_km: float

    def to_dict(self) -> dict:
        return {"images": self.images, "country_accuracy": round(self.country, 2),
                "within_km": {str(k): round(v, 2) for k, v in self.within_km.items()},
                "median_km": round(self.median_km, 1)}


@dataclass
class FitResult:
    model: RegionalModel
    cells: Cells | None
    losses: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- tables
def base_tables(data: TrainingSet) -> Tables:
    """Country boxes and anchors from the training locations (Natural Earth where a country has none)."""
    geo_boxes, geo_anchors, _ = country_tables(data.countries, points_per_country=16)
    boxes, anchors = geo_boxes.copy(), geo_anchors.copy()
    for index in range(len(data.countries)):
        mine = data.coords[data.country == index]
        if len(mine):
            pad = 0.01  # degrees: a box of one photo must still have a size
            boxes[index] = [mine[:, 0].min() - pad, mine[:, 1].min() - pad, mine[:, 0].max() + pad,
                            mine[:, 1].max() + pad]
            anchors[index] = mine.mean(axis=0)
    std = data.features.std(axis=0)
    return Tables(countries=list(data.countries), country_boxes=boxes, country_anchors=anchors,
                  feature_mean=data.features.mean(axis=0).astype(np.float32),
                  feature_std=np.where(std > 1e-6, std, 1.0).astype(np.float32))


def make_cells(data: TrainingSet, method: MethodSpec, config: TrainConfig) -> Cells:
    south, west = data.coords.min(axis=0)
    north, east = data.coords.max(axis=0)
    return build_cells(data.coords[:, 0], data.coords[:, 1],
                       CellConfig(method=method.cell_method, min_images=config.cell_min, seed=config.seed),
                       features=data.features, bounds=(south, west, north, east))


def gallery(data: TrainingSet, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training locations + a dense grid inside each country (as the region prior does), with countries."""
    from geoapp.geo.regions import parse_region

    coords, country = [data.coords], [data.country]
    for index, code in enumerate(data.countries):
        points = parse_region(code).candidate_points(max_points=config.gallery_per_country)
        coords.append(points)
        country.append(np.full(len(points), index, dtype=np.int64))
    return np.concatenate(coords), np.concatenate(country)


# ---------------------------------------------------------------------------------------------- training
def fit(method: MethodSpec | str, data: TrainingSet, config: TrainConfig = TrainConfig(),
        meta: dict | None = None) -> FitResult:
    """Train ``method`` on ``data``; the model keeps no references (the caller adds them)."""
    method = METHODS[method] if isinstance(method, str) else method
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(config.threads)))
    try:
        return _fit(method, data, config, meta)
    finally:
        torch.set_num_threads(previous)


def _fit(method: MethodSpec, data: TrainingSet, config: TrainConfig, meta: dict | None) -> FitResult:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tables = base_tables(data)
    cells = None
    labels = data.country
    boxes = tables.country_boxes[data.country]
    targets = None
    classes = len(data.countries)
    if method.kind in ("cells", "hybrid"):
        cells = make_cells(data, method, config)
        labels = cells.assignment
        classes = len(cells)
        majority = [np.bincount(data.country[labels == c], minlength=len(data.countries)).argmax()
                    for c in range(classes)]
        pad = 0.005
        tables = replace(tables, cell_coords=cells.coords, cell_boxes=cells.boxes + [-pad, -pad, pad, pad],
                         cell_country=np.asarray(majority, np.int64))
        boxes = tables.cell_boxes[labels]
        if method.label_smoothing_km:
            targets = haversine_smoothed_targets(data.coords[:, 0], data.coords[:, 1], cells.coords,
                                                 method.label_smoothing_km)
    if method.kind == "retrieval":
        coords, country = gallery(data, config)
        tables = replace(tables, gallery_coords=coords, gallery_country=country)
    head_config = HeadConfig(kind=method.kind, feature_dim=data.features.shape[1], classes=classes,
                             hidden=config.hidden, dropout=config.dropout, location_encoder=method.location_encoder,
                             sigmas=SIGMA_PRESETS[method.sigmas])
    head = RegionalHead(head_config).to(config.device)
    device = torch.device(config.device)
    features = torch.as_tensor((data.features - tables.feature_mean) / tables.feature_std, dtype=torch.float32)
    latlon = torch.as_tensor(data.coords, dtype=torch.float32)
    label_t = torch.as_tensor(labels, dtype=torch.int64)
    boxes_t = torch.as_tensor(boxes, dtype=torch.float32)
    targets_t = None if targets is None else torch.as_tensor(targets)
    epochs = config.retrieval_epochs if method.kind == "retrieval" else config.epochs
    batch_size = config.retrieval_batch_size if method.kind == "retrieval" else config.batch_size
    steps_per_epoch = max(1, int(np.ceil(len(data) / batch_size)))
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps_per_epoch)
    queue: deque[torch.Tensor] = deque()
    losses = []
    head.train()
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(data)))
        total = 0.0
        for start in range(0, len(data), batch_size):
            index = order[start:start + batch_size]
            batch = Batch(features[index].to(device), latlon[index].to(device), label_t[index].to(device),
                          None if targets_t is None else targets_t[index].to(device), boxes_t[index].to(device))
            if method.kind == "retrieval":
                batch.negatives = _negatives(method, config, latlon, queue, rng, device)
            value, _ = loss(head, batch)
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            schedule.step()
            total += float(value.detach())
            if method.kind == "retrieval" and method.negatives == "queue":
                queue.append(batch.latlon.detach())
                while sum(len(q) for q in queue) > config.negatives:
                    queue.popleft()
        losses.append(total / steps_per_epoch)
    head.eval().cpu()
    info = {"method": method.name, "kind": method.kind, "training_images": len(data),
            "cells": None if cells is None else cells.to_dict(), "train_config": asdict(config),
            "method_spec": asdict(method), **(meta or {})}
    model = RegionalModel(head, tables, References.empty(data.features.shape[1]), info)
    return FitResult(model, cells, losses)


def _negatives(method: MethodSpec, config: TrainConfig, latlon: torch.Tensor, queue: deque, rng: np.random.Generator,
               device: torch.device) -> torch.Tensor | None:
    if method.negatives == "queue":
        return torch.cat(list(queue)).to(device) if queue else None
    count = min(config.negatives, len(latlon))
    return latlon[torch.as_tensor(rng.choice(len(latlon), count, replace=False))].to(device)


# ---------------------------------------------------------------------------------------------- metrics
def predict_top(model: RegionalModel, features: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Top candidate (lat, lon) [N, 2] and its country index [N] for raw features."""
    coords, countries = [], []
    for start in range(0, len(features), chunk):
        decoded = model.decode(torch.as_tensor(features[start:start + chunk], dtype=torch.float32))
        best = decoded.probs.argmax(axis=1)
        coords.append(decoded.coords[np.arange(len(best)), best])
        countries.append(decoded.country[best])
    if not coords:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(coords), np.concatenate(countries)


def score(pred: np.ndarray, pred_country: np.ndarray, truth: TrainingSet) -> Metrics:
    if len(truth) == 0:
        return Metrics(0, float("nan"), {k: float("nan") for k in THRESHOLDS_KM}, float("nan"))
    distance = haversine_km(pred[:, 0], pred[:, 1], truth.coords[:, 0], truth.coords[:, 1])
    return Metrics(images=len(truth), country=100.0 * float(np.mean(pred_country == truth.country)),
                   within_km={k: 100.0 * float(np.mean(distance <= k)) for k in THRESHOLDS_KM},
                   median_km=float(np.median(distance)))


def evaluate(model: RegionalModel, test: TrainingSet) -> Metrics:
    pred, country = predict_top(model, test.features)
    return score(pred, country, test)


def most_common_cell(train: TrainingSet, test: TrainingSet, config: TrainConfig) -> Metrics:
    """Baseline: always answer the mean location (and majority country) of the biggest bottom-up cell."""
    cells = make_cells(train, METHODS["cells-heatmap"], config)
    biggest = int(np.argmax(cells.counts))
    country = np.bincount(train.country[cells.assignment == biggest]).argmax()
    pred = np.repeat(cells.coords[biggest][None], len(test), axis=0)
    return score(pred, np.full(len(test), country), test)
