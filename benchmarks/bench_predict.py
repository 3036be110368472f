"""Single-image latency: geoapp's Geolocator.predict versus the reference `geoclip` package's predict.

Both run with random CLIP ViT-L/14 backbone weights (the real weights cannot be downloaded
here; latency does not depend on the values) and the real GeoCLIP heads and 100K gallery,
on the same image, same machine, same process. geoapp's one-time gallery encoding (cached
on disk afterwards) is timed separately.

    python benchmarks/bench_predict.py [--device cpu|cuda] [--image PATH] [--runs N] [--refine-km KM] [--json OUT]

geoapp runs with the family's defaults (fine refinement off for GeoCLIP) unless ``--refine-km`` is given.
The machine's load average is recorded at the start and the end, and the process CPU time of each
call beside its wall time (on a shared machine CPU time is the fairer figure).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "im2gps3k-dev" / "1008845063_ace4ef829f_1204_97522422@N00.jpg"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, runs: int, device: torch.device, cpu: list[float] | None = None) -> list[float]:
    """Wall ms of each call; the process CPU ms of each call go to ``cpu`` when given."""
    times = []
    for _ in range(runs):
        _sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - start_cpu) * 1000)
    return times


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    import os

    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--runs", type=int, default=None, help="timed runs per method (default 3 on CPU, 30 on GPU)")
    parser.add_argument("--reference-runs", type=int, default=None)
    parser.add_argument("--refine-km", type=float, default=None,
                        help="geoapp's fine refinement radius (default: the family's default, off for GeoCLIP)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    from _common import load_average

    load_start = load_average()
    device = torch.device(args.device)
    runs = args.runs or (30 if device.type == "cuda" else 3)
    ref_runs = args.reference_runs or runs
    torch.manual_seed(0)

    from geoclip import GeoCLIP as ReferenceGeoCLIP

    from geoapp import Geolocator

    results: dict = {"machine": machine_description(device), "device": str(device), "image": Path(args.image).name}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        ours = Geolocator.load(device=device, backbone_weights="random", cache_dir=cache)
        results["ours_load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        ours.candidate_set()  # one-time: encode + cache the 100K gallery
        _sync(device)
        results["ours_gallery_encoding_s"] = time.perf_counter() - start
        refine = {} if args.refine_km is None else {"refine_km": args.refine_km}
        for _ in range(2):  # warm-up (CUDA kernels, allocator)
            ours.predict(args.image, top_k=5, **refine)
            ours.predict(args.image, top_k=5, tencrop=True, **refine)
        results["ours_refinement"] = ours.predict(args.image, top_k=5, **refine).parameters.get("refinement")
        ours_cpu: list[float] = []
        ours_times = time_calls(lambda: ours.predict(args.image, top_k=5, **refine), runs, device, ours_cpu)
        ours_tencrop = time_calls(lambda: ours.predict(args.image, top_k=5, tencrop=True, **refine), runs, device)
        del ours

    reference = ReferenceGeoCLIP(from_pretrained=True, clip_pretrained=False).to(device).eval()
    reference.predict(args.image, top_k=5)  # warm-up
    ref_cpu: list[float] = []
    ref_times = time_calls(lambda: reference.predict(args.image, top_k=5), ref_runs, device, ref_cpu)

    med = statistics.median
    results.update({
        "runs": runs, "reference_runs": ref_runs,
        "reference_predict_ms": med(ref_times),
        "ours_predict_ms": med(ours_times),
        "ours_tencrop_ms": med(ours_tencrop),
        "speedup": med(ref_times) / med(ours_times),
        "tencrop_over_single": med(ours_tencrop) / med(ours_times),
        "reference_cpu_ms": med(ref_cpu), "ours_cpu_ms": med(ours_cpu), "speedup_cpu": med(ref_cpu) / med(ours_cpu),
        "all_ms": {"reference": ref_times, "ours": ours_times, "ours_tencrop": ours_tencrop},
        "load_average_start": load_start, "load_average_end": load_average(),
    })
    print(f"machine: {results['machine']}")
    print(f"reference geoclip.predict   median {results['reference_predict_ms']:9.1f} ms  ({ref_runs} runs)")
    print(f"geoapp Geolocator.predict   median {results['ours_predict_ms']:9.1f} ms  ({runs} runs)")
    print(f"geoapp predict, TenCrop     median {results['ours_tencrop_ms']:9.1f} ms  ({runs} runs)")
    print(f"speed-up {results['speedup']:.1f}x wall, {results['speedup_cpu']:.1f}x CPU time "
          f"(CPU ms: reference {results['reference_cpu_ms']:.0f}, ours {results['ours_cpu_ms']:.0f}); "
          f"TenCrop / single crop {results['tencrop_over_single']:.2f}x")
    print(f"refinement: {results['ours_refinement'] or 'off'}; load average {load_start} -> {results['load_average_end']}")
    print(f"one-time gallery encoding (then cached on disk): {results['ours_gallery_encoding_s']:.1f} s; "
          f"model load {results['ours_load_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
