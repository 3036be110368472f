"""Train TransLocator on geotagged photos: ``python -m training.translocator.train``.

Data: ``--csv`` (image id/path, LAT, LON, optional S3/S16/S365 scene labels) + ``--images``;
geocells from ``--cells DIR`` (``cells_{min}_{max}.csv``, e.g. ../shared/data/geocells or the
output of ``python -m training.partition``); segmentation maps precomputed (``--seg-maps DIR``)
or computed on the fly (``--segmenter NAME``). Paper defaults everywhere (see
:mod:`training.translocator.engine`); ``--model tiny`` is the small CPU architecture.
Runs unchanged under torchrun (DDP: gloo on CPU, nccl on GPU); ``--batch-size`` is global and
reached by gradient accumulation over ``--micro-batch`` images per rank and forward.
``--resume`` continues from ``OUT/train-state.pt``, mid-epoch included.

Examples::

    python -m training.partition --csv mp16_places365.csv --out cells         # or use ../shared/data/geocells
    torchrun --nproc_per_node 8 -m training.translocator.train --csv mp16_places365.csv \\
        --images /data/mp16 --seg-maps /data/mp16_seg --cells cells --out runs/translocator
    python -m training.translocator.train --csv small.csv --images imgs --cells cells --cells-min 5 \\
        --cells-max 400 200 100 --segmenter tiny-test --segmenter-weights random --model tiny --out runs/t
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from geoapp.geo.geocells import DEFAULT_MAX_COUNTS, DEFAULT_MIN_COUNT, GeocellError, GeocellHierarchy
from geoapp.families.translocator.network import TransLocatorConfig, build_translocator
from geoapp.models.weights import WeightsMissingError

from training.data import LAYOUTS, DatasetError, DatasetSpec, SkipCounter, read_records
from training.distributed import DistEnv, all_reduce_sum, init_distributed, pick_device, shutdown_distributed

from .augment import PairedAugmentation
from .data import ModelBatch, TransLocatorImageDataset, collate_translocator, label_records, to_model_batch
from .engine import OptimConfig, TransLocatorTrainer

log = logging.getLogger("training.translocator")


@dataclass
class RunConfig:
    """Data, model and bookkeeping options of a run (optimisation: :class:`OptimConfig`)."""

    out: str
    csv: str
    images: str
    cells: str
    layout: str = "auto"
    cells_min: int = DEFAULT_MIN_COUNT
    cells_max: tuple[int, int, int] = DEFAULT_MAX_COUNTS
    seg_maps: str | None = None
    segmenter: str | None = None
    segmenter_weights: str | None = None
    model: str = "paper"  # or "tiny"
    vit_mt: bool = False  # the single-branch RGB ablation
    init: str | None = None  # None: in21k for "paper", random for "tiny"; "random"; or a checkpoint path
    image_size: int | None = None  # override the architecture's input size
    seed: int = 0
    workers: int = 4
    device: str | None = None
    max_steps: int | None = None
    log_every: int = 50
    save_every: int | None = None  # also checkpoint every N optimiser steps (long epochs)
    resume: bool = False
    optim: OptimConfig = field(default_factory=OptimConfig)


class EpochSampler(Sampler[int]):
    """This rank's share of a seeded permutation per epoch; ``skip`` drops what a resumed run already saw."""

    def __init__(self, size: int, rank: int, world: int, seed: int, epoch: int = 0, skip: int = 0) -> None:
        self.size, self.rank, self.world, self.seed, self.epoch, self.skip = size, rank, world, seed, epoch, skip

    def _indices(self) -> list[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 7919 + self.epoch))
        padded = order.tolist()
        padded += padded[: (-len(padded)) % self.world]  # equal shares: every rank runs the same steps
        return padded[self.rank::self.world][self.skip:]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return max(0, -(-self.size // self.world) - self.skip)


def model_config(run: RunConfig, cell_counts: tuple[int, int, int]) -> TransLocatorConfig:
    overrides = {"cell_counts": cell_counts, "dual_branch": not run.vit_mt}
    if run.image_size:
        overrides["img_size"] = run.image_size
    if run.model == "tiny":
        return TransLocatorConfig.tiny(**overrides)
    if run.model != "paper":
        raise ValueError(f"--model must be paper or tiny, not {run.model!r}")
    return TransLocatorConfig(**overrides)


def train(run: RunConfig) -> list[dict]:
    """The whole run; returns the per-epoch records (rank 0 also writes them to OUT)."""
    env = DistEnv.from_env()
    device = pick_device(env, run.device)
    init_distributed(env, device)
    try:
        return _train(run, env, device)
    finally:
        shutdown_distributed()


def _train(run: RunConfig, env: DistEnv, device: torch.device) -> list[dict]:
    records = read_records(DatasetSpec(Path(run.csv), Path(run.images), run.layout), require_images=True)
    cells = GeocellHierarchy.from_folder(run.cells, run.cells_min, tuple(run.cells_max))
    data = label_records(records, cells)
    if len(data) == 0:
        raise DatasetError(f"{run.csv}: no row lies in any geocell of {run.cells}")
    config = model_config(run, cells.sizes)
    torch.manual_seed(run.seed)  # identical initialisation on every rank (DDP also broadcasts rank 0's)
    init = run.init or ("in21k" if run.model == "paper" else "random")
    model = build_translocator(config, init)
    segmenter = None
    if config.dual_branch and run.seg_maps is None:
        if not run.segmenter:
            raise DatasetError("the dual-branch model needs segmentation maps: --seg-maps DIR or --segmenter NAME")
        from geoapp.families.translocator.segmentation import load_segmenter

        segmenter = load_segmenter(run.segmenter, run.segmenter_weights, device)
        if segmenter.random_weights and env.is_main:
            log.warning("RANDOM SEGMENTER WEIGHTS: the segmentation branch sees meaningless maps (tests only)")
    optim = run.optim
    aug = PairedAugmentation.for_crop(config.img_size)
    dataset = TransLocatorImageDataset(data, aug, Path(run.seg_maps) if run.seg_maps else None, "train", run.seed)
    per_rank = -(-len(data) // env.world)
    steps_per_epoch = (per_rank // optim.micro_batch) // optim.accumulation(env.world)
    if steps_per_epoch < 1:
        raise DatasetError(f"{len(data)} images are fewer than one optimiser step ({optim.batch_size} images)")
    trainer = TransLocatorTrainer(model, cells, optim, device, env, Path(run.out), steps_per_epoch,
                                  _run_dict(run))
    if run.resume:
        trainer.resume()
    if env.is_main:
        log.info("%d images in %d/%d/%d geocells (%d outside every cell dropped); %s, init %s; device %s, world %d; "
                 "%d optimiser steps per epoch, %d micro-batches of %d per step and rank", len(data), *cells.sizes,
                 data.dropped_outside_cells, "ViT-MT" if run.vit_mt else "TransLocator", init, device, env.world,
                 steps_per_epoch, trainer.accumulation, optim.micro_batch)
    skipped = SkipCounter()
    history = []
    while trainer.epoch < optim.epochs:
        dataset.set_epoch(trainer.epoch)
        sampler = EpochSampler(len(data), env.rank, env.world, run.seed, trainer.epoch,
                               skip=trainer.batches_done * optim.micro_batch)
        loader = DataLoader(dataset, batch_size=optim.micro_batch, sampler=sampler, num_workers=run.workers,
                            collate_fn=collate_translocator, drop_last=True, pin_memory=device.type == "cuda")
        record = trainer.run_epoch(_model_batches(loader, config.dual_branch, device, segmenter, skipped),
                                   run.max_steps, run.log_every, run.save_every)
        record["skipped_images"] = int(all_reduce_sum(float(skipped.total), device))
        trainer.finish_epoch(record)
        history.append(record)
        if env.is_main:
            log.info("epoch %s", json.dumps(record))
        if run.max_steps is not None and trainer.step >= run.max_steps:
            break
    return history


def _model_batches(loader: DataLoader, dual_branch: bool, device: torch.device, segmenter,
                   skipped: SkipCounter) -> Iterator[ModelBatch]:
    for batch in loader:
        for failure in batch.failures:
            skipped.add(failure.key, failure.error or "unreadable")
        # Even a micro-batch whose images all failed goes through (as an empty batch): every rank
        # must run the same number of forwards, or DDP's all-reduce would wait forever.
        yield to_model_batch(batch, dual_branch, device, segmenter)


def _run_dict(run: RunConfig) -> dict:
    return json.loads(json.dumps(asdict(run), default=str))


def build_parser() -> argparse.ArgumentParser:
    d, o = RunConfig(out="", csv="", images="", cells=""), OptimConfig()
    p = argparse.ArgumentParser(prog="python -m training.translocator.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--layout", default=d.layout, choices=sorted(LAYOUTS))
    p.add_argument("--cells", required=True, help="folder with cells_{min}_{max}.csv (coarse, middle, fine)")
    p.add_argument("--cells-min", type=int, default=d.cells_min)
    p.add_argument("--cells-max", type=int, nargs=3, default=list(d.cells_max), metavar=("COARSE", "MIDDLE", "FINE"))
    maps = p.add_mutually_exclusive_group()
    maps.add_argument("--seg-maps", default=None, help="folder of precomputed segmentation PNGs (<id>.png)")
    maps.add_argument("--segmenter", default=None, help="segment on the fly (e.g. segformer-ade20k, tiny-test)")
    p.add_argument("--segmenter-weights", default=None, help="default: the segmenter's cached weights; 'random'; a path")
    p.add_argument("--model", default=d.model, choices=("paper", "tiny"))
    p.add_argument("--vit-mt", action="store_true", help="single-branch RGB ablation (no segmentation input)")
    p.add_argument("--init", default=None, help="in21k (paper default), random (tiny default) or a checkpoint path")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=o.epochs)
    p.add_argument("--batch-size", type=int, default=o.batch_size, help="global batch per optimiser step")
    p.add_argument("--micro-batch", type=int, default=o.micro_batch, help="images per forward and rank")
    p.add_argument("--lr", type=float, default=o.lr)
    p.add_argument("--momentum", type=float, default=o.momentum)
    p.add_argument("--weight-decay", type=float, default=o.weight_decay)
    p.add_argument("--warmup-steps", type=int, default=o.warmup_steps)
    p.add_argument("--milestones", type=int, nargs="*", default=list(o.milestones), help="epochs where lr *= --lr-gamma")
    p.add_argument("--lr-gamma", type=float, default=o.lr_gamma)
    p.add_argument("--alpha", type=float, default=o.alpha, help="middle-cell loss weight")
    p.add_argument("--beta", type=float, default=o.beta, help="fine-cell loss weight")
    p.add_argument("--gamma", type=float, default=o.gamma, help="scene loss weight")
    p.add_argument("--label-smoothing", type=float, default=o.label_smoothing)
    p.add_argument("--precision", default=o.precision, choices=("auto", "bf16", "fp32"))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--device", default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--save-every", type=int, default=None, help="checkpoint every N optimiser steps too")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train-state.pt")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    optim = OptimConfig(epochs=args.epochs, batch_size=args.batch_size, micro_batch=args.micro_batch, lr=args.lr,
                        momentum=args.momentum, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
                        milestones=tuple(args.milestones), lr_gamma=args.lr_gamma, alpha=args.alpha, beta=args.beta,
                        gamma=args.gamma, label_smoothing=args.label_smoothing, precision=args.precision)
    return RunConfig(out=args.out, csv=args.csv, images=args.images, cells=args.cells, layout=args.layout,
                     cells_min=args.cells_min, cells_max=tuple(args.cells_max), seg_maps=args.seg_maps,
                     segmenter=args.segmenter, segmenter_weights=args.segmenter_weights, model=args.model,
                     vit_mt=args.vit_mt, init=args.init, image_size=args.image_size, seed=args.seed,
                     workers=args.workers, device=args.device, max_steps=args.max_steps, log_every=args.log_every,
                     save_every=args.save_every, resume=args.resume, optim=optim)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        run = config_from_args(args)
        run.optim.accumulation(DistEnv.from_env().world)  # a bad batch split fails before anything loads
        history = train(run)
    except (DatasetError, GeocellError, WeightsMissingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if DistEnv.from_env().is_main:
        print(json.dumps({"out": run.out, "epochs": history}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
