"""Evaluate a geolocator on a benchmark: ``python -m training.evaluate``.

Metrics over the readable images: accuracy within 1 / 25 / 200 / 750 / 2500 km, median
error, country accuracy (Natural Earth polygons: predicted and true country codes equal,
over images whose truth lies in a country), and the mean GeoGuessr score
5000·exp(−d / 1492.7 km). The prediction is the single most probable candidate point
(``merge_km=0``: no merging of nearby points, as in the paper's protocol). Unreadable
images are listed with their error and counted, not scored.

``--prior-km R`` is GeoCLIP's Table 5 protocol: each image is searched only within R km of
its true location (``region="circle:LAT,LON,R"``), scoring only the gallery points inside the
circle as the paper does. ``--prior-extra-points N`` adds geoapp's dense grid of up to N extra
land points in the circle (the app's default region prior; see the README).

``--compare-refinement`` decides whether fine refinement helps a family (GeoCLIP, SatWorld) on your
data: every image is predicted once with refinement (``--refine-km``, default 15 km), and both its
refined answer and its gallery answer (where the top place was before refinement) are scored; the
report adds the gallery-answer row, the images each gains or loses per threshold, an exact McNemar
test and the verdict under the rule for the default (:mod:`training.refinement`).

Outputs (``--out DIR``): predictions.csv (one row per image), results.md / results.csv
(this run next to the published numbers), summary.json. Random weights are flagged loudly.

Example::

    python -m training.evaluate --csv ../shared/data/benchmarks/im2gps3k_places365.csv \\
        --images /data/im2gps3k --model geoclip --tencrop --out runs/eval-im2gps3k
    python -m training.evaluate --csv ../shared/data/benchmarks/im2gps3k_places365.csv \\
        --images /data/im2gps3k --model geoclip --compare-refinement --out runs/refine-im2gps3k
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoapp.geo.countries import get_country_index
from geoapp.geo.distance import haversine_km
from geoapp.geo.errors import RegionError
from geoapp.geo.metrics import THRESHOLDS_KM, error_summary, geoguessr_score
from geoapp.imaging import ImageLoadError
from geoapp.models.backbones import BACKBONES
from geoapp.families import registry
from geoapp.runtime.request import add_runtime_arguments

from training.data import LAYOUTS, DatasetSpec, GeoRecords, read_records
from training.refinement import RefinementComparison, compare, gallery_answer
from training.tables import ResultRow, markdown_table, reference_rows, write_tables

log = logging.getLogger("training.evaluate")
COMPARE_REFINE_KM = 15.0  # --compare-refinement without --refine-km: the radius the app offers
PREDICT_SLICE = 128  # images per predict_batch call (their predictions are dropped once summarised)
RANDOM_BANNER = ("!" * 78 + "\n!!  RANDOM WEIGHTS: these numbers come from an untrained model and are MEANINGLESS.\n"
                 "!!  They only show that the evaluation pipeline runs end to end.\n" + "!" * 78)


@dataclass
class EvalResult:
    """Per-image predictions and the summary row."""

    predictions: pd.DataFrame
    row: ResultRow
    random_weights: bool
    model: dict[str, Any]
    seconds: float
    comparison: RefinementComparison | None = None  # --compare-refinement
    without_refinement: ResultRow | None = None  # the same images' gallery answers (--compare-refinement)


def predict_all(locator: Any, records: GeoRecords, tencrop: bool, prior_km: float | None, batch_size: int,
                progress: Any = None, prior_extra_points: int = 0, extras: dict | None = None,
                seen: Any = None) -> list[tuple[float, float, float, str]]:
    """(lat, lon, probability, error) per record; NaN coordinates and an error text when it failed.

    ``extras``: family options for every prediction (``refine_km``); ``seen(prediction or None)`` is
    called once per record, in order (None when it failed)."""
    failed = (float("nan"), float("nan"), float("nan"))
    out: list[tuple[float, float, float, str]] = []
    extras = extras or {}
    if prior_km is None:
        paths = [str(p) for p in records.paths]
        # In slices: a prediction holds its whole probability surface (100K points), so memory stays flat
        # however many images there are.
        for start in range(0, len(paths), PREDICT_SLICE):
            for p in locator.predict_batch(paths[start:start + PREDICT_SLICE], top_k=1, tencrop=tencrop,
                                           merge_km=0.0, batch_size=batch_size, on_error="record", progress=progress,
                                           **extras):
                out.append((p.candidates[0].lat, p.candidates[0].lon, p.candidates[0].probability, "") if p.ok
                           else (*failed, p.error or "failed"))
                if seen:
                    seen(p if p.ok else None)
        return out
    # Each image has its own prior region (a circle around its truth): one image at a time.
    for path, (lat, lon) in zip(records.paths, records.coords):
        try:
            p = locator.predict(str(path), top_k=1, region=f"circle:{lat:.6f},{lon:.6f},{prior_km:g}", tencrop=tencrop,
                                merge_km=0.0, region_points=prior_extra_points, **extras)
            out.append((p.candidates[0].lat, p.candidates[0].lon, p.candidates[0].probability, ""))
        except (ImageLoadError, RegionError) as error:
            p = None
            out.append((*failed, str(error)))
        if seen:
            seen(p)
        if progress:
            progress(1)
    return out


def summarise(records: GeoRecords, raw: list[tuple[float, float, float, str]], method: str, note: str) -> tuple[pd.DataFrame, ResultRow]:
    """Per-image table and the metrics row."""
    pred = np.array([r[:2] for r in raw], dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(pred[:, 0])
    true = records.coords
    errors_km = np.full(len(raw), np.nan)
    errors_km[ok] = haversine_km(pred[ok, 0], pred[ok, 1], true[ok, 0], true[ok, 1])
    countries = get_country_index()
    true_country = countries.lookup(true[:, 0], true[:, 1]) if len(true) else np.array([], dtype=str)
    pred_country = np.full(len(raw), "", dtype=object)
    if ok.any():
        pred_country[ok] = countries.lookup(pred[ok, 0], pred[ok, 1])
    frame = pd.DataFrame({
        "id": records.ids, "path": [str(p) for p in records.paths],
        "true_lat": true[:, 0], "true_lon": true[:, 1], "pred_lat": pred[:, 0], "pred_lon": pred[:, 1],
        "probability": [r[2] for r in raw], "error_km": errors_km,
        "true_country": true_country, "pred_country": pred_country,
        "geoguessr": np.where(ok, geoguessr_score(np.nan_to_num(errors_km)), np.nan),
        "error": [r[3] for r in raw],
    })
    summary = error_summary(pred[ok], true[ok])
    has_country = ok & (true_country != "")
    country_acc = float(np.mean(pred_country[has_country] == true_country[has_country]) * 100) if has_country.any() else None
    failed = int((~ok).sum())
    notes = [note] if note else []
    if failed:
        notes.append(f"{failed} image(s) unreadable, not scored")
    if has_country.sum() < ok.sum():
        notes.append(f"country % over {int(has_country.sum())} images with a true country")
    row = ResultRow(method, records.name, summary["n"], summary["accuracy"], summary["median_km"], country_acc,
                    summary["geoguessr_score"], "; ".join(notes), {"failed": failed})
    return frame, row


def evaluate(args: argparse.Namespace) -> EvalResult:
    from geoapp import Geolocator

    spec = DatasetSpec(Path(args.csv), Path(args.images), args.layout, name=args.name)
    records = read_records(spec, require_images=True)
    if args.limit:
        records = records.head(args.limit)
    if len(records) == 0:
        raise ValueError(f"{args.csv}: no usable rows ({records.skipped_rows} skipped)")
    refine, answers = refinement_extras(args), []
    extras = {"backbone": args.backbone, "gallery": args.gallery, "runtime": args.runtime, "precision": args.precision}
    if args.heads not in (None, "pretrained"):
        extras["heads"] = args.heads
    locator = Geolocator.load(args.model, device=args.device, backbone_weights=args.backbone_weights,
                              checkpoint=getattr(args, "checkpoint", None), **extras)
    if locator.random_weights:
        print(RANDOM_BANNER, file=sys.stderr)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(records), unit="img", desc="evaluate", file=sys.stderr)
    started = time.perf_counter()
    raw = predict_all(locator, records, args.tencrop, args.prior_km, args.batch_size, bar.update if bar else None,
                      prior_extra_points=args.prior_extra_points, extras=refine,
                      seen=(lambda p: answers.append(None if p is None else gallery_answer(p)))
                      if args.compare_refinement else None)
    seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    parts = [f"{args.model}", "TenCrop" if args.tencrop else "centre crop"]
    if args.prior_km:
        parts.append(f"prior ≤{args.prior_km:g} km")
    if args.heads != "pretrained":
        parts.append(f"heads {Path(str(args.heads)).name}")
    refine_km = refine.get("refine_km", 0.0)
    method = f"this run ({', '.join(parts + ([f'refinement {refine_km:g} km'] if refine_km else []))})"
    note = "RANDOM WEIGHTS — MEANINGLESS" if locator.random_weights else ""
    frame, row = summarise(records, raw, method, note)
    result = EvalResult(frame, row, locator.random_weights, locator.describe().to_dict(), seconds)
    if args.compare_refinement:
        before = [(*answer, r[2], "") if answer is not None else r for answer, r in zip(answers, raw)]
        frame_before, result.without_refinement = summarise(records, before, f"this run ({', '.join(parts)}, "
                                                            "gallery answer: refinement off)", note)
        frame["gallery_lat"], frame["gallery_lon"] = frame_before["pred_lat"], frame_before["pred_lon"]
        frame["gallery_error_km"] = frame_before["error_km"]
        result.comparison = compare(records.coords, frame_before[["pred_lat", "pred_lon"]].to_numpy(),
                                    frame[["pred_lat", "pred_lon"]].to_numpy(), refine_km)
        if locator.random_weights:
            result.comparison.notes.append("RANDOM WEIGHTS: this comparison says nothing about refinement.")
    return result


def refinement_extras(args: argparse.Namespace) -> dict:
    """``refine_km`` for the predictions: --refine-km, or 15 km with --compare-refinement, or the family's
    default (none given). A family without fine refinement refuses both flags (before anything loads)."""
    if args.refine_km is None and not args.compare_refinement:
        return {}
    spec = registry.get(args.model)
    if not any(o.name == "refine_km" for o in spec.options):
        raise SystemExit(f"{spec.label} has no fine refinement: drop --refine-km / --compare-refinement")
    radius = COMPARE_REFINE_KM if args.refine_km is None else args.refine_km
    if args.compare_refinement and radius <= 0:
        raise SystemExit("--compare-refinement needs a refinement radius above 0 km (--refine-km)")
    return {"refine_km": radius}


def report(result: EvalResult, args: argparse.Namespace) -> str:
    """Markdown shown to the user (and written to --out)."""
    published, same_dataset = reference_rows(f"{args.csv} {args.name or ''}")
    rows = [result.row, *([result.without_refinement] if result.without_refinement else []), *published]
    text = [f"Evaluation of {result.row.dataset}: {result.row.n} images scored in {result.seconds:.0f} s "
            f"(model {result.model.get('model')}, backbone {result.model.get('backbone')} "
            f"[{result.model.get('backbone_weights')}], gallery {result.model.get('gallery')})", "",
            markdown_table(rows), ""]
    if not same_dataset:
        text.append(f"No published numbers are stored for {result.row.dataset}; the published rows are for "
                    f"{published[0].dataset}, shown for orientation only.")
    elif result.row.n != published[0].n:
        text.append(f"Published rows are for the full benchmark ({published[0].n} images); this run scored "
                    f"{result.row.n}, so the rows are not directly comparable.")
    if result.comparison is not None:
        text += ["", result.comparison.markdown()]
    if args.prior_km:
        text.append("Prior-region protocol (GeoCLIP Table 5): candidates restricted to the circle around the truth.")
    if result.random_weights:
        text += ["", RANDOM_BANNER]
    return "\n".join(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, help="ground-truth CSV (IMG_ID/IMG_FILE/path, LAT, LON, ...)")
    p.add_argument("--images", required=True, help="folder the CSV's image ids are relative to")
    p.add_argument("--layout", default="auto", choices=sorted(LAYOUTS))
    p.add_argument("--name", default=None, help="dataset name in the table (default: the CSV's file name)")
    p.add_argument("--model", default="geoclip", choices=registry.keys(),
                   help="any registered family or trained variant (family:tag); see python -m geoapp models")
    p.add_argument("--checkpoint", default=None, help="the family's own trained checkpoint")
    p.add_argument("--backbone-weights", default=None, help="default: OpenAI CLIP; 'random' for smoke tests")
    p.add_argument("--backbone", default="ViT-L-14", choices=sorted(BACKBONES), help=argparse.SUPPRESS)
    p.add_argument("--heads", default="pretrained", help="'pretrained' or a checkpoint from training.train_geoclip")
    p.add_argument("--gallery", default=None, help="gallery CSV (default: GeoCLIP's 100K MP-16 gallery)")
    p.add_argument("--tencrop", action="store_true", help="average the logits of 10 crops (paper evaluation)")
    add_runtime_arguments(p)
    p.add_argument("--prior-km", type=float, default=None, choices=(2500.0, 750.0, 200.0, 25.0),
                   help="GeoCLIP Table 5: search only within this radius of the true location")
    p.add_argument("--prior-extra-points", type=int, default=0,
                   help="with --prior-km: also score up to N extra land grid points in the circle (default 0: "
                        "gallery points only, as in the paper)")
    p.add_argument("--refine-km", type=float, default=None,
                   help="fine refinement radius for the families that have it (0 = off; default: the family's "
                        "default, off for GeoCLIP and SatWorld)")
    p.add_argument("--compare-refinement", action="store_true",
                   help="score every image's answer with refinement (--refine-km, default 15) and without it (its "
                        "gallery answer, same forward pass), and say whether refinement measurably helps")
    p.add_argument("--limit", type=int, default=None, help="only the first N rows")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="folder for predictions.csv, results.md/.csv, summary.json")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    result = evaluate(args)
    text = report(result, args)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.predictions.to_csv(out / "predictions.csv", index=False, float_format="%.6f")
        write_tables([result.row, *([result.without_refinement] if result.without_refinement else []),
                      *reference_rows(f"{args.csv} {args.name or ''}")[0]], out)
        (out / "report.md").write_text(text + "\n")
        summary = {"dataset": result.row.dataset, "n": result.row.n, "failed": result.row.extra.get("failed", 0),
                   "accuracy": {f"{k:g}": v for k, v in result.row.accuracy.items()},
                   "median_km": result.row.median_km, "country_accuracy": result.row.country_accuracy,
                   "geoguessr": result.row.geoguessr, "random_weights": result.random_weights,
                   "tencrop": args.tencrop, "prior_km": args.prior_km, "model": result.model,
                   "thresholds_km": list(THRESHOLDS_KM), "seconds": round(result.seconds, 1),
                   "refinement": result.comparison.to_dict() if result.comparison else None,
                   "command": " ".join(["python -m training.evaluate", *(argv if argv is not None else sys.argv[1:])])}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        print(f"\nwrote {out}/predictions.csv, results.md, results.csv, report.md, summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
