"""Coverage of the calibrated credible areas on held-out solved images (not used for calibration).

``python -m training.fusion.coverage --model satworld --csv runs/fusion-sets/satworld/test.csv --json out.json``
predicts every image, builds its map with the kernel stored in the model's calibration, and reports per
level (50 / 80 / 90 / 95 %): the share of images whose true location lies in the calibrated area and in the
plain highest-density area, and the median area (km^2) of each.
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
from geoapp.fusion.calibration import find_calibration, score_photo
from geoapp.fusion.posterior import PhotoMap


def evaluate(solved: list, model: dict, calibration) -> dict:
    thresholds = {}
    for level in LEVELS:
        thresholds[f"calibrated {level:g}"] = ("calibrated", calibration.threshold(level))
        thresholds[f"plain {level:g}"] = ("plain", level)
    scores, areas = [], {name: [] for name in thresholds}
    for source, points, lat, lon in solved:
        photo = PhotoMap(source, points, calibration.kernel, model)
        score, got = score_photo(photo, lat, lon, thresholds)
        scores.append(score)
        for name, value in got.items():
            areas[name].append(value)
    scores = np.asarray(scores)
    rows = []
    for level in LEVELS:
        q = calibration.threshold(level)
        rows.append({"level": level, "threshold": q,
                     "calibrated_coverage": float(np.mean(scores <= q)),
                     "plain_coverage": float(np.mean(scores < level)),
                     "calibrated_median_km2": float(np.median(areas[f"calibrated {level:g}"])),
                     "plain_median_km2": float(np.median(areas[f"plain {level:g}"]))})
    return {"n": len(scores), "rows": rows, "scores": scores.round(6).tolist()}


def markdown(result: dict) -> str:
    lines = ["| level | calibrated coverage | plain HPD coverage | calibrated median km² | plain median km² |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['level'] * 100:g} % | {r['calibrated_coverage'] * 100:.1f} % | {r['plain_coverage'] * 100:.1f} % "
                     f"| {r['calibrated_median_km2']:,.0f} | {r['plain_median_km2']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", required=True, help="held-out solved images: path, lat, lon")
    parser.add_argument("--name", default=None, help="calibration name (default: the model's first)")
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--points-cache", default=None, metavar="FILE.npz", help="as for geoapp calibrate")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    add_model_arguments(parser)
    add_family_options(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows, problems = cli_fusion.read_solved(args.csv)
    rows = rows[: args.limit] if args.limit else rows
    for problem in problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    solved, model = cli_fusion.solved_points(args, rows)
    calibration = find_calibration(model, args.name)
    if calibration is None:
        raise SystemExit(f"no calibration for {model['family']}: run python -m geoapp calibrate first")
    result = evaluate(solved, model, calibration)
    result.update({"model": model["family"], "weights_sha256": model.get("heads_sha256"), "csv": args.csv,
                   "calibration": calibration.label(), "kernel": calibration.kernel.to_dict(),
                   "seconds": round(time.perf_counter() - started, 1), "machine": platform.platform(),
                   "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()})
    print(markdown(result))
    print(f"{result['n']} held-out images; {calibration.label()}; kernel {calibration.kernel.sigma_km:g} km, floor "
          f"{calibration.kernel.floor:g}; {result['seconds']} s; load {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
