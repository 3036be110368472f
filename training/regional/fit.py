"""Train one regional method on frozen features (metrics in :mod:`training.regional.metrics`).

Method presets (:data:`METHODS`) name the paper's models and our extra rows; each is a head kind
plus how its targets are built (cells, gallery, negatives, label smoothing). Training is a plain
AdamW loop over in-memory features (minutes on a CPU); with a validation set it stops early
(``patience`` epochs without a lower mean error) and keeps the best epoch's weights.
"""

from __future__ import annotations

import copy
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
from geoapp.geo.regional_cells import CellConfig, Cells, build_cells
from training.regional.metrics import Metrics, mean_error_km, score
from training.regional.metrics import evaluate as evaluate_features

log = logging.getLogger("training.regional")


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
    MethodSpec("cells-up-paper", "cells", "Cells, bottom-up (paper)", cell_method="bottom-up-paper"),
    MethodSpec("cells-up", "cells", "Cells, bottom-up (ours)", cell_method="bottom-up"),
    MethodSpec("cells-heatmap", "cells", "Cells, bottom-up (ours), heat map only (ablation)", cell_method="heatmap"),
    MethodSpec("cells-coord-wcss", "cells", "Cells, bottom-up (ours), WCSS on coordinates (ablation)",
               cell_method="coord-wcss"),
    MethodSpec("cells-smooth", "cells", "Cells, bottom-up (ours) + haversine label smoothing (τ 65 km)",
               cell_method="bottom-up", label_smoothing_km=65.0),
    MethodSpec("retrieval-mlp", "retrieval", "Retrieval, MLP location encoder", location_encoder="mlp"),
    MethodSpec("retrieval-rff", "retrieval", "Retrieval, RFF location encoder (σ 2^0, 2^8, 2^16)"),
    MethodSpec("retrieval-rff-queue", "retrieval", "Retrieval, RFF, negatives from a queue (M 1024)",
               negatives="queue"),
    MethodSpec("retrieval-rff-geoclip", "retrieval", "Retrieval, RFF with GeoCLIP's σ (2^0, 2^4, 2^8)",
               sigmas="geoclip"),
    MethodSpec("hybrid", "hybrid", "Hybrid: bottom-up (ours) cells + offset in the cell", cell_method="bottom-up"),
)}
BUILD_METHODS = ("cells-up", "cells-up-paper", "cells-down", "cells-consolidated", "offset", "retrieval-rff",
                 "retrieval-mlp", "hybrid", "classifier")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and target settings shared by every method."""

    epochs: int = 20  # at most (early stopping on a validation set may stop sooner)
    retrieval_epochs: int = 30
    patience: int = 5  # epochs without a lower validation mean error before stopping
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
class Targets:
    """What a head is trained towards, row by row of the training set (``keep``: rows that train it)."""

    tables: Tables
    head_config: HeadConfig
    cells: Cells | None
    keep: np.ndarray  # [N] bool: bottom-up (paper) leaves unclaimed images out of every cell
    labels: np.ndarray  # [N] int64 country or cell (-1 where not kept)
    boxes: np.ndarray  # [N, 4] the label's box (offset/hybrid targets)
    soft: np.ndarray | None  # [N, K] haversine-smoothed targets, or None


@dataclass
class FitResult:
    model: RegionalModel
    cells: Cells | None
    targets: Targets
    losses: list[float] = field(default_factory=list)
    validation_km: list[float] = field(default_factory=list)  # mean error on the validation set per epoch
    best_epoch: int | None = None  # 1-based; None: no validation set (the last epoch is kept)

    @property
    def epochs_run(self) -> int:
        return len(self.losses)


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
        meta: dict | None = None, validation: TrainingSet | None = None) -> FitResult:
    """Train ``method`` on ``data`` (early stopping on ``validation`` when given and not empty); the model keeps
    no references (the caller adds them)."""
    method = METHODS[method] if isinstance(method, str) else method
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(config.threads)))
    try:
        return _fit(method, data, config, meta, validation if validation is not None and len(validation) else None)
    finally:
        torch.set_num_threads(previous)


def prepare(method: MethodSpec, data: TrainingSet, config: TrainConfig) -> Targets:
    """Tables, cells and per-row targets of ``method`` on ``data``."""
    tables = base_tables(data)
    cells = None
    labels = data.country
    boxes = tables.country_boxes[data.country]
    soft = None
    classes = len(data.countries)
    keep = np.ones(len(data), dtype=bool)
    if method.kind in ("cells", "hybrid"):
        cells = make_cells(data, method, config)
        labels = cells.assignment
        keep = labels >= 0
        classes = len(cells)
        majority = [np.bincount(data.country[labels == c], minlength=len(data.countries)).argmax()
                    for c in range(classes)]
        pad = 0.005
        tables = replace(tables, cell_coords=cells.coords, cell_boxes=cells.boxes + [-pad, -pad, pad, pad],
                         cell_country=np.asarray(majority, np.int64))
        boxes = tables.cell_boxes[np.maximum(labels, 0)]
        if method.label_smoothing_km:
            soft = haversine_smoothed_targets(data.coords[:, 0], data.coords[:, 1], cells.coords,
                                              method.label_smoothing_km)
    if method.kind == "retrieval":
        coords, country = gallery(data, config)
        tables = replace(tables, gallery_coords=coords, gallery_country=country)
    head_config = HeadConfig(kind=method.kind, feature_dim=data.features.shape[1], classes=classes,
                             hidden=config.hidden, dropout=config.dropout, location_encoder=method.location_encoder,
                             sigmas=SIGMA_PRESETS[method.sigmas])
    return Targets(tables, head_config, cells, keep, np.asarray(labels, np.int64), boxes, soft)


def _fit(method: MethodSpec, data: TrainingSet, config: TrainConfig, meta: dict | None,
         validation: TrainingSet | None) -> FitResult:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    targets = prepare(method, data, config)
    tables = targets.tables
    head = RegionalHead(targets.head_config).to(config.device)
    device = torch.device(config.device)
    rows = np.flatnonzero(targets.keep)
    features = torch.as_tensor((data.features[rows] - tables.feature_mean) / tables.feature_std, dtype=torch.float32)
    latlon = torch.as_tensor(data.coords[rows], dtype=torch.float32)
    label_t = torch.as_tensor(targets.labels[rows], dtype=torch.int64)
    boxes_t = torch.as_tensor(targets.boxes[rows], dtype=torch.float32)
    soft_t = None if targets.soft is None else torch.as_tensor(targets.soft[rows])
    epochs = config.retrieval_epochs if method.kind == "retrieval" else config.epochs
    batch_size = config.retrieval_batch_size if method.kind == "retrieval" else config.batch_size
    steps_per_epoch = max(1, int(np.ceil(len(rows) / batch_size)))
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps_per_epoch)
    queue: deque[torch.Tensor] = deque()
    result = FitResult(RegionalModel(head, tables, References.empty(data.features.shape[1]), {}), targets.cells,
                       targets)
    stopper = EarlyStopping(config.patience) if validation is not None else None
    for _ in range(epochs):
        head.train()
        order = torch.as_tensor(rng.permutation(len(rows)))
        total = 0.0
        for start in range(0, len(rows), batch_size):
            index = order[start:start + batch_size]
            batch = Batch(features[index].to(device), latlon[index].to(device), label_t[index].to(device),
                          None if soft_t is None else soft_t[index].to(device), boxes_t[index].to(device))
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
        result.losses.append(total / steps_per_epoch)
        if stopper is not None:
            error = validation_error(result.model, validation)
            result.validation_km.append(error)
            if stopper.update(error, head):
                break
    if stopper is not None:
        stopper.restore(head)
        result.best_epoch = stopper.best_epoch
    head.eval().cpu()
    result.model.meta = {"method": method.name, "kind": method.kind, "training_images": len(rows),
                         "cells": None if targets.cells is None else targets.cells.to_dict(),
                         "train_config": asdict(config), "method_spec": asdict(method),
                         "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, **(meta or {})}
    return result


class EarlyStopping:
    """Keeps the weights of the epoch with the lowest validation error; says when ``patience`` epochs passed
    without a lower one."""

    def __init__(self, patience: int) -> None:
        self.patience = max(1, int(patience))
        self.best = float("inf")
        self.best_epoch = 0
        self.epoch = 0
        self.state: dict | None = None

    def update(self, error: float, *modules: torch.nn.Module) -> bool:
        """Record one epoch's error; True when training should stop."""
        self.epoch += 1
        if error < self.best:
            self.best, self.best_epoch = error, self.epoch
            self.state = [copy.deepcopy(m.state_dict()) for m in modules]
        return self.epoch - self.best_epoch >= self.patience

    def restore(self, *modules: torch.nn.Module) -> None:
        if self.state is not None:
            for module, state in zip(modules, self.state):
                module.load_state_dict(state)


def validation_error(model: RegionalModel, validation: TrainingSet) -> float:
    """Mean error (km) of ``model`` on ``validation``, leaving the head in training mode."""
    model.head.eval()
    model._gallery_embeddings = None  # the location encoder changed since the last look
    try:
        return mean_error_km(model, validation.features, validation.coords)
    finally:
        model._gallery_embeddings = None
        model.head.train()


def _negatives(method: MethodSpec, config: TrainConfig, latlon: torch.Tensor, queue: deque, rng: np.random.Generator,
               device: torch.device) -> torch.Tensor | None:
    if method.negatives == "queue":
        return torch.cat(list(queue)).to(device) if queue else None
    count = min(config.negatives, len(latlon))
    return latlon[torch.as_tensor(rng.choice(len(latlon), count, replace=False))].to(device)


# ---------------------------------------------------------------------------------------------- metrics
def evaluate(model: RegionalModel, test: TrainingSet) -> Metrics:
    return evaluate_features(model, test.features, test.coords, test.country)


def most_common_cell(train: TrainingSet, test: TrainingSet, config: TrainConfig) -> Metrics:
    """Baseline: always answer the mean location (and majority country) of the biggest bottom-up cell."""
    cells = make_cells(train, METHODS["cells-heatmap"], config)
    biggest = int(np.argmax(cells.counts))
    country = np.bincount(train.country[cells.assignment == biggest]).argmax()
    pred = np.repeat(cells.coords[biggest][None], len(test), axis=0)
    return score(pred, np.full(len(test), country), test.coords, test.country)
