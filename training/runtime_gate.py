"""The int8 quality gate: ``python -m training.runtime_gate --model KEY --precision int8 --runtime ENGINE``
(also ``python -m geoapp runtime gate ...``).

Quantises the family's image tower (ONNX Runtime static quantisation, calibrated on images outside the evaluation
data), scores torch fp32 and the int8 engine on the same held-out images with known answers, and stores the verdict
for this machine (:mod:`geoapp.runtime.gates`): passed when int8 accuracy at 200 / 750 / 2500 km is within 1 point
of fp32. Data per family:

* ``satworld`` (and its variants): SatWorld's held-out test split (2 000 rendered Blue Marble crops, the protocol of
  ``assets/satworld/MODEL_CARD.md``); calibration: renderings of 32 training-split locations.
* ``maptiles``: the cross-view demo's held-out locations (the checkpoint's own split), beam search k = 16 through
  the family's cached tile embeddings; calibration: renderings of 32 training locations.
* any other family with an exported tower (GeoCLIP with real weights): a labelled dataset you name,
  ``--dataset CSV --images DIR`` (any layout ``training.data`` reads, e.g. Im2GPS3k); 32 of its images (seeded)
  calibrate and the others are scored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geoapp.engine.inputs import load_family
from geoapp.families import registry
from geoapp.geo.metrics import THRESHOLDS_KM, error_summary
from geoapp.runtime.engines import ImageTower, installed_engines
from geoapp.runtime.gates import GATE_THRESHOLDS_KM, MAX_DROP_POINTS, run_gate
from geoapp.runtime.images import ImageSet, tower_images
from geoapp.runtime.towers import verdict

CALIBRATION = 32
log = logging.getLogger("training.runtime_gate")


@dataclass
class GateData:
    """Held-out images with answers, as a scorer of towers, and calibration images outside them."""

    name: str
    images: int
    evaluate: object  # (ImageTower) -> {threshold km (str): accuracy %}
    calibration: ImageSet


def accuracy(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {f"{int(k)}": float(v) for k, v in error_summary(pred, truth, THRESHOLDS_KM)["accuracy"].items()}


def _chunks(tower: ImageTower, pixels: torch.Tensor, size: int = 64) -> torch.Tensor:
    return torch.cat([tower(pixels[i:i + size]) for i in range(0, len(pixels), size)])


def satworld_data(family, limit: int | None) -> GateData:
    from geoapp.families.satworld.model import pretrained_location_encoder
    from geoapp.galleries.gallery import Gallery
    from geoapp.settings import get_settings
    from training.satworld.train import TrainConfig, build_problem, eval_images, to_pixels

    network = family.model
    config = replace(TrainConfig(), model=network.config)
    encoder, location_sha = pretrained_location_encoder()
    problem = build_problem(config, Gallery.default().coords, encoder, location_sha, get_settings().embeddings_dir)
    truth = problem.splits.test[:limit] if limit else problem.splits.test
    pixels = to_pixels(eval_images(config, truth), network)
    candidates = F.normalize(problem.candidate_embeddings.float(), dim=-1)

    def evaluate(tower: ImageTower) -> dict[str, float]:
        embeddings = F.normalize(_chunks(tower, pixels), dim=-1)
        return accuracy(problem.candidates[(embeddings @ candidates.T).argmax(dim=1).numpy()], truth)

    rng = np.random.default_rng(0)
    calibration = problem.bank[np.sort(rng.choice(len(problem.bank), CALIBRATION, replace=False))]
    return GateData(f"SatWorld held-out test split (seed {config.seed}, {len(truth)} rendered crops)", len(truth),
                    evaluate, ImageSet(to_pixels(eval_images(config, calibration), network),
                                       f"{CALIBRATION} renderings of SatWorld training-split locations (seed 0)", []))


def maptiles_data(family, limit: int | None) -> GateData:
    from geoapp.galleries.gallery import Gallery
    from training.maptiles.data import render_queries, splits
    from training.maptiles.train import TrainConfig

    saved = dict(family.meta.training.get("config") or {})
    if not saved:
        raise ValueError("this map-tile checkpoint records no training configuration, so its held-out split is "
                         "unknown: gate it on a labelled dataset with --dataset CSV --images DIR")
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names})
    if config.photos:
        raise ValueError("this map-tile checkpoint was trained on photos: gate it with --dataset CSV --images DIR")
    split = splits(Gallery.default().coords, config.gallery_points, config.land_points, config.seed, config.test_size)
    truth = split.test[:limit] if limit else split.test
    prep = family.model.config.preprocess()
    mean, std = torch.tensor(prep.mean).view(1, 3, 1, 1), torch.tensor(prep.std).view(1, 3, 1, 1)

    def pixels(coords: np.ndarray) -> torch.Tensor:
        images = render_queries(coords, config.window_km, prep.image_size, config.raster)
        return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std

    queries = pixels(truth)

    def evaluate(tower: ImageTower) -> dict[str, float]:
        photos = F.normalize(_chunks(tower, queries).float(), dim=-1).numpy()
        return accuracy(np.array([family.search(p, 16).answer for p in photos]), truth)

    rng = np.random.default_rng(0)
    calibration = split.train[np.sort(rng.choice(len(split.train), CALIBRATION, replace=False))]
    return GateData(f"map-tile demo held-out locations (seed {config.seed}, {len(truth)} renderings, beam k=16)",
                    len(truth), evaluate,
                    ImageSet(pixels(calibration), f"{CALIBRATION} renderings of training locations (seed 0)", []))


def dataset_data(family, csv: str, images: str, layout: str, limit: int | None, calibration_dir: str | None) -> GateData:
    from geoapp.imaging import ImageLoadError, load_image
    from training.data import DatasetSpec, read_records
    from training.evaluate import predict_all

    records = read_records(DatasetSpec(Path(csv), Path(images), layout), require_images=True)
    order = np.random.default_rng(0).permutation(len(records))
    held = [] if calibration_dir else sorted(order[:min(CALIBRATION, len(records) // 4)].tolist())
    scored = records.subset(sorted(set(range(len(records))) - set(held)))
    if limit:
        scored = scored.head(limit)
    if len(scored) == 0:
        raise ValueError(f"{csv}: no images left to score")
    source = family.tower.source
    if calibration_dir:
        calibration = tower_images(source, calibration_dir, CALIBRATION)
    else:
        tensors, skipped = [], []
        for index in held:
            try:
                tensors.append(source.preprocess(load_image(records.paths[index], min_side=source.image_size).image))
            except ImageLoadError as error:
                skipped.append(str(error))
        calibration = ImageSet(torch.cat(tensors), f"{len(tensors)} images of {records.name} (seed 0), not scored",
                               skipped)

    def evaluate(tower: ImageTower) -> dict[str, float]:
        previous, family.tower = family.tower, tower
        try:
            raw = predict_all(family, scored, tencrop=False, prior_km=None, batch_size=8)
        finally:
            family.tower = previous
        pred = np.array([r[:2] for r in raw], dtype=np.float64).reshape(-1, 2)
        ok = np.isfinite(pred[:, 0])  # unreadable images count as misses for both
        hits = accuracy(pred[ok], scored.coords[ok])
        return {k: v * ok.sum() / len(ok) for k, v in hits.items()}

    return GateData(f"{records.name} ({len(scored)} images)", len(scored), evaluate, calibration)


def gate_data(key: str, family, args: argparse.Namespace) -> GateData:
    if args.dataset:
        return dataset_data(family, args.dataset, args.images, args.layout, args.limit, args.calibration)
    base = key.split(":")[0]
    if base == "satworld":
        return satworld_data(family, args.limit)
    if base == "maptiles":
        return maptiles_data(family, args.limit)
    raise ValueError(f"{key} has no built-in held-out data with answers: name a labelled dataset, e.g. "
                     f"`python -m geoapp runtime gate --model {key} --precision int8 --runtime onnx "
                     "--dataset im2gps3k_places365.csv --images IM2GPS3K_FOLDER`")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m geoapp runtime gate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="family key (satworld, maptiles, geoclip, family:tag)")
    p.add_argument("--precision", default="int8", choices=("int8",))
    p.add_argument("--runtime", default="auto", choices=("onnx", "openvino", "auto"),
                   help="engine to gate (auto: every installed one)")
    p.add_argument("--checkpoint", default=None, help="the family's own checkpoint (as for predict)")
    p.add_argument("--backbone-weights", default=None, help="'random' for a test run (the verdict says so)")
    p.add_argument("--backbone", default=None, help=argparse.SUPPRESS)
    p.add_argument("--dataset", default=None, help="labelled dataset CSV (GeoCLIP: e.g. Im2GPS3k's ground truth)")
    p.add_argument("--images", default=None, help="folder the dataset's image ids are relative to")
    p.add_argument("--layout", default="auto", help="dataset CSV layout (training.data)")
    p.add_argument("--calibration", default=None, help="folder of calibration images (default: see above)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N held-out images (quick check)")
    return p


def command_line(args: argparse.Namespace) -> str:
    parts = ["python -m geoapp runtime gate", f"--model {args.model}", "--precision int8", f"--runtime {args.runtime}"]
    for flag in ("checkpoint", "backbone_weights", "dataset", "images", "calibration", "limit"):
        value = getattr(args, flag)
        if value is not None:
            parts.append(f"--{flag.replace('_', '-')} {value}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    if args.dataset and not args.images:
        raise SystemExit("error: --dataset needs --images (the folder its image ids are relative to)")
    extras = {"backbone": args.backbone} if args.backbone else {}
    # load_family seeds random test weights: the same random model (and digest) as `geoapp predict` builds
    family = load_family(registry.get(args.model), registry.LoadOptions(
        device="cpu", backbone_weights=args.backbone_weights, checkpoint=args.checkpoint, extras=extras))
    source = getattr(family, "tower", None)
    if source is None:
        raise SystemExit(f"error: {args.model} has no exported image tower (no int8 to gate)")
    source = source.source
    engines = installed_engines() if args.runtime == "auto" else [args.runtime]
    data = gate_data(args.model, family, args)
    print(f"Gate data: {data.name}; calibration: {data.calibration.description}", file=sys.stderr)
    fp32 = None
    failed = 0
    for engine in engines:
        parity, _ = verdict(source, engine)
        if not parity.passed:
            print(f"{engine}: fp32 export failed its parity check ({parity.reason}); not gated", file=sys.stderr)
            failed += 1
            continue
        fp32 = fp32 or data.evaluate(family.tower)
        result = run_gate(source, engine, data.evaluate, data.calibration, dataset=data.name, images=data.images,
                          command=command_line(args), random_weights=family.random_weights,
                          fp32_accuracy=dict(fp32), log=lambda m: print(m, file=sys.stderr))
        failed += not result.passed
        shown = " ".join(f"{t} km {result.fp32_accuracy[str(t)]:.2f} -> {result.int8_accuracy[str(t)]:.2f}"
                         for t in GATE_THRESHOLDS_KM)
        print(f"{args.model} int8 on {engine}: {'PASSED' if result.passed else 'FAILED'} (fp32 -> int8 accuracy %: "
              f"{shown}; allowed drop {MAX_DROP_POINTS:g} point); batch-1 ms torch {result.torch_ms:.1f}, int8 "
              f"{result.int8_ms:.1f}" + ("; RANDOM WEIGHTS: the verdict only shows the gate runs" if
                                         result.random_weights else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
