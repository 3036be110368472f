"""Coverage of the calibrated credible areas on held-out solved images (not used for calibration).

``python -m training.fusion.coverage --model satworld --csv runs/fusion-sets/satworld/heldout-check.csv
--name heldout-half --json out.json`` predicts every image, builds its map with the kernel stored in the
model's calibration, and reports per level (50 / 80 / 90 / 95 %): the share of images whose true location
lies in the calibrated area as drawn (the cell straddling the threshold taken whole), in the randomised
area of smoothed conformal prediction (that cell taken with probability (q - ahead) / own: the exact
guarantee), and in the plain highest-density area, with the median area (km^2) of the drawn and plain ones.

``--resplits N`` adds how much that coverage varies with the draw of the calibration images: the calibration's
scores and these images' scores (same kernel) are pooled and split N times at random into sets of the same
two sizes (randomised coverage; mean and 5-95 % range).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from geoapp.cli import fusion as cli_fusion
from geoapp.cli.family import add_family_options, add_model_arguments
from geoapp.fusion.areas import LEVELS
from geoapp.fusion.calibration import SHIPPED_DIR, conformal_threshold, find_calibration, score_photo, tie_shares
from geoapp.fusion.posterior import PhotoMap

CHECK_SEED_OFFSET = 1000  # the check images' tie shares: another stream than any calibration's of the same seed


def evaluate(solved: list, model: dict, calibration, seed: int = 0) -> dict:
    thresholds = {}
    for level in LEVELS:
        thresholds[f"calibrated {level:g}"] = ("calibrated", calibration.threshold(level))
        thresholds[f"plain {level:g}"] = ("plain", level)
    ranks, areas = [], {name: [] for name in thresholds}
    for source, points, lat, lon in solved:
        photo = PhotoMap(source, points, calibration.kernel, model)
        rank, got = score_photo(photo, lat, lon, thresholds)
        ranks.append(rank)
        for name, value in got.items():
            areas[name].append(value)
    ahead = np.array([r.ahead for r in ranks])
    scores = np.array([r.score(u) for r, u in zip(ranks, tie_shares(seed + CHECK_SEED_OFFSET, len(ranks)))])
    rows = []
    for level in LEVELS:
        q = calibration.threshold(level)
        rows.append({"level": level, "threshold": q,
                     "calibrated_coverage": float(np.mean(ahead <= q)),
                     "randomised_coverage": float(np.mean(scores <= q)),
                     "plain_coverage": float(np.mean(ahead < level)),
                     "calibrated_median_km2": float(np.median(areas[f"calibrated {level:g}"])),
                     "plain_median_km2": float(np.median(areas[f"plain {level:g}"]))})
    return {"n": len(ranks), "rows": rows, "scores": scores.round(8).tolist(), "ahead": ahead.round(8).tolist(),
            "own": [round(r.own, 8) for r in ranks]}


def resplit(calibration_scores: np.ndarray, check_scores: np.ndarray, count: int, seed: int = 0) -> list[dict]:
    """Coverage over ``count`` random re-draws of which pooled images calibrate and which are checked."""
    pool = np.concatenate([calibration_scores, check_scores])
    n = len(calibration_scores)
    rng = np.random.default_rng([seed, 7])
    got = {level: [] for level in LEVELS}
    for _ in range(count):
        order = rng.permutation(len(pool))
        cal, check = pool[order[:n]], pool[order[n:]]
        for level in LEVELS:
            got[level].append(float(np.mean(check <= conformal_threshold(cal, level))))
    return [{"level": level, "mean": float(np.mean(v)), "p05": float(np.quantile(v, 0.05)),
             "p95": float(np.quantile(v, 0.95)), "share_within_3_points": float(np.mean(np.abs(np.array(v) - level) <= 0.03))}
            for level, v in got.items()]


def markdown(result: dict) -> str:
    lines = ["| level | calibrated coverage (as drawn) | randomised | plain HPD coverage | calibrated median km² | "
             "plain median km² |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['level'] * 100:g} % | {r['calibrated_coverage'] * 100:.1f} % | "
                     f"{r['randomised_coverage'] * 100:.1f} % | {r['plain_coverage'] * 100:.1f} % "
                     f"| {r['calibrated_median_km2']:,.0f} | {r['plain_median_km2']:,.0f} |")
    for r in result.get("resplits", []):
        lines.append(f"re-splits, {r['level'] * 100:g} %: mean {r['mean'] * 100:.1f} %, 5-95 % range "
                     f"{r['p05'] * 100:.1f}-{r['p95'] * 100:.1f} %, within 3 points in {r['share_within_3_points']:.0%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", required=True, help="held-out solved images: path, lat, lon")
    parser.add_argument("--name", default=None, help="calibration name (default: the model's first)")
    parser.add_argument("--calibration-dir", type=Path, default=None,
                        help="look for the calibration only here (default: your data folder's, then the shipped)")
    parser.add_argument("--seed", type=int, default=0, help="seed of these images' randomised tie shares")
    parser.add_argument("--resplits", type=int, default=0, help="also re-draw calibration/check sets N times")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--points-cache", default=None, metavar="FILE.npz", help="as for geoapp calibrate")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    add_model_arguments(parser)
    add_family_options(parser)
    args = parser.parse_args(argv)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    rows, problems = cli_fusion.read_solved(args.csv)
    rows = rows[: args.limit] if args.limit else rows
    for problem in problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    solved, model = cli_fusion.solved_points(args, rows)
    folders = (args.calibration_dir,) if args.calibration_dir else None
    calibration = find_calibration(model, args.name, folders)
    if calibration is None:
        where = args.calibration_dir or f"your data folder or {SHIPPED_DIR}"
        raise SystemExit(f"no calibration {args.name or ''} for {model['family']} in {where}: "
                         "run python -m geoapp calibrate first")
    result = evaluate(solved, model, calibration, args.seed)
    if args.resplits:
        if calibration.tie_seed is None:
            raise SystemExit("--resplits needs a calibration with randomised scores (made by this version)")
        result["resplits"] = resplit(np.array(calibration.scores), np.array(result["scores"]), args.resplits,
                                     args.seed)
    result.update({"model": model["family"], "weights_sha256": model.get("heads_sha256"), "csv": args.csv,
                   "calibration": calibration.label(), "calibration_n": calibration.n,
                   "kernel": calibration.kernel.to_dict(), "seed": args.seed,
                   "seconds": round(time.perf_counter() - started, 1), "machine": platform.platform(),
                   "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                   "load_average_at_end": os.getloadavg()})
    print(markdown(result))
    print(f"{result['n']} held-out images; {calibration.label()}; kernel {calibration.kernel.sigma_km:g} km, floor "
          f"{calibration.kernel.floor:g}; {result['seconds']} s; load {load_at_start} -> {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
