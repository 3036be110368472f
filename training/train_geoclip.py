"""Train GeoCLIP's heads: ``python -m training.train_geoclip`` (paper §3.2 / §4).

Data, one of:
  --features DIR            pre-computed CLIP features (training.features): the fast path
  --csv CSV --images DIR    photos, with SimCLR-style augmented views through the frozen backbone
  --shards DIR|GLOB         the same from WebDataset-style .tar shards (training.shards)

Defaults follow the paper: Adam (lr 3e-5, weight decay 1e-6), StepLR gamma 0.87 per epoch,
batch 512, GPS queue 4096, learnable temperature initialised to 1/0.07, Gaussian GPS noise
(150 m on the ground; see training.gps for the units). ``--init pretrained`` fine-tunes the
published GeoCLIP heads; ``--fine-branch`` adds a σ = 2^12 Fourier branch for street level.

Runs unchanged under torchrun (DDP; gloo on CPU, nccl on GPU). ``--batch-size`` is the
global batch: each of the N ranks takes batch/N samples; the queue is filled with the GPS of
the whole global batch, so it is the same on every rank. Only rank 0 writes files.

Outputs in --out: heads-epochNNN.safetensors and heads-last.safetensors (load with
``Geolocator.load(heads="…/heads-last.safetensors")``), train-state.pt (for --resume), train_log.jsonl.

Examples::

    python -m training.train_geoclip --features feats/mp16 --out runs/geoclip --epochs 10
    torchrun --nproc_per_node 4 -m training.train_geoclip --features feats/mp16 --out runs/ft \\
        --init pretrained --fine-branch --epochs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from geoapp.fileio import atomic_write
from geoapp.galleries.gallery import Gallery
from geoapp.geo.metrics import error_summary
from geoapp.models.backbones import BACKBONES, ClipBackbone
from geoapp.models.geoclip import save_heads_checkpoint

from training.augment import train_transform
from training.data import DatasetSpec, ImageDataset, SkipCounter, collate_samples, read_records
from training.distributed import (DistEnv, all_gather_rows, all_reduce_sum, barrier, init_distributed, pick_device,
                                  shutdown_distributed)
from training.feature_store import FeatureDataset, FeatureStore, collate_feature_batch
from training.gps import DEFAULT_NOISE_M, DEFAULT_QUEUE_SIZE, GPSQueue
from training.heads import GeoCLIPHeads, build_heads
from training.objective import contrastive_loss
from training.shards import ShardImageDataset, list_shards

log = logging.getLogger("training.train_geoclip")
STATE_NAME = "train-state.pt"
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Everything a run depends on (saved in checkpoints and the log)."""

    out: str
    features: str | None = None
    csv: str | None = None
    images: str | None = None
    shards: str | None = None
    layout: str = "auto"
    backbone: str = "ViT-L-14"
    backbone_weights: str | None = None
    init: str = "random"
    fine_branch: bool = False
    epochs: int = 10
    batch_size: int = 512
    lr: float = 3e-5
    weight_decay: float = 1e-6
    gamma: float = 0.87
    queue_size: int = DEFAULT_QUEUE_SIZE
    gps_noise_m: float = DEFAULT_NOISE_M
    aug_min_scale: float = 0.08
    seed: int = 0
    workers: int = 2
    device: str | None = None
    max_steps: int | None = None
    log_every: int = 50
    resume: bool = False
    val_features: str | None = None
    val_gallery: str | None = None
    # Speed (same objective): "bf16" autocasts the MLPs (Fourier phases, similarities and loss stay
    # float32); batched_branches runs the three location branches as batched matmuls; compile = torch.compile.
    precision: str = "fp32"
    batched_branches: bool = False
    compile: bool = False


class Trainer:
    """Builds model, data and optimiser from a :class:`TrainConfig` and runs the epochs."""

    def __init__(self, config: TrainConfig) -> None:
        if config.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {config.precision!r}")
        self.config = config
        self.env = DistEnv.from_env()
        self.device = pick_device(self.env, config.device)
        init_distributed(self.env, self.device)
        self.out = Path(config.out)
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)

        heads, self.init_description = build_heads(config.init, config.fine_branch, config.seed)
        heads.batched_branches = bool(config.batched_branches)
        self.heads: GeoCLIPHeads = heads.to(self.device)
        self.model: torch.nn.Module = (DistributedDataParallel(self.heads, device_ids=[self.device.index]
                                                               if self.device.type == "cuda" else None)
                                       if self.env.distributed else self.heads)
        if config.compile:
            self.model = torch.compile(self.model)
        self.optimizer = torch.optim.Adam(self.heads.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=config.gamma)
        self.queue = GPSQueue(config.queue_size).to(self.device)
        # Different noise on each rank; the model initialisation above was seeded identically.
        self.noise_generator = torch.Generator(device=self.device).manual_seed(config.seed * 1000 + self.env.rank + 1)
        self.backbone: ClipBackbone | None = None
        self.skipped = SkipCounter()
        self.epoch = 0
        self.step = 0
        if config.resume:
            self._load_state()

    # ------------------------------------------------------------------ data
    def _loader(self, epoch: int) -> Iterable:
        c, env = self.config, self.env
        per_rank = max(1, c.batch_size // env.world)
        if c.features:
            dataset = FeatureDataset(FeatureStore(c.features))
            collate = collate_feature_batch
        elif c.csv:
            self._ensure_backbone()
            records = read_records(DatasetSpec(Path(c.csv), Path(c.images) if c.images else None, c.layout),
                                   require_images=True)
            dataset = ImageDataset(records, train_transform(self.backbone.spec.preprocess, (c.aug_min_scale, 1.0)))
            collate = collate_samples
        else:
            self._ensure_backbone()
            shards = list_shards(c.shards)
            order = np.random.default_rng(c.seed + epoch).permutation(len(shards))  # new shard order each epoch
            dataset = ShardImageDataset([shards[i] for i in order],
                                        train_transform(self.backbone.spec.preprocess, (c.aug_min_scale, 1.0)),
                                        env.rank, env.world)
            return DataLoader(dataset, batch_size=per_rank, num_workers=c.workers, collate_fn=collate_samples)
        if env.distributed:
            sampler = DistributedSampler(dataset, env.world, env.rank, shuffle=True, seed=c.seed)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(c.seed + epoch))
        return DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=c.workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda")

    def _ensure_backbone(self) -> None:
        if self.backbone is None:
            from training.features import build_backbone

            self.backbone, identity = build_backbone(self.config.backbone, self.config.backbone_weights, self.config.seed)
            self.backbone = self.backbone.to(self.device).eval()
            if identity["random_weights"] and self.env.is_main:
                log.warning("RANDOM BACKBONE WEIGHTS: training on meaningless features (tests only)")

    def _to_features(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [B, 768] float32, latlon [B, 2]) on the device, from either kind of batch."""
        if isinstance(batch, tuple):
            features, latlon = batch
            return features.to(self.device, non_blocking=True), latlon.to(self.device, non_blocking=True)
        for failure in batch.failures:
            self.skipped.add(failure.key, failure.error or "unreadable")
        latlon = batch.latlon.to(self.device)
        if latlon.shape[0] == 0:
            return torch.zeros(0, self.backbone.embed_dim, device=self.device), latlon
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
            features = self.backbone.encode_image(batch.pixels.to(self.device, non_blocking=True))
        return features.float(), latlon

    def _synchronised(self, loader: Iterable) -> Iterator[Any]:
        """Stop every rank as soon as one runs out of batches (shards may hold uneven counts)."""
        iterator = iter(loader)
        while True:
            batch = next(iterator, None)
            if self.env.distributed:
                have = torch.tensor([0 if batch is None else 1], device=self.device)
                dist.all_reduce(have, op=dist.ReduceOp.MIN)
                if int(have.item()) == 0:
                    return
            elif batch is None:
                return
            yield batch

    # ------------------------------------------------------------------ training
    def train_step(self, features: torch.Tensor, latlon: torch.Tensor) -> float:
        """One optimiser step; then the global batch's clean GPS go into the queue."""
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss = contrastive_loss(self.model, features, latlon, self.queue, self.config.gps_noise_m,
                                    self.noise_generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.heads.clamp_logit_scale()
        self.queue.enqueue(all_gather_rows(latlon.detach()))
        self.step += 1
        return float(loss.detach())

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        started = time.perf_counter()
        losses: list[float] = []
        samples = 0
        for batch in self._synchronised(self._loader(epoch)):
            features, latlon = self._to_features(batch)
            losses.append(self.train_step(features, latlon))
            samples += int(latlon.shape[0])
            if self.env.is_main and self.config.log_every and self.step % self.config.log_every == 0:
                log.info("epoch %d step %d loss %.4f lr %.2e scale %.2f queue %d", epoch, self.step, losses[-1],
                         self.optimizer.param_groups[0]["lr"], float(self.heads.logit_scale.detach().exp()), len(self.queue))
            if self.config.max_steps is not None and self.step >= self.config.max_steps:
                break
        total_loss = all_reduce_sum(float(np.sum(losses)), self.device)
        total_steps = all_reduce_sum(float(len(losses)), self.device)
        record = {
            "epoch": epoch,
            "step": self.step,
            "loss": total_loss / total_steps if total_steps else float("nan"),
            "lr": self.optimizer.param_groups[0]["lr"],
            "logit_scale": float(self.heads.logit_scale.detach().exp()),
            "samples": int(all_reduce_sum(float(samples), self.device)),
            "skipped_images": int(all_reduce_sum(float(self.skipped.total), self.device)),
            "seconds": round(time.perf_counter() - started, 2),
        }
        self.scheduler.step()  # StepLR: gamma once per epoch
        return record

    def run(self) -> list[dict[str, Any]]:
        """Train for the configured epochs (or --max-steps); returns the per-epoch records."""
        records = []
        try:
            if self.env.is_main:
                log.info("heads: %s; sigmas %s; device %s; world %d", self.init_description,
                         list(self.heads.location_encoder.sigmas), self.device, self.env.world)
            while self.epoch < self.config.epochs:
                record = self.train_epoch(self.epoch)
                self.epoch += 1
                if self.config.val_features and self.env.is_main:
                    record["validation"] = self.validate()
                records.append(record)
                if self.env.is_main:
                    log.info("epoch %s", json.dumps(record))
                    self.save(record)
                barrier()
                if self.config.max_steps is not None and self.step >= self.config.max_steps:
                    break
        finally:
            shutdown_distributed()
        return records

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, chunk: int = 8192) -> dict[str, Any]:
        """Top-1 retrieval over a gallery (default: GeoCLIP's 100K) for held-out pre-computed features."""
        store = FeatureStore(self.config.val_features)
        gallery = Gallery.from_csv(self.config.val_gallery) if self.config.val_gallery else Gallery.default()
        self.heads.eval()
        coords = torch.from_numpy(gallery.coords).to(self.device)
        locations = torch.cat([torch.nn.functional.normalize(self.heads.location_encoder(c), dim=-1)
                               for c in coords.split(chunk)])
        predictions = []
        for start in range(0, len(store), 1024):
            features, _ = store.gather(np.arange(start, min(start + 1024, len(store))))
            image = torch.nn.functional.normalize(self.heads.image_head(torch.from_numpy(features).to(self.device)), dim=-1)
            predictions.append((image @ locations.T).argmax(dim=1).cpu().numpy())
        best = gallery.coords[np.concatenate(predictions)] if predictions else np.zeros((0, 2))
        summary = error_summary(best, store.coords)
        return {"n": summary["n"], "median_km": summary["median_km"],
                "accuracy": {str(int(k)): v for k, v in summary["accuracy"].items()}}

    # ------------------------------------------------------------------ checkpoints
    def save(self, record: dict[str, Any]) -> Path:
        """Rank 0: heads checkpoint (geoapp format) for this epoch + heads-last.safetensors + the full training state."""
        extra = {"trainer": "training.train_geoclip", "epoch": self.epoch, "step": self.step,
                 "init": self.init_description, "config": asdict(self.config),
                 "record": json.loads(json.dumps(record))}
        path = self.out / f"heads-epoch{self.epoch:03d}.safetensors"
        save_heads_checkpoint(self.heads, path, extra)  # duck-typed: GeoCLIPHeads has GeoCLIP's head attributes
        shutil.copyfile(path, self.out / "heads-last.safetensors")
        state = {"heads": self.heads.state_dict(), "sigmas": list(self.heads.location_encoder.sigmas),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "queue": self.queue.state_dict(), "epoch": self.epoch, "step": self.step}
        atomic_write(self.out / STATE_NAME, lambda handle: torch.save(state, handle), durable=True)
        with open(self.out / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        return path

    def _load_state(self) -> None:
        path = self.out / STATE_NAME
        if not path.is_file():
            log.info("no %s in %s: starting from scratch", STATE_NAME, self.out)
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        if tuple(state["sigmas"]) != self.heads.location_encoder.sigmas:
            raise ValueError(f"{path} was trained with sigmas {state['sigmas']}; "
                             f"this run has {list(self.heads.location_encoder.sigmas)} (check --fine-branch)")
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.queue.load_state_dict(state["queue"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        if self.env.is_main:
            log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.step)


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(out="")
    p = argparse.ArgumentParser(prog="python -m training.train_geoclip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--features", help="folder written by `python -m training.features` (fast path)")
    data.add_argument("--csv", help="dataset CSV (train from photos, with augmented views)")
    data.add_argument("--shards", help="folder of .tar shards or a glob (train from photos)")
    p.add_argument("--images", help="image folder for --csv")
    p.add_argument("--layout", default=d.layout, help="CSV layout (see training.data)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, state, log")
    p.add_argument("--backbone", default=d.backbone, choices=sorted(BACKBONES), help="frozen backbone for photo input")
    p.add_argument("--backbone-weights", default=None, help="default OpenAI CLIP; 'random' for tests; or a path")
    p.add_argument("--init", default=d.init,
                   help="'random' (train from scratch, as the paper), 'pretrained' (fine-tune GeoCLIP's heads) "
                        "or a heads checkpoint path")
    p.add_argument("--fine-branch", action="store_true", help="add a sigma=2^12 Fourier branch (street level)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch (split over ranks)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--gamma", type=float, default=d.gamma, help="StepLR decay per epoch")
    p.add_argument("--queue-size", type=int, default=d.queue_size)
    p.add_argument("--gps-noise-m", type=float, default=d.gps_noise_m,
                   help="std of the Gaussian GPS noise in metres on the ground, per axis (0: none)")
    p.add_argument("--aug-min-scale", type=float, default=d.aug_min_scale, help="RandomResizedCrop minimum area")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes per rank")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default cuda:LOCAL_RANK if available)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--resume", action="store_true", help=f"continue from --out/{STATE_NAME}")
    p.add_argument("--val-features", help="held-out feature folder: top-1 accuracy after each epoch")
    p.add_argument("--val-gallery", help="gallery CSV for validation (default GeoCLIP's 100K)")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="bf16: autocast the MLPs (Fourier phases, similarities and loss stay float32)")
    p.add_argument("--batched-branches", action="store_true",
                   help="run the three location branches as batched matmuls (same values, fewer kernels)")
    p.add_argument("--compile", action="store_true", help="torch.compile the heads (GPU; needs a C++ compiler on CPU)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.csv and not args.images:
        print("error: --csv needs --images", file=sys.stderr)
        return 2
    if args.batch_size < 1 or args.epochs < 1 or args.queue_size < 0 or args.gps_noise_m < 0:
        print("error: --batch-size and --epochs must be positive, --queue-size and --gps-noise-m non-negative",
              file=sys.stderr)
        return 2
    config = TrainConfig(**vars(args))
    records = Trainer(config).run()
    if DistEnv.from_env().is_main:
        print(json.dumps({"out": config.out, "epochs": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
