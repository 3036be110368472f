"""Train map-tile encoders: ``python -m training.maptiles.train [--preset crossview-small] --out runs/maptiles``.

The paper's procedure (§3.2, §4.2), per zoom level from the **finest to the coarsest**: the finest
level starts from the encoder's own last blocks, each coarser one from the level trained just
before it; only that level's last two blocks (+ its final norm, projection and logit scale) train;
the positive of a photo is the tile holding its location, the other tiles of the batch are the
negatives (distinct tiles only: at coarse zooms many photos share a tile), cross-entropy over
softmax(scale · cosine). Adam, lr 1e-4, batch 64, 5 epochs by default. The frozen photo encoder's
features are computed once per level; tiles are **streamed**: each batch reads only its own tiles
from the tile source (:mod:`training.maptiles.stream`; a bounded prefetch queue keeps the CPU busy),
so memory is the same at zoom 4 and at zoom 16 and any tile source works, online ones included.

Presets trained from scratch (``crossview-small``: no CLIP weights here) first *pretrain* the whole
tower contrastively on the same pairs (all levels mixed), standing in for CLIP's pretraining; then
the tower is frozen and the paper's level training runs unchanged.

Runs under ``torchrun`` (each rank draws its own part of the batch; gradients are averaged).
Writes ``OUT/model.pt`` (what the app loads with --checkpoint), ``OUT/state.pt`` (resume: the
same command continues where it stopped, inside the stage it stopped in), ``OUT/manifest.json``
(config, stage order, timings, tile reads, metrics), ``OUT/metrics.md`` and ``OUT/results.md``
(the evaluation table with its caveats; :mod:`training.maptiles.evaluate`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import pickle
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from geoapp.families.maptiles.model import (
    CheckpointMeta,
    MapTileModel,
    clip_vit_b32_tower,
    preset,
    save_checkpoint,
)
from geoapp.fileio import atomic_write
from geoapp.tiles.base import TileSource
from training.distributed import DistEnv, init_distributed, pick_device, shutdown_distributed
from training.maptiles.data import Problem, query_tensor
from training.maptiles.stream import (
    Batch,
    StreamConfig,
    TileReader,
    make_batch,
    memory_mb,
    open_training_source,
    prefetched,
    reset_peak_memory,
)

log = logging.getLogger("training.maptiles")
PRETRAINED_PRESETS = ("clip-vit-b32",)  # the paper: CLIP ViT-B/32 with OpenAI weights, no pretraining stage here


@dataclass
class TrainConfig:
    preset: str = "crossview-small"
    zooms: tuple[int, ...] = (1, 3, 5)
    tiles: str = "offline"  # tile source of the map side (any name `tiles` accepts, or a loopback server URL)
    online: bool = False  # may an online tile source be used (its server sees the areas of the training data)?
    raster: str = "relief"  # query rendering
    window_km: float = 1500.0  # ground width of a query rendering
    gallery_points: int = 12_000
    land_points: int = 8_000
    test_size: int = 1000
    seed: int = 0
    batch_size: int = 64
    pretrain_steps: int = 2000  # from-scratch presets only (0: none)
    pretrain_lr: float = 3e-4
    epochs: float = 5.0  # per level (the paper)
    lr: float = 1e-4  # per level (the paper)
    save_every: int = 200
    threads: int = 1
    eval_k: tuple[int, ...] = (4, 16, 64)
    device: str | None = None
    backbone_weights: str = "pretrained"  # pretrained presets: "pretrained" (the weight file), a path, or "random"
    # Ground-level photos with GPS instead of the cross-view renderings (the paper's setting): a dataset CSV in
    # any layout training.data reads (MP-16, Im2GPS, YFCC, path,lat,lon ...) and the folder its images are in.
    photos: str | None = None
    photo_root: str | None = None
    holdout: float = 0.1  # share of the photos kept for the evaluation
    prefetch: int = 4  # batches of tiles read ahead (bounded queue)
    tile_workers: int = 2  # threads reading and decoding tiles
    tile_cache_mb: float = 64.0  # decoded tiles kept in memory (LRU, bounded whatever the zoom)
    extra: dict = field(default_factory=dict)

    @property
    def from_scratch(self) -> bool:
        return self.preset not in PRETRAINED_PRESETS

    @property
    def stream(self) -> StreamConfig:
        return StreamConfig(prefetch=self.prefetch, workers=self.tile_workers, cache_mb=self.tile_cache_mb)


def level_order(zooms: tuple[int, ...]) -> list[tuple[int, int | None]]:
    """(zoom, the zoom it starts from) finest first; None = the tower's own blocks."""
    ordered = sorted(zooms, reverse=True)
    return [(zoom, ordered[i - 1] if i else None) for i, zoom in enumerate(ordered)]


def stages(config: TrainConfig) -> list[str]:
    pretrain = config.from_scratch and config.pretrain_steps > 0
    return (["pretrain"] if pretrain else []) + [f"level-{z}" for z, _ in level_order(config.zooms)]


def batch_rng(config: TrainConfig, stage: str, step: int, rank: int) -> np.random.Generator:
    """The generator of one step's batch (the same on a resumed run; tests recompute batches with it)."""
    tag = 0 if stage == "pretrain" else int(stage.split("-")[1]) + 1
    return np.random.default_rng([config.seed, tag, step, rank])


def pretrain_zoom(config: TrainConfig, step: int) -> int:
    return config.zooms[step % len(config.zooms)]


def level_steps(config: TrainConfig, locations: int) -> int:
    return max(1, int(round(config.epochs * locations / config.batch_size)))


def _average_gradients(parameters) -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()


def _contrastive(query: torch.Tensor, tiles: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale * F.normalize(query, dim=-1) @ F.normalize(tiles, dim=-1).T
    return F.cross_entropy(logits, target)


def read_state(path: Path) -> dict:
    """A run's ``state.pt`` (weights, optimizer, progress), loaded weights-only: a state file cannot run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"{path} cannot be resumed from ({str(error).splitlines()[0][:200]}): it is damaged, or "
                         "holds more than tensors and plain data (refused); delete it to start over") from error


class Trainer:
    def __init__(self, config: TrainConfig, problem: Problem, model: MapTileModel, out: Path, env: DistEnv,
                 device: torch.device, source: TileSource) -> None:
        self.config, self.problem, self.model, self.out, self.env, self.device = config, problem, model, out, env, device
        self.reader = TileReader(source, model.config.image_size, config.tile_cache_mb)
        self.prep = model.config.preprocess()
        self.history: list[dict] = []
        self.done: list[str] = []

    # ------------------------------------------------------------------ resume
    def _save_state(self, stage: str, step: int, optimizer: torch.optim.Optimizer | None) -> None:
        if not self.env.is_main:
            return
        state = {"stage": stage, "step": step, "done": self.done, "history": self.history,
                 "model": self.model.state_dict(), "optim": None if optimizer is None else optimizer.state_dict()}
        atomic_write(self.out / "state.pt", lambda f: torch.save(state, f))

    def resume(self) -> dict | None:
        path = self.out / "state.pt"
        if not path.is_file():
            return None
        state = read_state(path)
        self.model.load_state_dict(state["model"])
        self.done, self.history = list(state["done"]), list(state["history"])
        log.info("resuming: done %s, in %s at step %d", self.done, state["stage"], state["step"])
        return state

    # ------------------------------------------------------------------ stages
    def run(self, stop_after: str | None = None) -> bool:
        """Every stage not done yet; with ``stop_after``, return (state saved) once that stage is done.
        True when every stage is done."""
        state = self.resume()
        for stage in stages(self.config):
            if stage in self.done:
                if stage == stop_after:
                    break
                continue
            start_step = state["step"] if state and state["stage"] == stage else 0
            optim_state = state["optim"] if state and state["stage"] == stage else None
            began, reads_before = time.perf_counter(), self.reader.stats.read
            reset_peak_memory()
            at_start = memory_mb().get("rss_mb")
            if stage == "pretrain":
                self.pretrain(start_step, optim_state)
            else:
                self.train_level(int(stage.split("-")[1]), start_step, optim_state)
            self.done.append(stage)
            self.history.append({"stage": stage, "seconds": round(time.perf_counter() - began, 1),
                                 "tiles_read": self.reader.stats.read - reads_before,
                                 "peak_tile_cache_bytes": self.reader.stats.peak_held_bytes,
                                 "rss_mb_at_start": at_start, "peak_rss_mb": memory_mb().get("peak_rss_mb")})
            self._save_state(stage, -1, None)
            state = None
            if stage == stop_after:
                break
        return all(stage in self.done for stage in stages(self.config))

    def _batches(self, stage: str, start: int, steps: int, zoom_of) -> Iterator[Batch]:
        codes = {z: self.problem.tile_codes(z) for z in set(self.config.zooms)}
        size = self.config.batch_size // self.env.world

        def make(step: int) -> Batch:
            zoom = zoom_of(step)
            return make_batch(self.reader, codes[zoom], zoom, batch_rng(self.config, stage, step, self.env.rank),
                              size, step)

        stream = self.config.stream
        return prefetched(make, range(start, steps), stream.prefetch, stream.workers)

    def _step(self, optimizer: torch.optim.Optimizer, params: list, loss: torch.Tensor | None) -> None:
        """One update; ``loss`` None: every tile of this rank's batch was missing from the source (skipped, but
        under torchrun the rank still joins the gradient average with zero gradients so no rank waits)."""
        if loss is None and self.env.world == 1:
            return
        optimizer.zero_grad()
        (loss if loss is not None else sum((p * 0).sum() for p in params)).backward()
        _average_gradients(params)
        optimizer.step()

    def _tiles(self, batch: Batch) -> torch.Tensor:
        return query_tensor(batch.pixels, self.prep.mean, self.prep.std).to(self.device)

    def pretrain(self, start: int, optim_state: dict | None) -> None:
        """From-scratch presets: the whole tower, queries and tiles of every level, in-batch negatives."""
        cfg, model, problem = self.config, self.model, self.problem
        model.freeze_tower(False)
        params = list(model.tower.parameters())
        optimizer = torch.optim.Adam(params, lr=cfg.pretrain_lr)
        if optim_state:
            optimizer.load_state_dict(optim_state)
        scale = torch.tensor(1 / 0.07)
        model.train()
        for batch in self._batches("pretrain", start, cfg.pretrain_steps, lambda step: pretrain_zoom(cfg, step)):
            loss = None
            if len(batch.index):
                query = model.encode_photo(query_tensor(problem.train_queries[batch.index], self.prep.mean,
                                                        self.prep.std).to(self.device))
                loss = _contrastive(query, model.tower(self._tiles(batch)),
                                    torch.from_numpy(batch.target).to(self.device), scale)
            self._step(optimizer, params, loss)
            if loss is not None and batch.step % 100 == 0:
                log.info("pretrain step %d/%d loss %.3f (%d tiles read so far)", batch.step, cfg.pretrain_steps,
                         loss.item(), self.reader.stats.read)
            if (batch.step + 1) % cfg.save_every == 0:
                self._save_state("pretrain", batch.step + 1, optimizer)
        model.freeze_tower(True)
        model.eval()

    @torch.no_grad()
    def photo_features(self) -> torch.Tensor:
        self.model.eval()
        queries = self.problem.train_queries
        chunks = [self.model.encode_photo(query_tensor(queries[i:i + 256], self.prep.mean, self.prep.std)
                                          .to(self.device)) for i in range(0, len(queries), 256)]
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    def train_level(self, zoom: int, start: int, optim_state: dict | None) -> None:
        cfg, model = self.config, self.model
        origin = dict(level_order(cfg.zooms))[zoom]
        if start == 0:  # a resumed stage already has its (partly trained) weights
            if origin is None:
                model.init_level_from_tower(zoom)
            else:
                model.copy_level(origin, zoom)
        photos = self.photo_features()
        params = model.trainable_parameters(zoom)
        optimizer = torch.optim.Adam(params, lr=cfg.lr)
        if optim_state:
            optimizer.load_state_dict(optim_state)
        steps = level_steps(cfg, len(self.problem.train))
        model.head(zoom).train()
        for batch in self._batches(f"level-{zoom}", start, steps, lambda step: zoom):
            loss = None
            if len(batch.index):
                with torch.no_grad():  # the shared trunk is frozen: its tokens need no graph
                    tokens = model.trunk_tokens(self._tiles(batch))
                tiles = model.encode_from_trunk(tokens, zoom)
                loss = _contrastive(photos[torch.from_numpy(batch.index)], tiles,
                                    torch.from_numpy(batch.target).to(self.device), model.logit_scale(zoom))
            self._step(optimizer, params, loss)
            if loss is not None and batch.step % 200 == 0:
                log.info("level %d (from %s) step %d/%d loss %.3f (%d tiles read so far)", zoom, origin or "tower",
                         batch.step, steps, loss.item(), self.reader.stats.read)
            if (batch.step + 1) % cfg.save_every == 0:
                self._save_state(f"level-{zoom}", batch.step + 1, optimizer)
        model.eval()


def _check_source(config: TrainConfig, source: TileSource) -> None:
    if source.info.max_zoom < max(config.zooms):
        raise ValueError(f"tile source {config.tiles!r} stops at zoom {source.info.max_zoom}; build it to zoom "
                         f"{max(config.zooms)}: `python -m geoapp tiles build-offline --max-zoom {max(config.zooms)}`, "
                         "or serve deeper tiles (`python -m training.maptiles.tileserver`)")


def train(config: TrainConfig, out: Path, gallery: np.ndarray | None = None, *, source: TileSource | None = None,
          stop_after: str | None = None, evaluate_after: bool = True) -> dict:
    """Train (or resume), write model.pt + manifest.json + metrics.md + results.md; returns the manifest.

    ``source``: an open tile source to read (default: open ``config.tiles``); ``stop_after``: a stage name
    ("pretrain", "level-16" ...): stop once it is done (state saved; run again to continue; returns
    ``{"stopped_after": ...}``); ``evaluate_after=False``: write the model without the evaluation table."""
    from geoapp.galleries.gallery import Gallery
    from training.maptiles.evaluate import EvalConfig, evaluate, markdown_table, results_markdown

    if stop_after is not None and stop_after not in stages(config):
        raise ValueError(f"--stop-after {stop_after!r}: the stages are {', '.join(stages(config))}")
    torch.set_num_threads(config.threads)
    env = DistEnv.from_env()
    device = pick_device(env, config.device)
    init_distributed(env, device)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model_config = preset(config.preset)
    torch.manual_seed(config.seed)
    tower = None if config.from_scratch else clip_vit_b32_tower(config.backbone_weights)  # fails fast when missing
    model = MapTileModel(model_config, tuple(config.zooms), tower=tower).to(device)
    owned = source is None
    source = open_training_source(config.tiles, online=config.online) if owned else source
    try:
        _check_source(config, source)
        problem = Problem(config, model_config.image_size, Gallery.default().coords if gallery is None else gallery,
                          cache_dir=out)
        log.info("%d training locations, %d test; zooms %s; tiles streamed from %s", len(problem.train),
                 len(problem.test), config.zooms, source.info.title)
        trainer = Trainer(config, problem, model, out, env, device, source)
        if not trainer.run(stop_after):
            shutdown_distributed()
            return {"stopped_after": stop_after, "done": list(trainer.done), "tile_reads": trainer.reader.stats.to_dict()}
        manifest: dict = {}
        if env.is_main:
            train_seconds = time.perf_counter() - started
            metrics = None
            if evaluate_after:
                eval_config = EvalConfig(zooms=tuple(config.zooms), k=tuple(config.eval_k), seed=config.seed)
                metrics = evaluate(eval_config, model, problem.held_out(), source)
            demo = config.from_scratch and not config.photos
            summary = metrics["summary"] if metrics else {}
            meta = CheckpointMeta(preset=config.preset, zooms=tuple(config.zooms), crossview_demo=demo,
                                  description="offline cross-view demonstration: shaded-relief renderings -> Blue "
                                              "Marble tiles (NASA rasters), trained from scratch" if demo else
                                              f"ground-level photos of {Path(config.photos).name} -> {config.tiles} "
                                              "tiles" if config.photos else f"{config.preset} map encoders",
                                  training={"tile_source": config.tiles, "config": asdict(config),
                                            "train_locations": int(len(problem.train)), "metrics": summary})
            path = save_checkpoint(model, out / "model.pt", meta, include_tower="pretrain" in stages(config),
                                   half=config.from_scratch)
            manifest = {"checkpoint": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "config": asdict(config), "stage_order": stages(config),
                        "level_order": level_order(config.zooms), "history": trainer.history,
                        "train_seconds": round(train_seconds, 1), "train_locations": int(len(problem.train)),
                        "test_locations": int(len(problem.test)), "tile_source": config.tiles,
                        "tile_reads": trainer.reader.stats.to_dict(), "torch": torch.__version__, "metrics": metrics}
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            if metrics:
                (out / "metrics.md").write_text(markdown_table(metrics) + "\n")
                (out / "results.md").write_text(results_markdown(metrics, meta, source.info) + "\n")
    finally:
        if owned:
            source.close()
    shutdown_distributed()
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default=defaults.preset)
    parser.add_argument("--zooms", default=",".join(map(str, defaults.zooms)))
    parser.add_argument("--tiles", default=defaults.tiles,
                        help="tile source: offline (default), a .pmtiles/.mbtiles file, an online provider (with "
                             "--online), or this machine's tile server http://127.0.0.1:PORT/{z}/{x}/{y}.jpg "
                             "(python -m training.maptiles.tileserver)")
    parser.add_argument("--online", action="store_true",
                        help="allow an online tile source (its server sees which areas the training data covers)")
    for name in ("window_km", "lr", "pretrain_lr", "epochs", "tile_cache_mb"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    for name in ("gallery_points", "land_points", "test_size", "seed", "batch_size", "pretrain_steps", "save_every",
                 "threads", "prefetch", "tile_workers"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--eval-k", default=",".join(map(str, defaults.eval_k)), help="beam widths of the table")
    parser.add_argument("--device", default=None)
    parser.add_argument("--photos", default=None,
                        help="train on ground-level photos with GPS (the paper's setting): a dataset CSV (MP-16, Im2GPS, "
                             "YFCC or path,lat,lon); default: the offline cross-view renderings")
    parser.add_argument("--photo-root", default=None, help="folder the CSV's image names are relative to (default: "
                                                           "the CSV's folder)")
    parser.add_argument("--holdout", type=float, default=defaults.holdout, help="share of photos kept for evaluation")
    parser.add_argument("--backbone-weights", default=defaults.backbone_weights,
                        help="clip-vit-b32: 'pretrained' (python -m geoapp weights download vit-b-32) or a path")
    parser.add_argument("--stop-after", default=None, metavar="STAGE",
                        help="stop once this stage is done (pretrain, level-16 ...); the same command resumes")
    parser.add_argument("--no-eval", action="store_true",
                        help="write the model without the evaluation table (python -m training.maptiles.evaluate)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = replace(defaults, **{k: v for k, v in vars(args).items()
                                  if k not in ("out", "zooms", "eval_k", "stop_after", "no_eval")},
                     zooms=tuple(int(z) for z in args.zooms.split(",")),
                     eval_k=tuple(int(k) for k in args.eval_k.split(",")))
    manifest = train(config, args.out, stop_after=args.stop_after, evaluate_after=not args.no_eval)
    if manifest.get("stopped_after"):
        print(f"stopped after {manifest['stopped_after']} (done: {', '.join(manifest['done'])}); "
              "run the same command again to continue")
    elif manifest and (args.out / "results.md").is_file():
        print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
