"""Peak memory of map-tile training and evaluation per zoom level, the paper's schedule (zooms 4, 6, …, 16),
against a real HTTP tile server on 127.0.0.1 read through the online client and its disk cache.

1. starts ``python -m training.maptiles.tileserver`` (its own process: its memory is not counted) — tiles
   rendered on request from NASA Blue Marble, so deep tiles are **upsampled** rasters: this proves memory,
   streaming and resumability, not accuracy;
2. trains one stage per process (``--stop-after STAGE``: pretrain, then level 16, 14, …, 4, each process
   resuming the previous one's ``state.pt``) and records each process's peak RSS (``os.wait4`` rusage), and
   the peak of the stage's training loop alone (the trainer resets the kernel's peak-RSS mark when a stage
   starts: ``/proc/self/clear_refs``), so a fixed start-up cost cannot hide growth;
3. evaluates searches that end at zoom 4, 6, …, 16 (one process each): process peak RSS and the peak
   during the searches alone.

    python benchmarks/bench_maptiles_memory.py --out /tmp/maptiles-memory [--zooms 4,6,8,10,12,14,16]
        [--preset crossview-small] [--gallery-points 2000] [--land-points 500] [--epochs 1] [--pretrain-steps 60]
        [--test-size 50] [--k 4] [--json OUT]

The acceptance: from zoom 6 to 16 every figure stays within 1.5x the zoom-6 figure (printed as a ratio).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _common import REPO, bench_parser, emit, load_average, machine


def run_measured(command: list[str], env: dict, log: Path) -> dict:
    """Run a command in its own process; its peak RSS (MB), seconds and exit status."""
    load = load_average()
    begin = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}); see {log}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.perf_counter() - begin, 1),
            "load_before": load, "load_after": load_average()}


def main() -> None:
    parser = bench_parser(__doc__, device=False)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--zooms", default="4,6,8,10,12,14,16")
    parser.add_argument("--preset", default="crossview-small")
    parser.add_argument("--gallery-points", type=int, default=2000)
    parser.add_argument("--land-points", type=int, default=500)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--pretrain-steps", type=int, default=60)
    parser.add_argument("--test-size", type=int, default=50)
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    zooms = [int(z) for z in args.zooms.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEOAPP_CACHE_DIR": str(args.out / "cache")}
    server = subprocess.Popen([sys.executable, "-m", "training.maptiles.tileserver", "--max-zoom", str(max(zooms))],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = server.stdout.readline().strip()
    report: dict = {"machine": machine(), "tile_server": url, "zooms": zooms, "preset": args.preset, "train": [], "evaluate": []}
    try:
        run = args.out / "run"
        train = [sys.executable, "-m", "training.maptiles.train", "--out", str(run), "--preset", args.preset,
                 "--zooms", ",".join(map(str, zooms)), "--tiles", url, "--gallery-points", str(args.gallery_points),
                 "--land-points", str(args.land_points), "--test-size", str(args.test_size), "--epochs",
                 str(args.epochs), "--pretrain-steps", str(args.pretrain_steps), "--save-every", "20", "--no-eval"]
        from training.maptiles.train import TrainConfig, stages

        for stage in stages(TrainConfig(preset=args.preset, zooms=tuple(zooms), pretrain_steps=args.pretrain_steps)):
            figures = run_measured(train + ["--stop-after", stage], env, args.out / f"train-{stage}.log")
            report["train"].append({"stage": stage, **figures})
            print(json.dumps(report["train"][-1]), flush=True)
        for deepest in zooms:
            search = [z for z in zooms if z <= deepest]
            command = [sys.executable, "-m", "training.maptiles.evaluate", "--checkpoint", str(run / "model.pt"),
                       "--tiles", url, "--zooms", ",".join(map(str, search)), "--k", str(args.k), "--test-size",
                       str(args.test_size), "--flat-max-tiles", "0", "--out", str(args.out / f"eval-z{deepest}")]
            figures = run_measured(command, env, args.out / f"eval-z{deepest}.log")
            metrics = json.loads((args.out / f"eval-z{deepest}" / "results.json").read_text())["metrics"]
            report["evaluate"].append({"deepest_zoom": deepest, "tiles_encoded": metrics["tiles_encoded"], **figures,
                                       "searches_rss_mb_at_start": metrics["memory"]["rss_mb_before_searches"],
                                       "searches_peak_rss_mb": metrics["memory"]["peak_rss_mb_during_searches"]})
            print(json.dumps(report["evaluate"][-1]), flush=True)
        with urllib.request.urlopen(url.split("/{z}")[0] + "/stats", timeout=10) as answer:
            report["server"] = json.loads(answer.read())
    finally:
        server.terminate()
        server.wait(timeout=10)
    manifest = json.loads((run / "manifest.json").read_text())
    history = {h["stage"]: h for h in manifest["history"]}
    for row in report["train"]:
        stage = history.get(row["stage"], {})
        row.update({"tiles_read": stage.get("tiles_read"), "loop_rss_mb_at_start": stage.get("rss_mb_at_start"),
                    "loop_peak_rss_mb": stage.get("peak_rss_mb")})
    base_train = next(r["peak_rss_mb"] for r in report["train"] if r["stage"] == "level-6")
    base_eval = next(r["peak_rss_mb"] for r in report["evaluate"] if r["deepest_zoom"] == 6)
    report["train_ratio_to_zoom6"] = {r["stage"]: round(r["peak_rss_mb"] / base_train, 3) for r in report["train"]}
    report["evaluate_ratio_to_zoom6"] = {r["deepest_zoom"]: round(r["peak_rss_mb"] / base_eval, 3)
                                         for r in report["evaluate"]}
    deep_train = [r for r in report["train"] if r["stage"].startswith("level-") and int(r["stage"][6:]) >= 6]
    deep_eval = [r for r in report["evaluate"] if r["deepest_zoom"] >= 6]
    report["flat_within_1_5x"] = all(r["peak_rss_mb"] <= 1.5 * base_train for r in deep_train) and \
        all(r["peak_rss_mb"] <= 1.5 * base_eval for r in deep_eval)
    report["load_average_end"] = machine()["load_average"]
    emit(report, args.json)


if __name__ == "__main__":
    main()
