"""Cost of fine refinement per prediction: a family with and without it, in the same run.

Refinement is on by default only where it measurably improves accuracy (``python -m training.evaluate
--compare-refinement``); this script measures what it costs: GeoCLIP on the real architecture (CLIP
ViT-L/14, random backbone weights unless the real ones are cached; the real GeoCLIP heads and 100K
gallery) or SatWorld (its shipped weights), alternating refinement off/on on the same photos so both
see the same machine load. The load average is recorded at the start and the end.

    python benchmarks/bench_refine.py --device cpu [--model satworld --images DIR] [--radius 15] [--json out.json]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from _common import REPO, bench_parser, emit, load_average, machine

SHARED = REPO.parent / "shared" / "data" / "im2gps3k-dev"


def main() -> int:
    p = bench_parser(__doc__)  # --json, --device (default cpu)
    p.add_argument("--model", default="geoclip", choices=("geoclip", "satworld"))
    p.add_argument("--images", default=str(SHARED), help="folder of photos (*.jpg, *.png); default: Im2GPS3k dev")
    p.add_argument("--backbone-weights", default="random",
                   help='GeoCLIP: "random" (default) or an open_clip checkpoint; SatWorld: ignored (shipped weights)')
    p.add_argument("--radius", type=float, action="append", default=None, help="refinement radius km (repeatable)")
    p.add_argument("--step", type=float, default=0.5)
    p.add_argument("--top", type=int, action="append", default=None,
                   help="places refined (repeatable; 0 = the top-k shown, 5 by default)")
    p.add_argument("--photos", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    settings = [(r, t) for r in (args.radius or [15.0]) for t in (args.top or [0, 16])]
    labels = [f"{r:g} km, top {t or 'k=5'}" for r, t in settings]

    from geoapp.api import Geolocator

    load_start = load_average()
    folder = Path(args.images)
    photos = sorted([*folder.glob("*.jpg"), *folder.glob("*.png")])[: args.photos]
    if not photos:
        raise SystemExit(f"no photos in {folder}")
    weights = args.backbone_weights if args.model == "geoclip" else None
    locator = Geolocator.load(args.model, args.device, weights)
    locator.prepare()
    locator.predict(str(photos[0]), refine_km=0)  # warm-up (first forward, allocator)
    locator.predict(str(photos[0]), refine_km=settings[0][0])

    times: dict[str, list[float]] = {"off": [], **{label: [] for label in labels}}
    cpu: dict[str, list[float]] = {"off": [], **{label: [] for label in labels}}
    refine_ms: dict[str, list[float]] = {label: [] for label in labels}
    points: dict[str, int] = {}
    for _ in range(args.repeats):
        for photo in photos:
            for label, (radius, top) in [("off", (0.0, 0)), *zip(labels, settings)]:
                start, start_cpu = time.perf_counter(), time.process_time()
                prediction = locator.predict(str(photo), top_k=5, refine_km=radius, refine_step_km=args.step,
                                             refine_top=top)
                times[label].append((time.perf_counter() - start) * 1000)
                # CPU time of this process: the fair ratio when other jobs share the machine
                cpu[label].append((time.process_time() - start_cpu) * 1000)
                if radius:
                    refine_ms[label].append(prediction.timings_ms["refine"])
                    points[label] = prediction.parameters["refinement"]["points_scored"]
    base = statistics.median(times["off"])
    base_cpu = statistics.median(cpu["off"])
    rows = []
    for label, (r, top) in zip(labels, settings):
        median = statistics.median(times[label])
        rows.append({"setting": label, "radius_km": r, "top": top or 5, "step_km": args.step,
                     "points_scored": points[label],
                     "predict_ms": round(median, 1), "refine_ms": round(statistics.median(refine_ms[label]), 1),
                     "slowdown_pct": round((median / base - 1) * 100, 1),
                     "cpu_ms": round(statistics.median(cpu[label]), 1),
                     "cpu_slowdown_pct": round((statistics.median(cpu[label]) / base_cpu - 1) * 100, 1)})
    result = {"machine": machine(args.device),
              "device": args.device, "model": args.model, "images": str(folder),
              "off_ms": round(base, 1), "off_cpu_ms": round(base_cpu, 1), "rows": rows, "photos": len(photos),
              "repeats": args.repeats, "random_backbone": weights == "random",
              "load_average_start": load_start, "load_average_end": load_average()}
    print(f"{args.model}, load average {load_start} -> {result['load_average_end']}")
    print(f"prediction without refinement: {base:.0f} ms wall, {base_cpu:.0f} ms CPU (median of {len(times['off'])})")
    for row in rows:
        print(f"refine {row['setting']} @ {row['step_km']:g} km: {row['points_scored']} points, "
              f"predict {row['predict_ms']:.0f} ms, refinement {row['refine_ms']:.0f} ms, "
              f"slowdown {row['slowdown_pct']:+.1f} % wall, {row['cpu_slowdown_pct']:+.1f} % CPU time")
    if args.json:
        emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
