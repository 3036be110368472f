"""TransLocator speed: (a) training throughput of the full model, (b) whole-pipeline inference latency.

(a) Training: the paper's architecture (two ViT-B/16 at 224 px, MFF, attentive fusion, heads for
    3298 / 7202 / 12893 cells and 3 / 16 / 365 scenes), random weights, one optimiser step per
    micro-batch through :class:`training.translocator.engine.TransLocatorTrainer` (forward,
    label-smoothed loss, backward, SGD) on synthetic inputs: images/s of the model alone, data
    loading excluded. bf16 autocast on CUDA (fp32 on CPU); ``--compile`` wraps the model in
    ``torch.compile``; ``--fused`` uses the fused CUDA SGD kernel.
(b) Inference: ``TransLocatorGeolocator.predict`` on a real photo: decode, crops, SegFormer-B2
    segmentation of every crop, colourising, the dual-branch forward, softmax over the fine cells,
    Prediction (place names included) — single centre crop and TenCrop. Random weights (flagged):
    latency does not depend on weight values.

    python benchmarks/bench_translocator.py [--device cpu|cuda] [--train-batch N] [--train-steps N]
        [--compile] [--fused] [--runs N] [--skip-train | --skip-predict] [--json OUT]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _common import REPO, bench_parser, emit, load_average, machine, pick_device, sync, time_calls

if TYPE_CHECKING:  # torch is imported where it is used, so that --help stays light
    import torch

DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "im2gps3k-dev" / "1008845063_ace4ef829f_1204_97522422@N00.jpg"


def bench_training(device: torch.device, batch: int, steps: int, compile_model: bool, fused: bool) -> dict:
    import torch

    from geoapp.geo.geocells import GeocellHierarchy, GeocellPartition
    from geoapp.families.translocator.network import TransLocatorConfig, build_translocator
    from training.translocator.loss import TransLocatorTargets
    from training.distributed import DistEnv
    from training.translocator.data import ModelBatch
    from training.translocator.engine import OptimConfig, TransLocatorTrainer

    config = TransLocatorConfig()
    # Placeholder cells of the right sizes (the trainer checks sizes; values do not matter for speed).
    def placeholder(count: int) -> GeocellPartition:
        from geoapp.geo.s2cells import id_to_token, latlon_to_leaf_ids

        leaves = latlon_to_leaf_ids(torch.linspace(-80, 80, count).numpy(), torch.linspace(-179, 179, count).numpy())
        return GeocellPartition([id_to_token(c) for c in leaves], torch.zeros(count).numpy(),
                                torch.zeros(count).numpy(), torch.ones(count, dtype=torch.long).numpy())

    cells = GeocellHierarchy.from_partitions(*(placeholder(n) for n in config.cell_counts))
    torch.manual_seed(0)
    model = build_translocator(config, "random").to(device)
    optim = OptimConfig(batch_size=batch, micro_batch=batch, warmup_steps=0)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = TransLocatorTrainer(model, cells, optim, device, DistEnv(), Path(scratch), steps_per_epoch=10_000)
        if fused and device.type == "cuda":
            trainer.optimizer = torch.optim.SGD(trainer.optimizer.param_groups, lr=optim.lr, momentum=optim.momentum,
                                                fused=True)
            trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda step: 1.0)
        if compile_model:
            trainer.ddp = torch.compile(model)
        generator = torch.Generator(device="cpu").manual_seed(0)
        rgb = torch.randn(batch, 3, 224, 224, generator=generator).to(device)
        seg = torch.randn(batch, 3, 224, 224, generator=generator).to(device)
        labels = [torch.randint(0, n, (batch,), generator=generator).to(device) for n in config.cell_counts]
        scenes = [torch.randint(0, n, (batch,), generator=generator).to(device) for n in config.scene_counts]
        micro = ModelBatch(rgb, seg, TransLocatorTargets(tuple(labels), tuple(scenes)), batch)
        started = time.perf_counter()
        trainer.optimiser_step([micro])  # warm-up (and compilation)
        sync(device)
        warmup = time.perf_counter() - started
        times = time_calls(lambda: trainer.optimiser_step([micro]), steps, device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = None
    step_ms = statistics.median(times)
    return {"batch": batch, "steps": steps, "step_ms_median": round(step_ms, 1), "step_ms_all": [round(t, 1) for t in times],
            "images_per_second": round(batch / (step_ms / 1000), 2), "warmup_s": round(warmup, 1),
            "precision": "bf16 autocast" if trainer.autocast_dtype is not None else "fp32",
            "compile": compile_model, "fused_sgd": fused and device.type == "cuda",
            "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "peak_memory_gib": None if peak is None else round(peak, 2)}


def bench_predict(device: torch.device, image: Path, runs: int) -> dict:
    from geoapp.families.translocator.segmentation import load_segmenter
    from geoapp.families.translocator.locator import TransLocatorGeolocator

    started = time.perf_counter()
    locator = TransLocatorGeolocator.load(device=str(device), backbone_weights="random",
                                          segmenter=load_segmenter("segformer-ade20k", "random", device))
    load_s = time.perf_counter() - started
    result: dict = {"load_s": round(load_s, 1), "random_weights": locator.random_weights,
                    "fine_cells": len(locator.cells.fine), "segmenter": "segformer-ade20k (SegFormer-B2, random)"}
    for name, tencrop in (("single", False), ("tencrop", True)):
        prediction = locator.predict(str(image), tencrop=tencrop)  # warm-up
        assert prediction.warnings, "random weights must be flagged"
        times = time_calls(lambda: locator.predict(str(image), tencrop=tencrop), runs, device)
        result[name] = {"median_ms": round(statistics.median(times), 1), "all_ms": [round(t, 1) for t in times],
                        "stage_ms_first_call": {k: round(v, 1) for k, v in prediction.timings_ms.items()}}
    return result


def main() -> None:
    parser = bench_parser(__doc__, default_device="auto")
    parser.add_argument("--train-batch", type=int, default=None, help="images per step (default 2 on CPU, 64 on GPU)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed steps (default 3 on CPU, 20 on GPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    parser.add_argument("--fused", action="store_true", help="fused CUDA SGD")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--runs", type=int, default=None, help="timed predictions (default 3 on CPU, 20 on GPU)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-predict", action="store_true")
    args = parser.parse_args()
    device = pick_device(args.device)  # imports torch, so that machine() records its version and threads
    gpu = device.type == "cuda"
    results: dict = {"machine": machine(str(device)), "device": str(device)}
    if not args.skip_train:
        results["training"] = bench_training(device, args.train_batch or (64 if gpu else 2),
                                             args.train_steps or (20 if gpu else 3), args.compile, args.fused)
        t = results["training"]
        print(f"training (full TransLocator, {t['parameters_millions']} M parameters, {t['precision']}, batch {t['batch']}): "
              f"{t['images_per_second']} images/s ({t['step_ms_median']} ms/step)", flush=True)
    if not args.skip_predict:
        results["predict"] = bench_predict(device, Path(args.image), args.runs or (20 if gpu else 3))
        p = results["predict"]
        print(f"predict (segmentation + TransLocator, random weights): single {p['single']['median_ms']} ms, "
              f"TenCrop {p['tencrop']['median_ms']} ms", flush=True)
    results["load_average_end"] = load_average()
    emit(results, args.json)


if __name__ == "__main__":
    main()
