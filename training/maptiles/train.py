"""Train map-tile encoders: ``python -m training.maptiles.train [--preset crossview-small] --out runs/maptiles``.

The paper's procedure (§3.2, §4.2), per zoom level from the **finest to the coarsest**: the finest
level starts from the encoder's own last blocks, each coarser one from the level trained just
before it; only that level's last two blocks (+ its final norm, projection and logit scale) train;
the positive of a photo is the tile holding its location, the other tiles of the batch are the
negatives (distinct tiles only: at coarse zooms many photos share a tile), cross-entropy over
softmax(scale · cosine). Adam, lr 1e-4, batch 64, 5 epochs by default. The frozen photo encoder's
features and the frozen trunk's tokens of every tile are computed once.

Presets trained from scratch (``crossview-small``: no CLIP weights here) first *pretrain* the whole
tower contrastively on the same pairs (all levels mixed), standing in for CLIP's pretraining; then
the tower is frozen and the paper's level training runs unchanged.

Runs under ``torchrun`` (each rank draws its own part of the batch; gradients are averaged).
Writes ``OUT/model.pt`` (what the app loads with --checkpoint), ``OUT/state.pt`` (resume: the
same command continues where it stopped), ``OUT/manifest.json`` (config, stage order, timings,
metrics) and ``OUT/metrics.md`` (the evaluation table).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from geoapp.families.maptiles.model import CheckpointMeta, MapTileModel, clip_vit_b32_tower, preset, save_checkpoint
from geoapp.models.preprocess import centre_crop_tensor
from training.distributed import DistEnv, init_distributed, pick_device, shutdown_distributed
from training.maptiles.data import LevelTiles, read_level, render_queries, splits

log = logging.getLogger("training.maptiles")
PRETRAINED_PRESETS = ("clip-vit-b32",)  # the paper: CLIP ViT-B/32 with OpenAI weights, no pretraining stage here


@dataclass
class TrainConfig:
    preset: str = "crossview-small"
    zooms: tuple[int, ...] = (1, 3, 5)
    tiles: str = "offline"  # tile source of the map side (any name `tiles` accepts)
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
    extra: dict = field(default_factory=dict)

    @property
    def from_scratch(self) -> bool:
        return self.preset not in PRETRAINED_PRESETS


def level_order(zooms: tuple[int, ...]) -> list[tuple[int, int | None]]:
    """(zoom, the zoom it starts from) finest first; None = the tower's own blocks."""
    ordered = sorted(zooms, reverse=True)
    return [(zoom, ordered[i - 1] if i else None) for i, zoom in enumerate(ordered)]


def stages(config: TrainConfig) -> list[str]:
    pretrain = config.from_scratch and config.pretrain_steps > 0
    return (["pretrain"] if pretrain else []) + [f"level-{z}" for z, _ in level_order(config.zooms)]


class Problem:
    """Locations, query renderings and every level's tiles, ready as tensors."""

    def __init__(self, config: TrainConfig, model_config, gallery: np.ndarray) -> None:
        from geoapp.tiles.registry import open_source

        size = model_config.image_size
        self.test_queries: np.ndarray | None = None  # photos: their crops; renderings: made at evaluation
        if config.photos:
            train_coords, self.train_queries, self.test, self.test_queries = _photo_split(config, size)
        else:
            self.splits = splits(gallery, config.gallery_points, config.land_points, config.seed, config.test_size)
            train_coords, self.train_queries, self.test = self.splits.train, None, self.splits.test
        with open_source(config.tiles, build_missing=True) as source:
            if source.info.max_zoom < max(config.zooms):
                raise ValueError(f"tile source {config.tiles!r} stops at zoom {source.info.max_zoom}; build it to zoom "
                                 f"{max(config.zooms)}: `python -m geoapp tiles build-offline --max-zoom "
                                 f"{max(config.zooms)}`")
            self.levels: dict[int, LevelTiles] = {z: read_level(source, z, size) for z in config.zooms}
            self.tile_source = config.tiles  # the name as given ("offline"), not where it is on this machine
        prep = model_config.preprocess()
        from PIL import Image

        self.tile_pixels = {z: torch.cat([centre_crop_tensor(Image.fromarray(p), prep) for p in lv.pixels])
                            for z, lv in self.levels.items()}
        keep = np.ones(len(train_coords), bool)
        for lv in self.levels.values():
            keep &= lv.available[lv.index_of(train_coords)]
        self.train = train_coords[keep]
        if self.train_queries is None:
            self.train_queries = render_queries(self.train, config.window_km, size, config.raster)
        else:
            self.train_queries = self.train_queries[keep]
        self.mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(prep.std).view(1, 3, 1, 1)
        self.rows = {z: lv.index_of(self.train) for z, lv in self.levels.items()}

    def query_pixels(self, images: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        return (pixels - self.mean) / self.std


def _photo_split(config: TrainConfig, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train coords, train crops, test coords, test crops) from a photo dataset, split by ``holdout``."""
    from training.data import DatasetSpec, read_records
    from training.maptiles.data import photo_queries

    csv = Path(config.photos)
    records = read_records(DatasetSpec(csv, Path(config.photo_root) if config.photo_root else csv.parent),
                           require_images=True)
    crops, ok = photo_queries(records.paths, size)
    if (~ok).any():
        log.warning("%d of %d photos could not be read and are left out", int((~ok).sum()), len(ok))
    coords, crops = records.coords[ok], crops[ok]
    if len(coords) < 4:
        raise ValueError(f"{csv}: only {len(coords)} readable photos with GPS; a map-tile model needs more")
    order = np.random.default_rng(config.seed).permutation(len(coords))
    held = max(1, round(config.holdout * len(coords)))
    test, train = np.sort(order[:held]), np.sort(order[held:])
    return coords[train], crops[train], coords[test], crops[test]


def _average_gradients(parameters) -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()


def _contrastive(query: torch.Tensor, tiles: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale * F.normalize(query, dim=-1) @ F.normalize(tiles, dim=-1).T
    return F.cross_entropy(logits, target)


def _batch(problem: Problem, zoom: int, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo indices, distinct tile rows, each photo's index among them)."""
    index = rng.integers(0, len(problem.train), size)
    unique, target = np.unique(problem.rows[zoom][index], return_inverse=True)
    return index, unique, target


class Trainer:
    def __init__(self, config: TrainConfig, problem: Problem, model: MapTileModel, out: Path, env: DistEnv,
                 device: torch.device) -> None:
        self.config, self.problem, self.model, self.out, self.env, self.device = config, problem, model, out, env, device
        self.history: list[dict] = []
        self.done: list[str] = []

    # ------------------------------------------------------------------ resume
    def _save_state(self, stage: str, step: int, optimizer: torch.optim.Optimizer | None) -> None:
        if not self.env.is_main:
            return
        state = {"stage": stage, "step": step, "done": self.done, "history": self.history,
                 "model": self.model.state_dict(), "optim": None if optimizer is None else optimizer.state_dict()}
        tmp = self.out / "state.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out / "state.pt")

    def resume(self) -> dict | None:
        path = self.out / "state.pt"
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.done, self.history = list(state["done"]), list(state["history"])
        log.info("resuming: done %s, in %s at step %d", self.done, state["stage"], state["step"])
        return state

    # ------------------------------------------------------------------ stages
    def run(self) -> None:
        state = self.resume()
        for stage in stages(self.config):
            if stage in self.done:
                continue
            start_step = state["step"] if state and state["stage"] == stage else 0
            optim_state = state["optim"] if state and state["stage"] == stage else None
            began = time.perf_counter()
            if stage == "pretrain":
                self.pretrain(start_step, optim_state)
            else:
                self.train_level(int(stage.split("-")[1]), start_step, optim_state)
            self.done.append(stage)
            self.history.append({"stage": stage, "seconds": round(time.perf_counter() - began, 1)})
            self._save_state(stage, -1, None)
            state = None

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
        for step in range(start, cfg.pretrain_steps):
            zoom = cfg.zooms[step % len(cfg.zooms)]
            rng = np.random.default_rng([cfg.seed, 0, step, self.env.rank])
            index, unique, target = _batch(problem, zoom, rng, cfg.batch_size // self.env.world)
            query = model.encode_photo(problem.query_pixels(problem.train_queries[index]).to(self.device))
            tiles = model.tower(problem.tile_pixels[zoom][unique].to(self.device))
            loss = _contrastive(query, tiles, torch.from_numpy(target).to(self.device), scale)
            optimizer.zero_grad()
            loss.backward()
            _average_gradients(params)
            optimizer.step()
            if step % 100 == 0:
                log.info("pretrain step %d/%d loss %.3f", step, cfg.pretrain_steps, loss.item())
            if (step + 1) % cfg.save_every == 0:
                self._save_state("pretrain", step + 1, optimizer)
        model.freeze_tower(True)
        model.eval()

    @torch.no_grad()
    def photo_features(self) -> torch.Tensor:
        self.model.eval()
        chunks = [self.model.encode_photo(self.problem.query_pixels(self.problem.train_queries[i:i + 256])
                                          .to(self.device)) for i in range(0, len(self.problem.train), 256)]
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    @torch.no_grad()
    def trunk(self, zoom: int) -> torch.Tensor:
        pixels = self.problem.tile_pixels[zoom]
        return torch.cat([self.model.trunk_tokens(pixels[i:i + 256].to(self.device)) for i in range(0, len(pixels), 256)])

    def train_level(self, zoom: int, start: int, optim_state: dict | None) -> None:
        cfg, model = self.config, self.model
        origin = dict(level_order(cfg.zooms))[zoom]
        if start == 0:  # a resumed stage already has its (partly trained) weights
            if origin is None:
                model.init_level_from_tower(zoom)
            else:
                model.copy_level(origin, zoom)
        photos, tokens = self.photo_features(), self.trunk(zoom)
        params = model.trainable_parameters(zoom)
        optimizer = torch.optim.Adam(params, lr=cfg.lr)
        if optim_state:
            optimizer.load_state_dict(optim_state)
        steps = max(1, int(round(cfg.epochs * len(self.problem.train) / cfg.batch_size)))
        model.head(zoom).train()
        for step in range(start, steps):
            rng = np.random.default_rng([cfg.seed, zoom + 1, step, self.env.rank])
            index, unique, target = _batch(self.problem, zoom, rng, cfg.batch_size // self.env.world)
            tiles = model.encode_from_trunk(tokens[torch.from_numpy(unique)], zoom)
            loss = _contrastive(photos[torch.from_numpy(index)], tiles, torch.from_numpy(target).to(self.device),
                                model.logit_scale(zoom))
            optimizer.zero_grad()
            loss.backward()
            _average_gradients(params)
            optimizer.step()
            if step % 200 == 0:
                log.info("level %d (from %s) step %d/%d loss %.3f", zoom, origin or "tower", step, steps, loss.item())
            if (step + 1) % cfg.save_every == 0:
                self._save_state(f"level-{zoom}", step + 1, optimizer)
        model.eval()


def train(config: TrainConfig, out: Path, gallery: np.ndarray | None = None) -> dict:
    """Train (or resume), write model.pt + manifest.json + metrics.md; returns the manifest."""
    from geoapp.galleries.gallery import Gallery
    from training.maptiles.evaluate import evaluate, markdown_table

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
    problem = Problem(config, model_config, Gallery.default().coords if gallery is None else gallery)
    log.info("%d training locations, %d test; zooms %s", len(problem.train), len(problem.test), config.zooms)
    trainer = Trainer(config, problem, model, out, env, device)
    trainer.run()
    manifest: dict = {}
    if env.is_main:
        train_seconds = time.perf_counter() - started
        metrics = evaluate(config, model, problem)
        demo = config.from_scratch and not config.photos
        meta = CheckpointMeta(preset=config.preset, zooms=tuple(config.zooms), crossview_demo=demo,
                              description="offline cross-view demonstration: shaded-relief renderings -> Blue Marble "
                                          "tiles (NASA rasters), trained from scratch" if demo else
                                          f"ground-level photos of {Path(config.photos).name} -> {config.tiles} tiles"
                                          if config.photos else f"{config.preset} map encoders",
                              training={"tile_source": problem.tile_source, "config": asdict(config),
                                        "train_locations": int(len(problem.train)), "metrics": metrics["summary"]})
        path = save_checkpoint(model, out / "model.pt", meta, include_tower="pretrain" in stages(config),
                               half=config.from_scratch)
        manifest = {"checkpoint": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "config": asdict(config), "stage_order": stages(config), "level_order": level_order(config.zooms),
                    "history": trainer.history, "train_seconds": round(train_seconds, 1),
                    "train_locations": int(len(problem.train)), "test_locations": int(len(problem.test)),
                    "tile_source": problem.tile_source, "torch": torch.__version__, "metrics": metrics}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (out / "metrics.md").write_text(markdown_table(metrics) + "\n")
    shutdown_distributed()
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default=defaults.preset)
    parser.add_argument("--zooms", default=",".join(map(str, defaults.zooms)))
    parser.add_argument("--tiles", default=defaults.tiles)
    for name in ("window_km", "lr", "pretrain_lr", "epochs"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    for name in ("gallery_points", "land_points", "test_size", "seed", "batch_size", "pretrain_steps", "save_every",
                 "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--device", default=None)
    parser.add_argument("--photos", default=None,
                        help="train on ground-level photos with GPS (the paper's setting): a dataset CSV (MP-16, Im2GPS, "
                             "YFCC or path,lat,lon); default: the offline cross-view renderings")
    parser.add_argument("--photo-root", default=None, help="folder the CSV's image names are relative to (default: "
                                                           "the CSV's folder)")
    parser.add_argument("--holdout", type=float, default=defaults.holdout, help="share of photos kept for evaluation")
    parser.add_argument("--backbone-weights", default=defaults.backbone_weights,
                        help="clip-vit-b32: 'pretrained' (python -m geoapp weights download vit-b-32) or a path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = replace(defaults, **{k: v for k, v in vars(args).items() if k not in ("out", "zooms")},
                     zooms=tuple(int(z) for z in args.zooms.split(",")))
    manifest = train(config, args.out)
    if manifest:
        print((args.out / "metrics.md").read_text())


if __name__ == "__main__":
    main()
