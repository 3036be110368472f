"""Same top places on every engine: `geoapp predict --runtime torch|onnx|openvino --format json` on the shared
photos (fp32), one process per family and engine, and the top-5 places of each photo compared with torch's.

    python benchmarks/bench_runtime_parity.py [--families satworld maptiles geoclip-random] [--json OUT]

`geoclip-random` is GeoCLIP's ViT-L/14 with RANDOM backbone weights (the real ones cannot be downloaded here):
parity of the engines does not depend on the weight values, the places themselves mean nothing. The first run of
an engine exports the tower once (ViT-L/14: a few minutes, 1.2 GB in $GEOAPP_CACHE_DIR/onnx) and checks it; an
export that fails the parity gate is not used (torch runs and the record's runtime_note says so), which this
script reports as a failure of that engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, bench_parser, emit, machine

FAMILIES = {
    "satworld": ["--model", "satworld"],
    "maptiles": ["--model", "maptiles"],
    "geoclip-random": ["--model", "geoclip", "--backbone-weights", "random"],
}
ENGINES = ("torch", "onnx", "openvino")
PHOTOS = REPO.parent / "shared" / "data" / "streetview"


def _predict(model: list[str], engine: str, photos: list[Path]) -> tuple[list[dict], float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "geoapp", "predict", *model, "--runtime", engine, "--no-worker",
                             "--top-k", "5", "--format", "json", *map(str, photos)], cwd=REPO, capture_output=True,
                            text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{engine} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(result.stdout), time.perf_counter() - start


def _places(record: dict) -> list[tuple[float, float]]:
    return [(round(c["lat"], 4), round(c["lon"], 4)) for c in record.get("candidates") or []]


def main() -> None:
    parser = bench_parser(__doc__.split("\n\n")[0], device=False)
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    args = parser.parse_args()
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no photos in {PHOTOS}")
    results = {"machine": machine("cpu"), "photos": [p.name for p in photos], "families": {}}
    for family in args.families:
        rows = {}
        for engine in ENGINES:
            records, seconds = _predict(FAMILIES[family], engine, photos)
            rows[engine] = {"seconds": round(seconds, 1), "records": records,
                            "runtime": sorted({str((r.get("model") or {}).get("runtime")) for r in records}),
                            "notes": sorted({str((r.get("model") or {}).get("runtime_note")) for r in records})}
        base = [_places(r) for r in rows["torch"]["records"]]
        summary = {}
        for engine in ENGINES[1:]:
            other = [_places(r) for r in rows[engine]["records"]]
            summary[engine] = {
                "engine_used": rows[engine]["runtime"], "runtime_notes": rows[engine]["notes"],
                "top1_same": sum(a[:1] == b[:1] for a, b in zip(base, other)),
                "top5_same": sum(a == b for a, b in zip(base, other)), "photos": len(base),
                "seconds": rows[engine]["seconds"], "torch_seconds": rows["torch"]["seconds"]}
            print(f"{family} {engine}: top-1 same {summary[engine]['top1_same']}/{len(base)}, top-5 same "
                  f"{summary[engine]['top5_same']}/{len(base)}, engine used {rows[engine]['runtime']}", file=sys.stderr)
        results["families"][family] = summary
    results["load_average_end"] = machine("cpu")["load_average"]
    emit(results, args.json)


if __name__ == "__main__":
    main()
