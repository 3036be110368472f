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

import statistics
import tempfile
import time
from pathlib import Path

from _common import REPO, bench_parser, emit, load_average, machine, machine_line, pick_device, sync, time_calls

DEFAULT_IMAGE = REPO.parent / "shared" / "data" / "im2gps3k-dev" / "1008845063_ace4ef829f_1204_97522422@N00.jpg"


def main() -> None:
    parser = bench_parser(__doc__, default_device="auto")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--runs", type=int, default=None, help="timed runs per method (default 3 on CPU, 30 on GPU)")
    parser.add_argument("--reference-runs", type=int, default=None)
    parser.add_argument("--refine-km", type=float, default=None,
                        help="geoapp's fine refinement radius (default: the family's default, off for GeoCLIP)")
    args = parser.parse_args()

    import torch

    load_start = load_average()
    device = pick_device(args.device)
    runs = args.runs or (30 if device.type == "cuda" else 3)
    ref_runs = args.reference_runs or runs
    torch.manual_seed(0)

    from geoclip import GeoCLIP as ReferenceGeoCLIP

    from geoapp import Geolocator

    results: dict = {"machine": machine(str(device)), "device": str(device), "image": Path(args.image).name}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        ours = Geolocator.load(device=device, backbone_weights="random", cache_dir=cache)
        results["ours_load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        ours.candidate_set()  # one-time: encode + cache the 100K gallery
        sync(device)
        results["ours_gallery_encoding_s"] = time.perf_counter() - start
        refine = {} if args.refine_km is None else {"refine_km": args.refine_km}
        for _ in range(2):  # warm-up (CUDA kernels, allocator)
            ours.predict(args.image, top_k=5, **refine)
            ours.predict(args.image, top_k=5, tencrop=True, **refine)
        results["ours_refinement"] = ours.predict(args.image, top_k=5, **refine).parameters.get("refinement")
        ours_cpu: list[float] = []
        ours_times = time_calls(lambda: ours.predict(args.image, top_k=5, **refine), runs, device, ours_cpu)
        ours_tencrop = time_calls(lambda: ours.predict(args.image, top_k=5, tencrop=True, **refine), runs, device)
        ours = None  # frees the model before the reference loads (del would confuse the lambdas above for ruff)

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
    print(f"machine: {machine_line(str(device))}")
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
        emit(results, args.json)


if __name__ == "__main__":
    main()
