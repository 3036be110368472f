"""Pre-compute frozen CLIP image features: ``python -m training.features``.

The CLIP backbone is frozen in GeoCLIP, so its 768-d features can be computed once and the
heads trained on them many times over (the "fast path" of :mod:`training.train_geoclip`).

Work is cut into units (``--unit-size`` CSV rows, or one unit per input ``.tar`` shard).
Units are independent and resumable: a finished unit (its ``.done.json`` exists) is skipped,
so an interrupted run is simply started again. Under ``torchrun`` each rank takes the units
``i`` with ``i % WORLD_SIZE == RANK`` (no process group: ranks share only the folder); the
rank that completes the last unit writes the combined ``index.csv``.

Examples::

    python -m training.features --csv mp16.csv --images /data/mp16 --out feats/mp16
    torchrun --nproc_per_node 8 -m training.features --shards '/data/mp16-shards/*.tar' --out feats/mp16
    python -m training.features --csv ../shared/data/im2gps3k-dev/ground_truth.csv \\
        --images ../shared/data/im2gps3k-dev --out /tmp/feats --backbone tiny-test --backbone-weights random
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from geoapp.fileio import atomic_write
from geoapp.models.backbones import BACKBONES, ClipBackbone, build_clip_backbone
from geoapp.models.geoclip import state_digest
from geoapp.models.preprocess import centre_crop_tensor

from training.data import DatasetSpec, GeoRecords, ImageDataset, SkipCounter, collate_samples, read_records
from training.distributed import DistEnv, pick_device
from training.feature_store import FEATURES_FORMAT, INDEX_NAME, MANIFEST_NAME, read_manifest, unit_paths
from training.shards import ShardImageDataset, list_shards

log = logging.getLogger("training.features")


@dataclass(frozen=True)
class WorkUnit:
    """A slice of the input: CSV rows [start, stop) or one shard file."""

    index: int
    rows: range | None = None
    shard: Path | None = None

    @property
    def name(self) -> str:
        return f"features-{self.index:06d}"


def plan_units(records: GeoRecords | None, shards: Sequence[Path], unit_size: int) -> list[WorkUnit]:
    """Cut the input into units (deterministic: every rank computes the same plan)."""
    if records is not None:
        return [WorkUnit(i, rows=range(start, min(start + unit_size, len(records))))
                for i, start in enumerate(range(0, len(records), unit_size))]
    return [WorkUnit(i, shard=Path(s)) for i, s in enumerate(shards)]


def build_backbone(name: str, weights: str | None, seed: int) -> tuple[ClipBackbone, dict[str, Any]]:
    """The frozen backbone and the identity recorded in the manifest (a digest of its actual weights)."""
    spec = BACKBONES[name]
    requested = "pretrained" if weights in (None, "pretrained", "openai") else weights
    # Seeded so that random weights (tests, smoke runs) are the same in every process and every resume.
    backbone, description = build_clip_backbone(spec, requested, random_seed=seed)
    identity = {
        "model": "clip-image-features",
        "backbone": spec.name,
        "backbone_weights": description,
        "backbone_sha256": state_digest(backbone),
        "random_weights": requested == "random",
        "feature_dim": backbone.embed_dim,
        "dtype": "float16",
        "crop": f"centre {spec.preprocess.image_size}px, {spec.preprocess.interpolation} resize",
        "mean": list(spec.preprocess.mean),
        "std": list(spec.preprocess.std),
    }
    return backbone, identity


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def ensure_manifest(out: Path, identity: dict[str, Any], source: dict[str, Any], units: list[WorkUnit]) -> dict[str, Any]:
    """Write the manifest, or check that an existing one describes the same model, input and plan."""
    manifest = {
        "format": FEATURES_FORMAT,
        "identity": identity,
        "source": source,
        "units": [{"name": u.name, "rows": len(u.rows) if u.rows is not None else None,
                   "shard": str(u.shard) if u.shard is not None else None} for u in units],
    }
    path = out / MANIFEST_NAME
    if path.is_file():
        existing = read_manifest(out)
        for key in ("identity", "source", "units"):
            if existing.get(key) != manifest[key]:
                raise ValueError(f"{out} already holds features of a different {key} "
                                 f"(see {path}); use a new --out folder, or delete it to start over")
        return existing
    _atomic_write_text(path, json.dumps({**manifest, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))
    return manifest


def _unit_dataset(unit: WorkUnit, records: GeoRecords | None, transform: Callable) -> Dataset | IterableDataset:
    if unit.rows is not None and records is not None:
        return ImageDataset(records.subset(unit.rows), transform)
    return ShardImageDataset([unit.shard], transform)


@torch.inference_mode()
def extract_unit(unit: WorkUnit, records: GeoRecords | None, backbone: ClipBackbone, out: Path,
                 device: torch.device, batch_size: int = 64, workers: int = 2,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Compute, then atomically write, one unit's features and index; returns its done record."""
    cfg = backbone.spec.preprocess
    dataset = _unit_dataset(unit, records, lambda image: centre_crop_tensor(image, cfg)[0])
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_samples,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    started = time.perf_counter()
    skipped = SkipCounter()
    chunks: list[np.ndarray] = []
    index_rows: list[tuple[int, str, float, float]] = []
    for batch in loader:
        for failure in batch.failures:
            skipped.add(failure.key, failure.error or "unreadable")
        if batch.latlon.shape[0]:
            pixels = batch.pixels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                features = backbone.encode_image(pixels)
            chunks.append(features.float().cpu().numpy().astype(np.float16))
            for position, key, (lat, lon) in zip(batch.indices, batch.keys, batch.coords):
                row = unit.rows[position] if unit.rows is not None else position
                index_rows.append((row, key, lat, lon))
        if progress:
            progress(len(batch.indices) + len(batch.failures))
    features = np.concatenate(chunks) if chunks else np.zeros((0, backbone.embed_dim), dtype=np.float16)
    frame = pd.DataFrame(index_rows, columns=["row", "id", "lat", "lon"])
    return write_feature_unit(out, unit.name, features, frame, skipped, time.perf_counter() - started)


def write_feature_unit(out: Path, name: str, features: np.ndarray, index: pd.DataFrame,
                       skipped: SkipCounter | None = None, seconds: float = 0.0) -> dict[str, Any]:
    """Write one unit: float16 ``.npy``, index CSV (row,id,lat,lon), then the done marker; returns the marker."""
    if len(index) != features.shape[0]:
        raise ValueError(f"{len(index)} index rows for {features.shape[0]} feature rows")
    paths = unit_paths(out, name)
    # Data files first, each renamed into place; the done marker last (see feature_store).
    atomic_write(paths["features"], lambda handle: np.save(handle, np.ascontiguousarray(features, dtype=np.float16)))
    _atomic_write_text(paths["index"], index.to_csv(index=False, float_format="%.6f"))
    done = {"unit": name, "features": int(features.shape[0]),
            "skipped": (skipped or SkipCounter()).to_dict(), "seconds": round(seconds, 2)}
    _atomic_write_text(paths["done"], json.dumps(done, indent=2))
    return done


def write_feature_store(out: Path, features: np.ndarray, coords: np.ndarray, ids: Sequence[str] | None = None,
                        identity: dict[str, Any] | None = None, unit_size: int = 10_000) -> dict[str, Any]:
    """Write ready-made features [N, D] and coordinates [N, 2] as a complete feature folder.

    For synthetic data (tests, toy problems) and for features computed elsewhere; the folder
    reads back with :class:`training.feature_store.FeatureStore` like any other.
    """
    n = features.shape[0]
    ids = list(ids) if ids is not None else [str(i) for i in range(n)]
    identity = identity or {"model": "synthetic", "backbone": "none", "backbone_weights": "none",
                            "backbone_sha256": "", "random_weights": True, "feature_dim": int(features.shape[1]),
                            "dtype": "float16"}
    units = [WorkUnit(i, rows=range(start, min(start + unit_size, n))) for i, start in enumerate(range(0, n, unit_size))]
    out.mkdir(parents=True, exist_ok=True)
    manifest = ensure_manifest(out, identity, {"synthetic": True, "rows": n}, units)
    for unit in units:
        index = pd.DataFrame({"row": list(unit.rows), "id": [ids[r] for r in unit.rows],
                              "lat": coords[unit.rows.start:unit.rows.stop, 0],
                              "lon": coords[unit.rows.start:unit.rows.stop, 1]})
        write_feature_unit(out, unit.name, features[unit.rows.start:unit.rows.stop], index)
    write_combined_index(out, manifest)
    return manifest


def write_combined_index(out: Path, manifest: dict[str, Any]) -> int:
    """Concatenate the unit indexes into ``index.csv`` (unit, row, id, lat, lon); returns the row count."""
    frames = []
    for unit in manifest["units"]:
        frame = pd.read_csv(unit_paths(out, unit["name"])["index"], dtype={"id": str}, keep_default_na=False)
        frame.insert(0, "unit", unit["name"])
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["unit", "row", "id", "lat", "lon"])
    _atomic_write_text(out / INDEX_NAME, combined.to_csv(index=False, float_format="%.6f"))
    return len(combined)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Extract every unfinished unit assigned to this rank; returns a summary.

    No process group is needed: ranks share nothing but the output folder. Every rank writes
    (or checks) the same manifest atomically, and whichever rank finds all units done writes
    ``index.csv``. A rank that finishes early just exits instead of waiting in a collective
    that could time out while slower ranks are still extracting.
    """
    env = DistEnv.from_env()
    device = pick_device(env, args.device)
    records: GeoRecords | None = None
    shards: list[Path] = []
    if args.csv:
        spec = DatasetSpec(Path(args.csv), Path(args.images) if args.images else None, args.layout)
        records = read_records(spec, require_images=True)
        if args.limit:
            records = records.head(args.limit)
        source = {"csv": str(Path(args.csv).resolve()), "images": str(Path(args.images).resolve()),
                  "layout": args.layout, "limit": args.limit, "skipped_rows": records.skipped_rows}
    else:
        shards = list_shards(args.shards)
        source = {"shards": [str(s.resolve()) for s in shards]}
    units = plan_units(records, shards, args.unit_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backbone, identity = build_backbone(args.backbone, args.backbone_weights, args.seed)
    backbone = backbone.to(device).eval()
    manifest = ensure_manifest(out, identity, source, units)
    if identity["random_weights"] and env.is_main:
        log.warning("RANDOM BACKBONE WEIGHTS: these features are for tests only and are meaningless")

    mine = [u for u in units if u.index % env.world == env.rank]
    todo = [u for u in mine if not unit_paths(out, u.name)["done"].is_file()]
    bar = None
    if env.is_main and not args.quiet:
        from tqdm import tqdm

        total = sum(len(u.rows) for u in todo if u.rows is not None) or None
        bar = tqdm(total=total, unit="img", desc=f"features rank {env.rank}/{env.world}")
    done_records = [extract_unit(unit, records, backbone, out, device, args.batch_size, args.workers,
                                 progress=bar.update if bar is not None else None) for unit in todo]
    if bar is not None:
        bar.close()
    complete = all(unit_paths(out, u["name"])["done"].is_file() for u in manifest["units"])
    rows = write_combined_index(out, manifest) if complete else None
    return {
        "out": str(out),
        "rank": env.rank,
        "world": env.world,
        "device": str(device),
        "units_total": len(units),
        "units_mine": len(mine),
        "units_done_now": len(done_records),
        "units_resumed": len(mine) - len(todo),
        "features_now": sum(d["features"] for d in done_records),
        "skipped_now": sum(d["skipped"]["total"] for d in done_records),
        "complete": complete,
        "index_rows": rows,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", help="dataset CSV (IMG_ID/IMG_FILE/path, LAT, LON, ...)")
    source.add_argument("--shards", help="folder of .tar shards or a glob pattern ('dir/*.tar')")
    parser.add_argument("--images", help="image folder the CSV's paths are relative to (with --csv)")
    parser.add_argument("--layout", default="auto", help="CSV layout: auto, mp16, geoclip, im2gps, im2gps3k, yfcc4k, yfcc26k, osv5m")
    parser.add_argument("--out", required=True, help="output folder (resumable: rerun the same command to finish)")
    parser.add_argument("--backbone", default="ViT-L-14", choices=sorted(BACKBONES))
    parser.add_argument("--backbone-weights", default=None,
                        help="default: the OpenAI CLIP weights; 'random' for tests; or an open_clip checkpoint path")
    parser.add_argument("--unit-size", type=int, default=10_000, help="CSV rows per feature unit (with --csv)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image-decoding processes")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N CSV rows")
    parser.add_argument("--seed", type=int, default=0, help="seed for random backbone weights")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.csv and not args.images:
        print("error: --csv needs --images (the folder the image paths are relative to)", file=sys.stderr)
        return 2
    if args.unit_size < 1 or args.batch_size < 1:
        print("error: --unit-size and --batch-size must be positive", file=sys.stderr)
        return 2
    summary = run(args)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
