"""CPU inference engines for each family's frozen image tower: torch fp32, ONNX Runtime fp32, OpenVINO fp32 and
int8 on each engine, on the same photos, in one run.

Per row: median ms per image at batch 1, images/s at batch 8 (median of the batch times), first-call ms (the first
forward after the engine is opened), load s (family + engine, exports already cached) and peak RSS of the process
(each row runs in its own process so peaks do not mix; the process holds the family's torch weights too, as the app
does for Grad-CAM). Only the image tower is timed: everything else of a prediction is the same for every engine.

Families: GeoCLIP with a random-weight ViT-L/14 (the real weights cannot be downloaded here; latency does not depend
on the values; its int8 row has no quality gate: speed only), SatWorld and the map-tile demo (shipped weights;
their int8 rows say whether the gate passed: ``python -m geoapp runtime gate --model satworld --precision int8``).

    python benchmarks/bench_runtime.py [--families geoclip,satworld,maptiles] [--runs 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, bench_parser, emit, load_average, machine

SHARED = REPO.parent / "shared" / "data"
FAMILIES = {  # key -> LoadOptions keywords
    "geoclip": {"backbone_weights": "random"},
    "satworld": {},
    "maptiles": {},
}
ROWS = (("torch", "fp32"), ("onnx", "fp32"), ("openvino", "fp32"), ("onnx", "int8"), ("openvino", "int8"))


def photos(count: int = 8) -> list[Path]:
    found = sorted((SHARED / "streetview").glob("*.jpg")) + sorted((SHARED / "im2gps3k-dev").glob("*.jpg"))
    if len(found) < count:
        raise SystemExit(f"needs ../shared/data photos beside the checkout ({SHARED})")
    return found[:count]


def load_family(key: str):
    from geoapp.engine.inputs import load_family as load
    from geoapp.families import LoadOptions, registry

    return load(registry.get(key), LoadOptions(device="cpu", **FAMILIES[key]))  # random weights: seeded


def int8_file(source, engine: str) -> tuple[Path, str]:
    """The gated int8 model, else (GeoCLIP random weights) one quantised here for timing only."""
    from geoapp.runtime.export import ensure_fp32, int8_path
    from geoapp.runtime.gates import stored_gate
    from geoapp.runtime.images import tower_images
    from geoapp.runtime.quantize import quantize_int8

    gate = stored_gate(source, engine)
    if gate is not None:
        status = ("gate passed" if gate.passed else "GATE FAILED") + (f" ({gate.reason()})")
        return Path(gate.int8_file), status
    path = int8_path(source, "bench")  # one quantisation for both engines (the gate makes one per engine)
    if not path.is_file():
        quantize_int8(ensure_fp32(source), path, tower_images(source, None, 32).pixels)
    return path, "no gate (random weights: speed only)"


def worker(key: str, engine: str, precision: str, runs: int) -> dict:
    """One row, in this process."""
    import torch

    from geoapp.imaging import load_image
    from geoapp.runtime.engines import TorchTower, open_engine
    from geoapp.runtime.request import RuntimeRequest
    from geoapp.runtime.towers import image_tower

    start = time.perf_counter()
    family = load_family(key)
    source = family.tower.source
    status = ""
    if engine == "torch":
        tower = TorchTower(source)
    elif precision == "fp32":
        tower = image_tower(source, RuntimeRequest(engine), "cpu")
        status = tower.note or ""
        if tower.runtime == "torch":
            return {"family": key, "engine": engine, "precision": precision, "skipped": status}
    else:
        path, status = int8_file(source, engine)
        tower = open_engine(engine, source, path, "int8")
    load_s = time.perf_counter() - start
    pixels = torch.cat([source.preprocess(load_image(p, min_side=source.image_size).image) for p in photos()])
    begin = time.perf_counter()
    tower(pixels[:1])
    first_ms = (time.perf_counter() - begin) * 1000
    one, eight = [], []
    for _ in range(runs):
        for i in range(len(pixels)):
            begin = time.perf_counter()
            tower(pixels[i:i + 1])
            one.append((time.perf_counter() - begin) * 1000)
        begin = time.perf_counter()
        tower(pixels[:8])
        eight.append(time.perf_counter() - begin)
    return {"family": key, "engine": engine, "precision": precision, "status": status, "load_s": round(load_s, 2),
            "first_call_ms": round(first_ms, 1), "batch1_ms": round(statistics.median(one), 2),
            "batch8_img_s": round(8 / statistics.median(eight), 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "threads": torch.get_num_threads(), "timed_batch1": len(one), "timed_batch8": len(eight)}


def prepare(key: str) -> None:
    """Exports, parity verdicts and int8 files, before anything is timed (their cost is not part of a row)."""
    from geoapp.runtime.engines import installed_engines
    from geoapp.runtime.towers import verdict

    import gc

    source = load_family(key).tower.source
    passed = []
    for engine in installed_engines():
        result, _ = verdict(source, engine)
        print(f"  {key} {engine}: parity {'passed' if result.passed else 'REFUSED'} ({result.reason})", file=sys.stderr)
        passed += [engine] if result.passed else []
    source.module = None  # the digest is known: free the torch weights before quantising (ViT-L/14: 1.2 GB)
    gc.collect()
    for engine in passed:
        int8_file(source, engine)


def table(rows: list[dict]) -> str:
    lines = ["| family | engine | precision | batch 1 ms/img | × torch | batch 8 img/s | × torch | first call ms | "
             "load s | peak RSS GB | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {r["family"]: r for r in rows if r["engine"] == "torch" and "batch1_ms" in r}
    for r in rows:
        if "batch1_ms" not in r:
            lines.append(f"| {r['family']} | {r['engine']} | {r['precision']} | – | | | | | | | {r.get('skipped')} |")
            continue
        b = base.get(r["family"])
        x1 = f"{b['batch1_ms'] / r['batch1_ms']:.2f}" if b else ""
        x8 = f"{r['batch8_img_s'] / b['batch8_img_s']:.2f}" if b else ""
        lines.append(f"| {r['family']} | {r['engine']} | {r['precision']} | {r['batch1_ms']:.1f} | {x1} | "
                     f"{r['batch8_img_s']:.1f} | {x8} | {r['first_call_ms']:.0f} | {r['load_s']:.1f} | "
                     f"{r['peak_rss_gb']:.2f} | {r.get('status', '')[:90]} |")
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, device=False)  # the exported engines run on the CPU
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--rows", default=",".join(f"{e}:{p}" for e, p in ROWS), help="engine:precision,...")
    parser.add_argument("--runs", type=int, default=5, help="passes over the 8 photos per row")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every row (the engines use as many); default: torch's (the cores)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # family:engine:precision
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        key, engine, precision = args.worker.split(":")
        print(json.dumps(worker(key, engine, precision, args.runs)))
        return
    if args.prepare:
        prepare(args.prepare)
        return
    import torch  # so that machine() records torch's version and threads

    from geoapp.runtime.store import machine as engine_versions

    results = {"command": "python " + " ".join(sys.argv), "machine": {**machine(), **engine_versions()},
               "load_before": load_average(),
               "photos": [p.name for p in photos()], "rows": []}
    for key in args.families.split(","):
        print(f"{key}: preparing exports, parity checks and int8 files ...", file=sys.stderr)
        subprocess.run([sys.executable, __file__, "--prepare", key], check=True)
        for row in args.rows.split(","):
            engine, precision = row.split(":")
            threads = ["--threads", str(args.threads)] if args.threads else []
            out = subprocess.run([sys.executable, __file__, "--worker", f"{key}:{engine}:{precision}",
                                  "--runs", str(args.runs), *threads], check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["load_during"] = load_average()
            results["rows"].append(result)
            print(json.dumps(result), file=sys.stderr)
    results["load_after"] = load_average()
    emit(results, args.json)
    print(table(results["rows"]))
    print(f"\nmachine: {results['machine']}\nload average before {results['load_before']}, after "
          f"{results['load_after']}")


if __name__ == "__main__":
    main()
