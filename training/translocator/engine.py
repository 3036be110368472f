"""The TransLocator optimisation loop, independent of where batches come from.

Paper recipe (all :class:`OptimConfig` fields): SGD (lr 0.01, momentum 0.9, weight decay 1e-4),
2000 linear warm-up steps, then the learning rate halves at epochs 5, 10, 15, 20, 30 and 40
(MultiStepLR, γ = 0.5); global batch 512 reached by gradient accumulation over micro-batches;
label-smoothed cross-entropies weighted (1-α-β, α, β) over coarse/middle/fine cells plus γ x
the scene loss (eq. 8; α = 0.3, β = 0.2, γ = 1 as in the authors' training script: 0.5 / 0.3 /
0.2 / 1). bf16 autocast on CUDA (optional on CPU), DDP under torchrun.

Warm-up (in steps) and the milestones (in epochs) are one ``LambdaLR`` stepped after every
optimiser step: factor = min(1, (step + 1) / warmup) x γ^(milestones passed at this epoch).

Files in ``out`` (rank 0 only):
  ``translocator-last.safetensors`` / ``translocator-epochNNN.safetensors``  inference checkpoints (config, weights,
      geocells) for :func:`geoapp.families.translocator.network.load_translocator_checkpoint`;
  ``train-state.pt``  the same + optimiser, scheduler, step, epoch, batches done (``--resume``);
  ``train_log.jsonl``  one record per epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from geoapp.fileio import atomic_write
from geoapp.geo.geocells import GeocellHierarchy
from geoapp.families.translocator.network import TransLocator, TransLocatorConfig, save_translocator_checkpoint
from training.translocator.loss import translocator_loss

from training.distributed import DistEnv, all_reduce_sum

from .data import ModelBatch

log = logging.getLogger("training.translocator")
STATE_NAME = "train-state.pt"
LAST_NAME = "translocator-last.safetensors"


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation hyper-parameters (paper defaults)."""

    epochs: int = 40
    batch_size: int = 512  # global batch per optimiser step (all ranks, all accumulated micro-batches)
    micro_batch: int = 32  # images per forward on one rank
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 2000
    milestones: tuple[int, ...] = (5, 10, 15, 20, 30, 40)  # epochs
    lr_gamma: float = 0.5
    alpha: float = 0.3  # weight of the middle-cell loss
    beta: float = 0.2  # weight of the fine-cell loss (coarse gets 1 - α - β)
    gamma: float = 1.0  # weight of the scene loss
    label_smoothing: float = 0.1
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU; or "bf16" / "fp32"
    grad_clip: float | None = None

    def accumulation(self, world: int) -> int:
        """Micro-batches per optimiser step on each rank."""
        per_step = self.micro_batch * world
        if self.batch_size % per_step:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of micro_batch x ranks "
                             f"({self.micro_batch} x {world})")
        return self.batch_size // per_step

    def lr_factor(self, step: int, steps_per_epoch: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        epoch = step // max(1, steps_per_epoch)
        return warm * self.lr_gamma ** sum(1 for m in self.milestones if epoch >= m)


class TransLocatorTrainer:
    """Model + optimiser + schedule + checkpoints; :meth:`optimiser_step` consumes micro-batches."""

    def __init__(self, model: TransLocator, cells: GeocellHierarchy, optim: OptimConfig, device: torch.device,
                 env: DistEnv, out: Path, steps_per_epoch: int, run_config: dict | None = None) -> None:
        if cells.sizes != model.config.cell_counts:
            raise ValueError(f"geocells {cells.sizes} do not fit the model's heads {model.config.cell_counts}")
        self.model, self.cells, self.optim, self.device, self.env = model.to(device), cells, optim, device, env
        self.out = Path(out)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.run_config = dict(run_config or {})
        self.accumulation = optim.accumulation(env.world)
        self.ddp: torch.nn.Module = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                             else None) if env.distributed else model)
        # No weight decay on biases and norms (ndim < 2), as the authors' script separates them.
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
        self.optimizer = torch.optim.SGD([{"params": decay, "weight_decay": optim.weight_decay},
                                          {"params": no_decay, "weight_decay": 0.0}],
                                         lr=optim.lr, momentum=optim.momentum)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: optim.lr_factor(step, self.steps_per_epoch))
        self.step = 0
        self.epoch = 0
        self.batches_done = 0  # micro-batches of the current epoch already consumed (mid-epoch resume)
        if env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ precision
    @property
    def autocast_dtype(self) -> torch.dtype | None:
        mode = self.optim.precision
        if mode == "fp32" or (mode == "auto" and self.device.type != "cuda"):
            return None
        if mode not in ("auto", "bf16"):
            raise ValueError(f"precision must be auto, bf16 or fp32, not {mode!r}")
        return torch.bfloat16

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ training
    def optimiser_step(self, micro_batches: list[ModelBatch]) -> dict[str, float]:
        """Forward/backward each micro-batch (gradients averaged), then one SGD step."""
        self.ddp.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for position, batch in enumerate(micro_batches):
            last = position == len(micro_batches) - 1
            # DDP: all-reduce the gradients once, on the last micro-batch.
            sync = contextlib.nullcontext() if (last or not self.env.distributed) else self.ddp.no_sync()
            with sync:
                with self._autocast():
                    output = self.ddp(batch.rgb, batch.seg)
                    loss, parts = translocator_loss(output, batch.targets, self.optim.alpha, self.optim.beta,
                                                    self.optim.gamma, self.optim.label_smoothing)
                    # Zero-weight tie to every head: heads without labels in this batch (scenes, an
                    # empty batch) still get a (zero) gradient, which DDP's all-reduce expects.
                    loss = loss + 0.0 * sum(t.float().sum() for t in (*output.cell_logits, *output.scene_logits))
                (loss / len(micro_batches)).backward()
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / len(micro_batches)
        if self.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        totals["lr"] = self.optimizer.param_groups[0]["lr"]
        return totals

    def run_epoch(self, batches: Iterable[ModelBatch], max_steps: int | None = None,
                  log_every: int = 50, save_every: int | None = None) -> dict[str, Any]:
        """Consume ``batches`` (this rank's micro-batches) in groups of ``accumulation``."""
        started, images, group = time.perf_counter(), 0, []
        sums: dict[str, float] = {}
        steps, stopped = 0, False
        for batch in batches:
            group.append(batch)
            images += batch.size
            self.batches_done += 1
            if len(group) < self.accumulation:
                continue
            parts = self.optimiser_step(group)
            group, steps = [], steps + 1
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
            if self.env.is_main and log_every and self.step % log_every == 0:
                log.info("epoch %d step %d loss %.4f (coarse %.3f middle %.3f fine %.3f scene %.3f) lr %.2e",
                         self.epoch, self.step, parts["total"], parts["coarse"], parts["middle"], parts["fine"],
                         parts["scene"], parts["lr"])
            if save_every and self.step % save_every == 0:
                self.save({"epoch": self.epoch, "step": self.step, "partial": True}, epoch_file=False)
            if max_steps is not None and self.step >= max_steps:
                stopped = True
                break
        seconds = time.perf_counter() - started
        total_images = all_reduce_sum(float(images), self.device)
        record = {"epoch": self.epoch, "step": self.step,
                  **{key: value / steps for key, value in sums.items() if steps}, "optimiser_steps": steps,
                  "images": int(total_images), "seconds": round(seconds, 2),
                  "images_per_second": round(total_images / seconds, 2) if seconds > 0 else None,
                  "complete": not stopped}
        return record

    def finish_epoch(self, record: dict[str, Any], complete: bool | None = None) -> None:
        """Save after :meth:`run_epoch`. A complete epoch moves the counter on (and gets its own
        checkpoint file); one cut short by ``max_steps`` is saved to resume mid-epoch."""
        complete = record.get("complete", True) if complete is None else complete
        if complete:
            self.epoch += 1
            self.batches_done = 0
        record["epoch"] = self.epoch
        self.save(record, epoch_file=complete)

    # ------------------------------------------------------------------ checkpoints
    def save(self, record: dict[str, Any], epoch_file: bool = True) -> Path | None:
        """Rank 0: inference checkpoint(s) + the resumable training state + the log line."""
        if not self.env.is_main:
            return None
        extra = {"trainer": "training.translocator", "epoch": self.epoch, "step": self.step,
                 "optim": _plain(asdict(self.optim)), "run": _plain(self.run_config), "record": _plain(record)}
        save_translocator_checkpoint(self.model, self.out / LAST_NAME, self.cells, extra, random_weights=False)
        if epoch_file:
            save_translocator_checkpoint(self.model, self.out / f"translocator-epoch{self.epoch:03d}.safetensors", self.cells,
                                         extra, random_weights=False)
        state = {"model": self.model.state_dict(), "model_config": self.model.config.to_dict(),
                 "cells": self.cells.to_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": self.step, "epoch": self.epoch,
                 "batches_done": self.batches_done, "optim": _plain(asdict(self.optim)), "run": _plain(self.run_config)}
        atomic_write(self.out / STATE_NAME, lambda handle: torch.save(state, handle), durable=True)
        if not record.get("partial"):
            with open(self.out / "train_log.jsonl", "a") as handle:
                handle.write(json.dumps(_plain(record)) + "\n")
        return self.out / LAST_NAME

    def resume(self) -> bool:
        """Load ``out/train-state.pt`` if present (same architecture and geocells required)."""
        path = self.out / STATE_NAME
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        stored = TransLocatorConfig.from_dict(state["model_config"])
        if stored != self.model.config:
            raise ValueError(f"{path} was trained with another architecture ({stored}); start a new --out folder")
        if state["cells"]["fine"]["tokens"] != self.cells.fine.tokens:
            raise ValueError(f"{path} was trained with other geocells; pass the same --cells or a new --out folder")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batches_done = int(state.get("batches_done", 0))
        if self.env.is_main:
            log.info("resumed from %s at epoch %d, step %d (%d micro-batches into the epoch)", path, self.epoch,
                     self.step, self.batches_done)
        return True


def _plain(value: Any) -> Any:
    """JSON-safe copy (tuples -> lists, paths -> str) for logs and checkpoint metadata."""
    return json.loads(json.dumps(value, default=str))
