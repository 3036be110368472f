"""``python -m training.regional build|reproduce``: a regional model from a folder of geotagged photos.

    python -m training.regional build PHOTOS/ --countries SE,CH --method cells-up --name my-area
    python -m training.regional build photos.csv --countries CH --method retrieval-rff --name zurich --backbone ViT-L-14
    python -m training.regional reproduce --out runs/sweden-or-switzerland

``build`` reads the photos (GPS from EXIF, or a CSV ``path,lat,lon``), lists what it skips (no GPS,
unreadable, outside the countries), computes frozen features (cached: a second build with another
method reuses them), splits the photos 80/10/10 (training / validation, for early stopping / test),
trains the method, measures it on the test part only, and writes ``<variants dir>/NAME/``
(checkpoint, thumbnails, manifest with the test metrics). The registry then offers it as
``regional:NAME`` in the CLI, the app and Cases. The backbone defaults to ``auto``: CLIP ViT-L/14
(GeoCLIP's) when its weights are here, else SatWorld's encoder with a warning (weak on ground-level
photos). Train only on photos you have the right to use.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from geoapp.families.regional.backbone import (
    AUTO,
    BACKBONE_NAMES,
    SATWORLD_ON_GROUND_PHOTOS,
    load_extractor,
    resolve_backbone,
)
from geoapp.families.regional.heads import SIGMA_PRESETS
from geoapp.families.regional.model import CHECKPOINT_NAME, References, save_model
from geoapp.families.variants import check_tag, variants_dir, write_manifest
from training.regional.features import collection_features
from training.regional.fit import BUILD_METHODS, METHODS, TrainConfig, TrainingSet, evaluate, fit, most_common_cell
from training.regional.metrics import Metrics
from training.regional.reproduce import add_arguments as add_reproduce_arguments
from training.regional.reproduce import run_cli as run_reproduce
from training.regional.sources import SourceError, parse_countries, read_source

log = logging.getLogger("training.regional")
GROUND = "ground-level photo"


@dataclass
class BuildResult:
    """What a build wrote and how well the model did on the held-out photos."""

    key: str  # registry key, "regional:NAME"
    folder: Path
    metrics: Metrics
    baseline: Metrics
    training_images: int
    heldout_images: int  # the test part (the metrics)
    cells: int | None
    skipped: dict
    validation_images: int = 0  # early stopping


def split_parts(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the training, validation and test parts (``fraction`` each for validation and test, from 10
    photos; a test part from 5)."""
    order = np.random.default_rng(seed).permutation(count)
    test = round(fraction * count) if count >= 5 else 0
    val = round(fraction * count) if count >= 10 else 0
    return np.sort(order[test + val:]), np.sort(order[test:test + val]), np.sort(order[:test])


def auto_cell_min(train_images: int) -> int:
    """n for the cells: the paper's 200 on big collections, fewer on small ones (about 10 cells or more)."""
    return int(min(200, max(3, train_images // 10)))


def build(source: str | Path, countries: str | list[str], method: str, name: str, *, backbone: str = AUTO,
          backbone_weights: str | None = None, config: TrainConfig | None = None, cell_min: int | None = None,
          holdout: float = 0.1, output_dir: Path | None = None, force: bool = False, progress: bool = True,
          overrides: dict | None = None, from_app: bool = False, paths_within: Path | None = None) -> BuildResult:
    """Build the variant ``regional:NAME`` (see the module docstring); ``from_app``: the log is for the app's
    Models tab (no command-line hints); ``paths_within``: an uploaded source's folder, CSV rows naming files
    outside it are refused (see training.regional.sources)."""
    check_tag(name)
    if method not in METHODS:
        raise SourceError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    codes = parse_countries(countries) if isinstance(countries, str) else list(countries)
    folder = (output_dir or variants_dir()) / name
    if folder.exists() and not force:
        hint = "choose another name" if from_app else "choose another --name or pass --force"
        raise SourceError(f"a model named {name!r} already exists; {hint}")
    records, report = read_source(source, codes, within=paths_within)
    for line in report.lines():
        print(line)
    config = config or TrainConfig()
    chosen = resolve_backbone(backbone)
    if backbone == AUTO:
        print(f"backbone: {chosen} (automatic: " + ("the CLIP ViT-L/14 weights are here)" if chosen != "satworld"
                                                    else "no CLIP ViT-L/14 weights on this machine)"))
    if chosen == "satworld":
        how = ("(the Models tab lists how to get them)" if from_app
               else "(python -m geoapp weights download)")
        print(f"warning: {SATWORLD_ON_GROUND_PHOTOS} {how}. Use SatWorld only for satellite or aerial imagery.")
    extractor = load_extractor(chosen, backbone_weights, config.device)
    computed = collection_features([r.path for r in records], extractor, progress=progress)
    records = [r for r, keep in zip(records, computed.keep) if keep]
    report.unreadable += computed.unreadable
    if len(records) < 2:
        raise SourceError(f"only {len(records)} usable photo(s) in {', '.join(codes)}: a model needs at least 2")
    print(f"{len(records)} photos in {', '.join(codes)} ({computed.cached} features from the cache)")
    data = TrainingSet(computed.features, np.array([[r.lat, r.lon] for r in records]),
                       np.array([r.country for r in records], dtype=np.int64), codes)
    train_idx, val_idx, test_idx = split_parts(len(data), holdout, config.seed)
    train, val, test = data.subset(train_idx), data.subset(val_idx), data.subset(test_idx)
    print(f"split: {len(train)} training, {len(val)} validation (early stopping), {len(test)} test photos "
          "(held out: the metrics below)" if len(val) else
          f"split: {len(train)} training, {len(test)} test photos (too few for a validation part: fixed epochs)")
    config = replace(config, cell_min=cell_min or auto_cell_min(len(train)))
    spec = replace(METHODS[method], **(overrides or {}))
    meta = {"backbone": {"name": extractor.name, "weights": extractor.weights,
                         "weights_path": backbone_weights if backbone_weights not in (None, "random") else None},
            "countries": codes, "training_domain": GROUND}
    result = fit(spec, train, config, meta, validation=val)
    metrics, baseline = evaluate(result.model, test), most_common_cell(train, test, config)
    model = result.model
    model.meta["metrics"] = metrics.to_dict()
    model.meta["baseline_most_common_cell"] = baseline.to_dict()
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "thumbs").mkdir(parents=True)
    thumbs = []
    for index, thumb in enumerate(computed.thumbnails):
        target = f"thumbs/{index:06d}.jpg"
        shutil.copyfile(thumb, folder / target)
        thumbs.append(target)
    normalised = data.features / np.maximum(np.linalg.norm(data.features, axis=1, keepdims=True), 1e-12)
    model.references = References(normalised.astype(np.float16), data.coords, [r.path.name for r in records], thumbs)
    save_model(model, folder / CHECKPOINT_NAME)
    cells = None if result.cells is None else len(result.cells)
    write_manifest(folder, "regional", name, CHECKPOINT_NAME,
                   label=f"Regional: {name} ({spec.name}, {', '.join(codes)})",
                   description=f"{spec.title} on {extractor.name} features, {len(train)} photos of {', '.join(codes)}",
                   extra={"method": spec.name, "countries": codes, "backbone": meta["backbone"], "cells": cells,
                          "training_images": len(train), "validation_images": len(val), "heldout_images": len(test),
                          "split": {"train": 1 - 2 * holdout, "validation": holdout, "test": holdout,
                                    "seed": config.seed},
                          "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                          "metrics": metrics.to_dict(), "baseline_most_common_cell": baseline.to_dict(),
                          "skipped": report.to_dict()})
    print(f"held-out test ({len(test)} photos): country {metrics.country:.1f} %, within 25 km "
          f"{metrics.within_km[25]:.1f} %, 200 km {metrics.within_km[200]:.1f} % (most-common-cell baseline: "
          f"country {baseline.country:.1f} %)")
    if from_app:
        print(f"Done: the model regional:{name} is ready. Choose it in Locate or Cases.")
    else:
        print(f"wrote {folder}; use it with --model regional:{name}")
    return BuildResult(f"regional:{name}", folder, metrics, baseline, len(train), len(test), cells, report.to_dict(),
                       len(val))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.regional", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="build a regional model from geotagged photos")
    b.add_argument("source", help="folder of photos (GPS from EXIF) or a CSV with columns path,lat,lon")
    b.add_argument("--countries", required=True, help="ISO codes or names, comma-separated (e.g. SE,CH)")
    b.add_argument("--method", default="cells-up", choices=list(METHODS),
                   help=f"the paper's methods: {', '.join(BUILD_METHODS)}; the rest are ablations")
    b.add_argument("--name", required=True, help="variant name: the model becomes regional:NAME")
    b.add_argument("--backbone", default=AUTO, choices=(AUTO, *BACKBONE_NAMES),
                   help="auto (default): ViT-L-14 when the CLIP weights are here, else satworld (satellite imagery)")
    b.add_argument("--backbone-weights", default=None, help="open_clip checkpoint for ViT-B-32 (or another file)")
    b.add_argument("--cell-min", type=int, default=None, help="n: images per cell (default: 200, fewer for small sets)")
    b.add_argument("--epochs", type=int, default=None)
    b.add_argument("--negatives", choices=("sampled", "queue"), default=None, help="retrieval: where negatives come from")
    b.add_argument("--sigmas", choices=tuple(SIGMA_PRESETS), default=None, help="retrieval: Fourier scales")
    b.add_argument("--label-smoothing-km", type=float, default=None, help="cells: haversine smoothing tau (e.g. 65)")
    b.add_argument("--output-dir", type=Path, default=None, help="default: the variants folder ($GEOAPP_VARIANTS_DIR)")
    b.add_argument("--device", default="cpu")
    b.add_argument("--force", action="store_true", help="replace an existing model of that name")
    b.add_argument("--paths-within", type=Path, default=None, metavar="DIR",
                   help="refuse CSV rows whose file is not inside DIR (absolute paths, .., links out); "
                        "the app sets it for uploaded zips")
    b.add_argument("--from-app", action="store_true", help=argparse.SUPPRESS)  # log for the Models tab
    r = commands.add_parser("reproduce", help="the paper's Table 1 on Sweden and Switzerland (offline data)")
    add_reproduce_arguments(r)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "reproduce":
            return run_reproduce(args)
        overrides = {k: v for k, v in (("negatives", args.negatives), ("sigmas", args.sigmas),
                                       ("label_smoothing_km", args.label_smoothing_km)) if v is not None}
        config = TrainConfig(device=args.device)
        if args.epochs:
            config = replace(config, epochs=args.epochs, retrieval_epochs=args.epochs)
        build(args.source, args.countries, args.method, args.name, backbone=args.backbone,
              backbone_weights=args.backbone_weights, config=config, cell_min=args.cell_min,
              output_dir=args.output_dir, force=args.force, overrides=overrides, from_app=args.from_app,
              paths_within=args.paths_within)
        return 0
    except (SourceError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
