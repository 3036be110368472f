"""End-to-end fine-tuning of a regional model with its backbone (``reproduce --finetune``).

The paper's methods are fine-tuned networks (Adam, learning rate 1e-5, 3-5 epochs); our other rows are heads
on frozen features. This trains SatWorld's image encoder *and* a head together, the paper's way:

* start: the head trained on frozen features (the method's frozen row, same seed) and SatWorld's shipped
  encoder; the standardisation of the frozen features stays as a fixed layer between them;
* Adam (no weight decay), ``lr`` for every parameter, ``epochs`` passes over the training images in batches of
  ``batch_size`` (the paper's batch size is not known here: ours);
* after each epoch the mean error on the validation images is measured, and the encoder and head of the best
  epoch are kept (the epoch is reported).

Only for the reproduction's rendered images (the encoder must see pixels); ``build`` keeps frozen features.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from geoapp.families.regional.heads import Batch, loss
from geoapp.families.regional.model import RegionalModel
from training.regional.fit import METHODS, EarlyStopping, FitResult, TrainConfig, TrainingSet, _negatives
from training.regional.metrics import mean_error_km
from training.regional.repro_data import encode, to_pixels


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 5  # the paper: 3-5
    lr: float = 1e-5  # the paper's Adam learning rate
    batch_size: int = 32
    seed: int = 0
    threads: int = 1


@dataclass
class FinetuneResult:
    model: RegionalModel  # fine-tuned head + the frozen run's tables
    encoder: nn.Module  # fine-tuned encoder (feed its features to ``model``)
    losses: list[float] = field(default_factory=list)
    validation_km: list[float] = field(default_factory=list)  # [before, after epoch 1, ...]
    best_epoch: int = 0
    seconds: float = 0.0


def finetune(frozen: FitResult, encoder: nn.Module, preprocess, train: TrainingSet, train_images: np.ndarray,
             validation: TrainingSet, validation_images: np.ndarray,
             config: FinetuneConfig = FinetuneConfig()) -> FinetuneResult:
    """Fine-tune ``encoder`` (a copy; ``encode_image(pixels)``) and ``frozen``'s head on the training images."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(config.threads)))
    try:
        return _finetune(frozen, encoder, preprocess, train, train_images, validation, validation_images, config)
    finally:
        torch.set_num_threads(previous)


def _finetune(frozen: FitResult, encoder: nn.Module, preprocess, train: TrainingSet, train_images: np.ndarray,
              validation: TrainingSet, validation_images: np.ndarray, config: FinetuneConfig) -> FinetuneResult:
    started = time.time()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    method = METHODS[frozen.model.method]
    targets = frozen.targets
    tables = frozen.model.tables
    encoder = copy.deepcopy(encoder).requires_grad_(True)
    head = copy.deepcopy(frozen.model.head).requires_grad_(True)
    model = RegionalModel(head, tables, frozen.model.references, {**frozen.model.meta, "finetuned": True})
    rows = np.flatnonzero(targets.keep)
    mean = torch.as_tensor(tables.feature_mean, dtype=torch.float32)
    std = torch.as_tensor(tables.feature_std, dtype=torch.float32)
    latlon = torch.as_tensor(train.coords[rows], dtype=torch.float32)
    labels = torch.as_tensor(targets.labels[rows], dtype=torch.int64)
    boxes = torch.as_tensor(targets.boxes[rows], dtype=torch.float32)
    soft = None if targets.soft is None else torch.as_tensor(targets.soft[rows])
    optimiser = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=config.lr)
    negatives = TrainConfig(negatives=int(frozen.model.meta.get("train_config", {}).get("negatives", 1024)))
    result = FinetuneResult(model, encoder)
    result.validation_km.append(_validation_error(model, encoder, preprocess, validation, validation_images))
    stopper = EarlyStopping(config.epochs)  # never stops early: keeps the best of the epochs
    queue: deque[torch.Tensor] = deque()
    for _ in range(config.epochs):
        encoder.train()
        head.train()
        order = rng.permutation(len(rows))
        total, steps = 0.0, 0
        for start in range(0, len(rows), config.batch_size):
            index = order[start:start + config.batch_size]
            features = (encoder.encode_image(to_pixels(train_images[rows[index]], preprocess)) - mean) / std
            batch = Batch(features, latlon[index], labels[index], None if soft is None else soft[index], boxes[index])
            if method.kind == "retrieval":
                batch.negatives = _negatives(method, negatives, latlon, queue, rng, torch.device("cpu"))
            value, _ = loss(head, batch)
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            total, steps = total + float(value.detach()), steps + 1
            if method.kind == "retrieval" and method.negatives == "queue":
                queue.append(batch.latlon)
                while sum(len(q) for q in queue) > negatives.negatives:
                    queue.popleft()
        result.losses.append(total / max(steps, 1))
        error = _validation_error(model, encoder, preprocess, validation, validation_images)
        result.validation_km.append(error)
        stopper.update(error, encoder, head)
    stopper.restore(encoder, head)
    encoder.eval().requires_grad_(False)
    head.eval().requires_grad_(False)
    result.best_epoch = stopper.best_epoch
    result.seconds = round(time.time() - started, 1)
    model.meta.update({"finetune": {"epochs": config.epochs, "lr": config.lr, "batch_size": config.batch_size,
                                    "best_epoch": result.best_epoch, "validation_km": result.validation_km}})
    return result


def _validation_error(model: RegionalModel, encoder: nn.Module, preprocess, validation: TrainingSet,
                      images: np.ndarray) -> float:
    encoder.eval()
    model.head.eval()
    model._gallery_embeddings = None  # the location encoder changed since the last look
    features = encode(images, encoder, preprocess)
    error = mean_error_km(model, features, validation.coords)
    model._gallery_embeddings = None
    return error


def finetuned_features(result: FinetuneResult, images: np.ndarray, preprocess) -> np.ndarray:
    """Features of ``images`` through the fine-tuned encoder (input of ``result.model``)."""
    return encode(images, result.encoder, preprocess)
