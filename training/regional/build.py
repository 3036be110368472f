"""``python -m training.regional build|reproduce``: a regional model from a folder of geotagged photos.

    python -m training.regional build PHOTOS/ --countries SE,CH --method cells-up --name my-area
    python -m training.regional build photos.csv --countries CH --method retrieval-rff --name zurich --backbone ViT-L-14
    python -m training.regional reproduce --out runs/sweden-or-switzerland

``build`` reads the photos (GPS from EXIF, or a CSV ``path,lat,lon``), lists what it skips (no GPS,
unreadable, outside the countries), computes frozen features (cached: a second build with another
method reuses them), holds out 10 % to measure the model, trains the method on the rest, and
writes ``<variants dir>/NAME/`` (checkpoint, thumbnails, manifest). The registry then offers it as
``regional:NAME`` in the CLI, the app and Cases. Train only on photos you have the right to use.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from geoapp.families.regional.backbone import BACKBONE_NAMES, load_extractor
from geoapp.families.regional.heads import SIGMA_PRESETS
from geoapp.families.regional.model import CHECKPOINT_NAME, References, save_model
from geoapp.families.variants import check_tag, variants_dir, write_manifest
from training.regional.features import collection_features
from training.regional.fit import (
    BUILD_METHODS,
    METHODS,
    Metrics,
    TrainConfig,
    TrainingSet,
    evaluate,
    fit,
    most_common_cell,
)
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
    heldout_images: int
    cells: int | None
    skipped: dict


def auto_cell_min(train_images: int) -> int:
    """n for the cells: the paper's 200 on big collections, fewer on small ones (about 10 cells or more)."""
    return int(min(200, max(3, train_images // 10)))


def build(source: str | Path, countries: str | list[str], method: str, name: str, *, backbone: str = "satworld",
          backbone_weights: str | None = None, config: TrainConfig | None = None, cell_min: int | None = None,
          holdout: float = 0.1, output_dir: Path | None = None, force: bool = False, progress: bool = True,
          overrides: dict | None = None, paths_within: Path | None = None) -> BuildResult:
    """Build the variant ``regional:NAME`` (see the module docstring). ``paths_within``: an uploaded
    source's folder; CSV rows naming files outside it are refused (see training.regional.sources)."""
    check_tag(name)
    if method not in METHODS:
        raise SourceError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    codes = parse_countries(countries) if isinstance(countries, str) else list(countries)
    folder = (output_dir or variants_dir()) / name
    if folder.exists() and not force:
        raise SourceError(f"a model named {name!r} already exists at {folder}; choose another --name or pass --force")
    records, report = read_source(source, codes, within=paths_within)
    for line in report.lines():
        print(line)
    extractor = load_extractor(backbone, backbone_weights, (config or TrainConfig()).device)
    computed = collection_features([r.path for r in records], extractor, progress=progress)
    records = [r for r, keep in zip(records, computed.keep) if keep]
    report.unreadable += computed.unreadable
    if len(records) < 2:
        raise SourceError(f"only {len(records)} usable photo(s) in {', '.join(codes)}: a model needs at least 2")
    print(f"{len(records)} photos in {', '.join(codes)} ({computed.cached} features from the cache)")
    data = TrainingSet(computed.features, np.array([[r.lat, r.lon] for r in records]),
                       np.array([r.country for r in records], dtype=np.int64), codes)
    rng = np.random.default_rng((config or TrainConfig()).seed)
    order = rng.permutation(len(data))
    held = round(holdout * len(data)) if len(data) >= 5 else 0
    train, test = data.subset(np.sort(order[held:])), data.subset(np.sort(order[:held]))
    config = config or TrainConfig()
    config = replace(config, cell_min=cell_min or auto_cell_min(len(train)))
    spec = replace(METHODS[method], **(overrides or {}))
    meta = {"backbone": {"name": extractor.name, "weights": extractor.weights,
                         "weights_path": backbone_weights if backbone_weights not in (None, "random") else None},
            "countries": codes, "training_domain": GROUND}
    result = fit(spec, train, config, meta)
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
                          "training_images": len(train), "heldout_images": len(test), "metrics": metrics.to_dict(),
                          "baseline_most_common_cell": baseline.to_dict(), "skipped": report.to_dict()})
    print(f"held-out {len(test)} photos: country {metrics.country:.1f} %, within 25 km {metrics.within_km[25]:.1f} %, "
          f"200 km {metrics.within_km[200]:.1f} % (most-common-cell baseline: country {baseline.country:.1f} %)")
    print(f"wrote {folder}; use it with --model regional:{name}")
    return BuildResult(f"regional:{name}", folder, metrics, baseline, len(train), len(test), cells, report.to_dict())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.regional", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="build a regional model from geotagged photos")
    b.add_argument("source", help="folder of photos (GPS from EXIF) or a CSV with columns path,lat,lon")
    b.add_argument("--countries", required=True, help="ISO codes or names, comma-separated (e.g. SE,CH)")
    b.add_argument("--method", default="cells-up", choices=list(METHODS),
                   help=f"the paper's methods: {', '.join(BUILD_METHODS)}; the rest are ablations")
    b.add_argument("--name", required=True, help="variant name: the model becomes regional:NAME")
    b.add_argument("--backbone", default="satworld", choices=BACKBONE_NAMES)
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
    r = commands.add_parser("reproduce", help="the paper's Table 1 on Sweden and Switzerland (offline data)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--quick", action="store_true", help="a small run (a few hundred locations per country)")
    r.add_argument("--methods", default=None, help=f"comma-separated subset of {', '.join(METHODS)}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "reproduce":
            from training.regional.reproduce import ReproConfig, quick_config, reproduce

            config = ReproConfig()
            if args.methods:
                unknown = [m for m in args.methods.split(",") if m not in METHODS]
                if unknown:
                    raise SourceError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
                config = replace(config, methods=tuple(args.methods.split(",")))
            summary = reproduce(args.out, quick_config(config) if args.quick else config)
            print((args.out / "table.md").read_text())
            print(f"{summary['seconds']} s; results in {args.out}")
            return 0
        overrides = {k: v for k, v in (("negatives", args.negatives), ("sigmas", args.sigmas),
                                       ("label_smoothing_km", args.label_smoothing_km)) if v is not None}
        config = TrainConfig(device=args.device)
        if args.epochs:
            config = replace(config, epochs=args.epochs, retrieval_epochs=args.epochs)
        build(args.source, args.countries, args.method, args.name, backbone=args.backbone,
              backbone_weights=args.backbone_weights, config=config, cell_min=args.cell_min,
              output_dir=args.output_dir, force=args.force, overrides=overrides, paths_within=args.paths_within)
        return 0
    except (SourceError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
