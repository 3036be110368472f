"""GeoCLIP training throughput on pre-computed CLIP features: our trainer versus the reference modules.

One optimiser step = image head on B pre-computed 768-d features, location encoder on the B batch
GPS + the Q queue GPS, scaled cosine similarities, cross-entropy, backward, Adam. Defaults are the
paper's (B = 512, Q = 4096). Compared in the same process, on the same device:

* reference: the `geoclip` package's ``LocationEncoder`` and its image MLP (768 -> 768 -> 512),
  doing the step of its ``train.py`` (concatenate batch and queue GPS, forward, loss, step);
* ours, as configured by ``training.train_geoclip.Trainer`` (the real ``train_step``, queue full):
  float32 or bf16 autocast, the branches one after the other or batched; + torch.compile (GPU, or
  ``--compile`` on a CPU with a C++ compiler).

    python benchmarks/bench_train_step.py [--device cpu|cuda] [--steps N] [--batch 512] [--queue 4096] [--json OUT]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _common import bench_parser, emit, load_average, machine, pick_device, sync

if TYPE_CHECKING:  # torch is imported where it is used, so that --help stays light
    import torch


def random_batch(batch: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    g = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, 768, generator=g)
    latlon = torch.stack([torch.rand(batch, generator=g) * 180 - 90, torch.rand(batch, generator=g) * 360 - 180], 1)
    return features.to(device), latlon.to(device)


def reference_step_fn(device: torch.device, queue_size: int):
    """The reference package's modules and step (geoclip/train/train.py), on features instead of pixels."""
    import torch
    import torch.nn.functional as F
    from geoclip.model.location_encoder import LocationEncoder as ReferenceLocationEncoder
    from torch import nn

    location_encoder = ReferenceLocationEncoder(from_pretrained=False).to(device)
    mlp = nn.Sequential(nn.Linear(768, 768), nn.ReLU(), nn.Linear(768, 512)).to(device)
    logit_scale = nn.Parameter(torch.ones([], device=device) * torch.log(torch.tensor(1 / 0.07)))
    params = [*location_encoder.parameters(), *mlp.parameters(), logit_scale]
    optimizer = torch.optim.Adam(params, lr=3e-5, weight_decay=1e-6)
    _, queue = random_batch(queue_size, device, seed=99)

    def step(features: torch.Tensor, gps: torch.Tensor) -> float:
        optimizer.zero_grad()
        gps_all = torch.cat([gps, queue], dim=0)
        image = F.normalize(mlp(features), dim=1)
        location = F.normalize(location_encoder(gps_all), dim=1)
        logits = logit_scale.exp() * (image @ location.t())
        loss = F.cross_entropy(logits, torch.arange(features.shape[0], device=device))
        loss.backward()
        optimizer.step()
        return loss

    return step


def our_step_fn(device: torch.device, queue_size: int, out: str, **options):
    from training.train_geoclip import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(out=out, features="(benchmark)", init="random", queue_size=queue_size,
                                  device=str(device), workers=0, **options))
    _, queue = random_batch(queue_size, device, seed=99)
    trainer.queue.enqueue(queue)
    return trainer.train_step


def measure(step, batch: int, device: torch.device, steps: int, warmup: int) -> dict:
    batches = [random_batch(batch, device, seed) for seed in range(4)]
    for i in range(warmup):
        step(*batches[i % 4])
    sync(device)
    times = []
    for i in range(steps):
        sync(device)
        start = time.perf_counter()
        step(*batches[i % 4])
        sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"median_step_ms": median * 1000, "min_step_ms": min(times) * 1000,
            "samples_per_s": batch / median, "steps": steps}


def main() -> None:
    parser = bench_parser(__doc__, default_device="auto")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 5 CPU, 50 GPU)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--queue", type=int, default=4096)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on CPU (GPU: always)")
    args = parser.parse_args()

    import torch

    device = pick_device(args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (50 if cuda else 5)
    warmup = 10 if cuda else 1
    torch.manual_seed(0)

    variants = {
        "ours_fp32_branch_loop": {"precision": "fp32", "batched_branches": False},
        "ours_fp32_batched": {"precision": "fp32", "batched_branches": True},
        "ours_bf16_branch_loop": {"precision": "bf16", "batched_branches": False},
        "ours_bf16_batched": {"precision": "bf16", "batched_branches": True},
    }
    if cuda or args.compile:
        variants["ours_bf16_batched_compiled"] = {"precision": "bf16", "batched_branches": True, "compile": True}

    results: dict = {"machine": machine(str(device)), "device": str(device), "batch": args.batch,
                     "queue": args.queue}
    results["reference"] = measure(reference_step_fn(device, args.queue), args.batch, device, steps, warmup)
    print(f"reference: {results['reference']['samples_per_s']:,.0f} samples/s", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for name, options in variants.items():
            step = our_step_fn(device, args.queue, str(Path(out) / name), **options)
            results[name] = measure(step, args.batch, device, steps, warmup + (3 if options.get("compile") else 0))
            results[name]["speedup_vs_reference"] = results[name]["samples_per_s"] / results["reference"]["samples_per_s"]
            print(f"{name}: {results[name]['samples_per_s']:,.0f} samples/s "
                  f"({results[name]['speedup_vs_reference']:.2f}x the reference)", flush=True)
            del step
    results["load_average_end"] = load_average()
    emit(results, args.json)


if __name__ == "__main__":
    main()
