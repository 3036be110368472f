"""CLI cold start and the local worker: wall time of `geoapp --help`, `geoapp models`, and N sequential
`geoapp predict PHOTO` calls (one photo per call, the same photos) in-process (`--no-worker`) and through a local
worker (`geoapp serve`), for each family asked for; the worker's start (model load + warm-up) is timed apart.
Each call is a fresh `python -m geoapp` process, as an analyst's shell runs it. The outputs of the two ways are
compared (JSON without the timings) and the result is part of the figures.

    python benchmarks/bench_cold_start.py [--calls 10] [--families satworld geoclip-random] [--json OUT]

`geoclip-random` is GeoCLIP with its ViT-L/14 architecture and RANDOM backbone weights (the real ones cannot be
downloaded here; load and forward cost do not depend on the values). The in-process calls run before the worker
starts (after one untimed call that fills the caches), so at most one copy of a model is in memory at a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, bench_parser, emit, machine

FAMILIES = {
    "satworld": ["--model", "satworld"],
    "geoclip-random": ["--model", "geoclip", "--backbone-weights", "random"],
    "geoclip-tiny": ["--model", "geoclip", "--backbone", "tiny-test", "--backbone-weights", "random"],
}
PHOTOS = REPO.parent / "shared" / "data" / "streetview"
READY_BOUND_S = 1800.0


def _run(argv: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "geoapp", *argv], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=READY_BOUND_S)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`geoapp {' '.join(argv)}` failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds, result


def _without_timings(stdout: str) -> list[dict]:
    items = json.loads(stdout)
    for item in items:
        item.pop("timings_ms", None)
    return items


def _calls(model: list[str], photos: list[Path], env: dict, extra: list[str]) -> tuple[list[float], list, list]:
    seconds, outputs, notes = [], [], []
    for photo in photos:
        took, result = _run(["predict", *model, str(photo), *extra], env)
        seconds.append(round(took, 2))
        outputs.append(_without_timings(result.stdout))
        notes.append("Using the local worker" in result.stderr and "predicting in this process" not in result.stderr)
    return seconds, outputs, notes


def _start_worker(model: list[str], env: dict, log: Path) -> tuple[subprocess.Popen, float]:
    start = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "geoapp", "serve", *model, "--idle-timeout", "600"],
                                   cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    state = Path(env["GEOAPP_SERVE_DIR"]) / "default.json"
    while not state.exists():  # ready = its state file is written
        if process.poll() is not None or time.perf_counter() - start > READY_BOUND_S:
            process.kill()
            raise SystemExit(f"the worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process, time.perf_counter() - start


def bench_family(name: str, photos: list[Path], env: dict, folder: Path) -> dict:
    model = FAMILIES[name]
    _run(["predict", *model, str(photos[0]), "--no-worker"], env)  # untimed: caches (gallery embeddings) filled
    local_s, local_out, _ = _calls(model, photos, env, ["--no-worker"])
    process, ready_s = _start_worker(model, env, folder / f"{name}.log")
    try:
        served_s, served_out, used = _calls(model, photos, env, [])
    finally:
        _run(["serve", "--stop"], env)
        process.wait(timeout=300)
    return {"family": name, "arguments": model, "calls": len(photos),
            "in_process_total_s": round(sum(local_s), 1), "in_process_per_call_s": local_s,
            "worker_start_s": round(ready_s, 1), "worker_total_s": round(sum(served_s), 1),
            "worker_per_call_s": served_s, "every_call_used_the_worker": all(used),
            "speed_up": round(sum(local_s) / sum(served_s), 1),
            "speed_up_counting_worker_start": round(sum(local_s) / (sum(served_s) + ready_s), 1),
            "same_outputs": local_out == served_out}


def main() -> None:
    parser = bench_parser(__doc__, device=False)
    parser.add_argument("--calls", type=int, default=10, help="sequential predict calls per way (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of --help and models (median; default 3)")
    parser.add_argument("--families", nargs="*", default=["satworld", "geoclip-random"], choices=sorted(FAMILIES),
                        help="families to time (none: only --help and models)")
    args = parser.parse_args()
    photos = sorted(PHOTOS.glob("*.jpg"))
    photos = (photos * (1 + args.calls // max(1, len(photos))))[:args.calls]
    if not photos:
        raise SystemExit(f"no photos in {PHOTOS}")
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "GEOAPP_SERVE_DIR": str(folder / "serve")}
        results = {"machine_before": machine(), "photos": [p.name for p in photos]}
        for what, argv in (("help", ["--help"]), ("predict_help", ["predict", "--help"]), ("models", ["models"])):
            runs = [round(_run(argv, env)[0], 2) for _ in range(args.repeats)]
            results[what] = {"median_s": statistics.median(runs), "runs_s": runs}
        results["families"] = [bench_family(name, photos, env, folder) for name in args.families]
    results["machine_after"] = machine()
    emit(results, args.json)


if __name__ == "__main__":
    main()
