"""Train and evaluate SatWorld on CPU: ``python -m training.satworld.train --seed 0``.

Steps: seeded location pool and splits -> frozen GeoCLIP location embeddings of the training
bank and the evaluation candidates (cached on disk) -> train the small ViT + image head with a
softmax over the training bank, on crops rendered on the fly with rotation/scale/colour
augmentation -> save float16 weights -> reload them and report the test (and val) table next to
the baselines (most common training location; random candidate points).

Deterministic for a given seed, thread count and machine: every random draw comes from a
generator seeded with (seed, purpose, step), and torch runs with deterministic algorithms.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geoapp.galleries.gallery import Gallery, LocationEmbeddingCache
from geoapp.geo.countries import get_country_index
from geoapp.geo.distance import latlon_to_unit_xyz
from geoapp.geo.metrics import error_summary
from geoapp.families.satworld.model import (ASSET_PATH, SatWorld, SatWorldConfig, load_satworld, pretrained_location_encoder,
                                    save_satworld)

from .render import EARTH_RADIUS_KM, Augmentation, augmented_batch, render_batch
from .splits import SplitConfig, Splits, make_splits, nearest_distance_km

log = logging.getLogger("training.satworld")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained model and its metrics."""

    seed: int = 0
    # One thread: on a shared 2-core machine OpenMP's spinning makes 2 threads 3x slower, and
    # single-threaded CPU kernels are the most reproducible.
    threads: int = 1
    steps: int = 800
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 40
    init_logit_scale: float = 3.0  # exp(3) = 20: between CLIP's initial 14 and GeoCLIP's learned 40
    window_km: float = 600.0
    bank_size: int = 16_000  # training locations (the softmax runs over all of them)
    held_out_candidates: int = 8_000  # gallery/land points in val/test cells, never a val/test location itself
    land_grid_deg: float = 2.0  # plus the centres of this land grid
    model: SatWorldConfig = field(default_factory=SatWorldConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: Augmentation = field(default_factory=Augmentation)


# A model small enough to train in well under a minute on 2 cores (CI test): it must still beat
# the most-common-location baseline.
TINY = TrainConfig(steps=200, batch_size=64, lr=3e-3, warmup_steps=20, bank_size=4000, held_out_candidates=2000,
                   land_grid_deg=4.0,
                   model=SatWorldConfig(image_size=32, patch_size=8, width=64, layers=2, heads=2, feature_dim=128),
                   split=SplitConfig(gallery_points=6000, land_points=2000, val_size=200, test_size=400))


def land_grid(step_deg: float) -> np.ndarray:
    """Cell centres of a regular lat/lon grid that fall on land, float32 [N, 2]."""
    lats = np.arange(-90 + step_deg / 2, 90, step_deg)
    lons = np.arange(-180 + step_deg / 2, 180, step_deg)
    grid_lat, grid_lon = (a.reshape(-1) for a in np.meshgrid(lats, lons, indexing="ij"))
    land = np.asarray(get_country_index().is_land(grid_lat, grid_lon), dtype=bool)
    return np.stack([grid_lat[land], grid_lon[land]], axis=1).astype(np.float32)


@dataclass
class Problem:
    """The data side of a run: splits, training bank, evaluation candidates and their embeddings."""

    splits: Splits
    bank: np.ndarray  # [N, 2] training locations
    bank_embeddings: torch.Tensor  # [N, 512] normalised, frozen
    candidates: np.ndarray  # [M, 2] evaluation candidates
    candidate_embeddings: torch.Tensor  # [M, 512] normalised


def encode_locations(encoder: torch.nn.Module, coords: np.ndarray, cache: LocationEmbeddingCache) -> torch.Tensor:
    """Normalised location embeddings, computed once per coordinate set and cached on disk."""

    def compute(values: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            chunks = [F.normalize(encoder(torch.from_numpy(chunk)), dim=-1) for chunk in np.array_split(
                values, max(1, math.ceil(len(values) / 8192)))]
        return torch.cat(chunks).numpy()

    return torch.from_numpy(np.array(cache.get(np.ascontiguousarray(coords, dtype=np.float32), compute), copy=True))


def build_problem(config: TrainConfig, gallery_coords: np.ndarray, encoder: torch.nn.Module, location_sha: str,
                  cache_dir: Path | None) -> Problem:
    splits = make_splits(gallery_coords, config.split)
    rng = np.random.default_rng([config.seed, 1])
    bank = splits.train
    if config.bank_size < len(bank):
        bank = bank[np.sort(rng.choice(len(bank), config.bank_size, replace=False))]
    # Evaluation candidates: the training bank, points of the held-out cells (coordinates only,
    # never a val/test location itself) and a land grid, so every part of the world has candidates.
    chosen = {tuple(p) for p in np.concatenate([splits.val, splits.test]).tolist()}
    held_out = splits.pool[splits.pool_split != 0]
    held_out = held_out[np.array([tuple(p) not in chosen for p in held_out.tolist()], dtype=bool)]
    if config.held_out_candidates < len(held_out):
        held_out = held_out[np.sort(rng.choice(len(held_out), config.held_out_candidates, replace=False))]
    extra = np.concatenate([held_out, land_grid(config.land_grid_deg)]).astype(np.float32)
    cache = LocationEmbeddingCache(cache_dir, f"satworld-location:{location_sha}")
    start = time.perf_counter()
    bank_embeddings = encode_locations(encoder, bank, cache)
    candidates = np.concatenate([bank, extra])
    candidate_embeddings = torch.cat([bank_embeddings, encode_locations(encoder, extra, cache)])
    log.info("location embeddings: %d bank + %d candidates in %.0f s", len(bank), len(candidates),
             time.perf_counter() - start)
    return Problem(splits, bank, bank_embeddings, candidates, candidate_embeddings)


def to_pixels(images: np.ndarray, model: SatWorld) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> normalised float [B, 3, H, W] with the model's mean/std."""
    cfg = model.backbone.spec.preprocess
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    return (pixels - mean) / std


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_model(config: TrainConfig, problem: Problem, encoder: torch.nn.Module,
                log_every: int = 50) -> SatWorld:
    """Train the image side against the frozen location embeddings of the bank."""
    torch.manual_seed(config.seed)
    model = SatWorld(config.model, encoder)
    with torch.no_grad():
        model.logit_scale.fill_(config.init_logit_scale)
    trainable = [p for name, p in model.named_parameters() if not name.startswith("location_encoder.")]
    # No weight decay on norms, biases, embeddings and the temperature (standard ViT practice).
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    model.train()
    bank_embeddings = problem.bank_embeddings
    start = time.perf_counter()
    running, counted = 0.0, 0
    for step in range(config.steps):
        rng = np.random.default_rng([config.seed, 2, step])
        index = rng.choice(len(problem.bank), config.batch_size, replace=False)
        coords = problem.bank[index].astype(np.float64)
        images = augmented_batch(coords[:, 0], coords[:, 1], config.window_km, config.model.image_size, rng,
                                 config.augment)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(config, step)
        image = F.normalize(model.encode_image(to_pixels(images, model)), dim=-1)
        scale = model.logit_scale.clamp(max=math.log(100.0)).exp()
        loss = F.cross_entropy(scale * image @ bank_embeddings.T, torch.from_numpy(index))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running, counted = running + loss.item(), counted + 1
        if (step + 1) % log_every == 0 or step + 1 == config.steps:
            elapsed = time.perf_counter() - start
            log.info("step %d/%d loss %.3f scale %.1f lr %.2e (%.0f s, %.1f img/s)", step + 1, config.steps,
                     running / counted, scale.item(), learning_rate(config, step), elapsed,
                     (step + 1) * config.batch_size / elapsed)
            running, counted = 0.0, 0
    model.eval()
    return model


def eval_images(config: TrainConfig, coords: np.ndarray) -> np.ndarray:
    """The fixed evaluation crops: north up, nominal window, no colour change."""
    return render_batch(coords[:, 0], coords[:, 1], config.window_km, config.model.image_size)


@torch.inference_mode()
def predict(model: SatWorld, images: np.ndarray, candidates: np.ndarray, candidate_embeddings: torch.Tensor,
            batch: int = 256) -> np.ndarray:
    """Top-1 candidate for each image, [N, 2]."""
    best = []
    for start in range(0, len(images), batch):
        embeddings = F.normalize(model.encode_image(to_pixels(images[start:start + batch], model)), dim=-1)
        best.append((embeddings @ candidate_embeddings.T).argmax(dim=1).numpy())
    return candidates[np.concatenate(best)] if best else np.zeros((0, 2), np.float32)


def most_common_location(train: np.ndarray, seed: int, radius_km: float = 25.0, probes: int = 5000) -> np.ndarray:
    """The training location with the most training locations within ``radius_km`` (a density mode)."""
    rng = np.random.default_rng([seed, 3])
    probe = train[np.sort(rng.choice(len(train), min(probes, len(train)), replace=False))]
    xyz = torch.from_numpy(latlon_to_unit_xyz(train[:, 0], train[:, 1]).astype(np.float32))
    probe_xyz = torch.from_numpy(latlon_to_unit_xyz(probe[:, 0], probe[:, 1]).astype(np.float32))
    threshold = math.cos(radius_km / EARTH_RADIUS_KM)
    counts = torch.cat([(chunk @ xyz.T >= threshold).sum(dim=1) for chunk in probe_xyz.split(1024)])
    return probe[int(counts.argmax())]


def summarise(pred: np.ndarray, truth: np.ndarray) -> dict:
    summary = error_summary(pred, truth)
    summary["accuracy"] = {f"{int(k)}": v for k, v in summary["accuracy"].items()}
    return summary


def evaluate(config: TrainConfig, model: SatWorld, problem: Problem) -> dict:
    """Test and val tables for the model and both baselines."""
    mode = most_common_location(problem.splits.train, config.seed)
    results: dict = {"most_common_location": [float(v) for v in mode]}
    for name, truth in (("test", problem.splits.test), ("val", problem.splits.val)):
        pred = predict(model, eval_images(config, truth), problem.candidates, problem.candidate_embeddings)
        rng = np.random.default_rng([config.seed, 4, len(name)])
        random_pred = problem.candidates[rng.integers(0, len(problem.candidates), len(truth))]
        results[name] = {
            "satworld": summarise(pred, truth),
            "baseline_most_common": summarise(np.repeat(mode[None], len(truth), axis=0), truth),
            "baseline_random_candidate": summarise(random_pred, truth),
        }
    return results


def markdown_table(split_results: dict) -> str:
    rows = ["| model | n | acc@1 km | acc@25 km | acc@200 km | acc@750 km | acc@2500 km | median km | GeoGuessr |",
            "|---|---|---|---|---|---|---|---|---|"]
    names = {"satworld": "**SatWorld**", "baseline_most_common": "most common training location",
             "baseline_random_candidate": "random candidate point"}
    for key, label in names.items():
        r = split_results[key]
        acc = r["accuracy"]
        rows.append(f"| {label} | {r['n']} | " + " | ".join(f"{acc[t]:.1f}" for t in ("1", "25", "200", "750", "2500"))
                    + f" | {r['median_km']:.0f} | {r['geoguessr_score']:.0f} |")
    return "\n".join(rows)


def configure_torch(config: TrainConfig) -> None:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True)


def run(config: TrainConfig, out: Path, cache_dir: Path | None = None, gallery_coords: np.ndarray | None = None) -> dict:
    """Train, save, reload (float16 round trip) and evaluate; returns the metrics (also written as JSON)."""
    configure_torch(config)
    started = time.perf_counter()
    encoder, location_sha = pretrained_location_encoder()
    encoder.requires_grad_(False)
    coords = Gallery.default().coords if gallery_coords is None else gallery_coords
    problem = build_problem(config, coords, encoder, location_sha, cache_dir)
    log.info("splits: %d train, %d val, %d test locations; bank %d; candidates %d", len(problem.splits.train),
             len(problem.splits.val), len(problem.splits.test), len(problem.bank), len(problem.candidates))
    trained = train_model(config, problem, encoder)
    train_seconds = time.perf_counter() - started
    save_satworld(trained, out, location_sha, extra={"config": asdict(config)})
    # Evaluate what was shipped: the float16 file, loaded the way the app loads it.
    model, identity = load_satworld(out)
    metrics = evaluate(config, model, problem)
    metrics.update({"config": asdict(config), "train_seconds": round(train_seconds, 1),
                    "total_seconds": round(time.perf_counter() - started, 1), "model_sha256": identity.heads_sha256,
                    "torch": torch.__version__, "threads": config.threads,
                    "min_test_to_train_km": float(nearest_distance_km(problem.splits.test, problem.splits.train).min())})
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=("full", "tiny"), default="full")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (results may depend on it)")
    parser.add_argument("--out", type=Path, default=ASSET_PATH)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "geoapp" / "satworld",
                        help="location-embedding cache (speed only; results do not depend on it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = TrainConfig() if args.preset == "full" else TINY
    config = replace(config, seed=args.seed, threads=args.threads, split=replace(config.split, seed=args.seed),
                     steps=args.steps if args.steps is not None else config.steps)
    metrics = run(config, args.out, args.cache_dir)
    print(f"\nSatWorld test split (seed {config.seed}; trained in {metrics['train_seconds']:.0f} s):")
    print(markdown_table(metrics["test"]))
    print(f"\nval split:\n{markdown_table(metrics['val'])}")
    print(f"\nmodel: {args.out} ({args.out.stat().st_size / 1e6:.1f} MB); metrics: {args.out.with_suffix('.metrics.json')}")


if __name__ == "__main__":
    main()
