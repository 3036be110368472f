"""Batch throughput: the local engine versus the Ray engine with 1 and 2 workers, in one run.

Models: GeoCLIP on the real ViT-L/14 architecture with random backbone weights (``--backbone-weights
random``: speed does not depend on the values) and SatWorld (its shipped weights; random if absent).
Images: the first N photos of ../shared/data/im2gps3k-dev. For each engine it reports

* busy images/s: images / (first batch start .. last batch end), i.e. without cluster start-up and
  model loading (what a long run converges to);
* end-to-end seconds: from the call to the last record, start-up and model loading included.

Then a projection for 10 M images from the measured per-image costs: this CPU node, one GPU, N GPUs
(the GPU figure uses ``--gpu-ms-per-image``, an assumption, unless ``--device cuda`` measured it; with
``--device cuda`` each Ray worker gets 1 GPU).

    python benchmarks/bench_ray.py [--vitl-images 16] [--satworld-images 32] [--device cpu|cuda] [--json OUT]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, bench_parser, emit, load_average, machine, machine_line

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
PHOTOS = REPO.parent / "shared" / "data" / "im2gps3k-dev"
TEN_MILLION = 10_000_000


def configs(args) -> list[dict]:
    from geoapp.families import LoadOptions, registry

    satworld = registry.get("satworld")
    sat_random = bool(satworld.missing_files())
    return [
        {"name": "GeoCLIP ViT-L/14 (random weights)", "family": "geoclip", "images": args.vitl_images,
         "batch": args.vitl_batch, "load": LoadOptions(device=args.device, backbone_weights="random")},
        {"name": f"SatWorld ({'random' if sat_random else 'shipped'} weights)", "family": "satworld",
         "images": args.satworld_images, "batch": args.satworld_batch,
         "load": LoadOptions(device=args.device, backbone_weights="random" if sat_random else None)},
    ]


def run_local(config: dict, paths: list[str]) -> dict:
    import torch

    from geoapp.engine.inputs import load_family, predict_inputs
    from geoapp.families import PredictOptions, registry

    start = time.perf_counter()
    family = load_family(registry.get(config["family"]), config["load"])
    family.prepare()
    options = PredictOptions.build(top_k=5, batch_size=config["batch"])
    busy = time.perf_counter()
    predictions = predict_inputs(family, paths, options)
    end = time.perf_counter()
    assert len(predictions) == len(paths) and all(p.ok for p in predictions)
    del family
    return {"engine": f"local ({torch.get_num_threads()} threads)", "busy_s": end - busy, "wall_s": end - start}


def run_ray(config: dict, paths: list[str], workers: int, gpus: float) -> dict:
    from geoapp.engine import ray_engine
    from geoapp.engine.output import PartsOutput, read_records
    from geoapp.families import PredictOptions

    job = ray_engine.RayJob(family=config["family"], load=config["load"],
                            predict=PredictOptions.build(top_k=5, batch_size=config["batch"]), workers=workers,
                            cpus_per_worker=1, gpus_per_worker=gpus, batch_size=config["batch"])
    with tempfile.TemporaryDirectory() as folder:
        output = PartsOutput(Path(folder) / "out.parquet")
        start = time.perf_counter()
        summary = ray_engine.run(paths, job, output)
        wall = time.perf_counter() - start
        records = read_records(Path(folder) / "out.parquet")
    assert len(records) == len(paths) and all(r["ok"] for r in records)
    # Steady state: from the moment every worker has started its first batch (all models loaded, nobody
    # still loading on a shared core) to the last batch's end, counting the images of batches started then.
    batches = summary["batches"]
    ready = max(min(b[1] for b in batches if b[0] == pid) for pid in {b[0] for b in batches})
    steady = [b for b in batches if b[1] >= ready]
    steady_s = max(b[2] for b in steady) - ready
    return {"engine": f"ray, {workers} worker{'s' if workers > 1 else ''} x 1 CPU", "busy_s": summary["busy_s"],
            "wall_s": wall, "steady_images": sum(b[3] for b in steady), "steady_s": steady_s,
            "workers_seen": len({b[0] for b in batches})}


def main() -> None:
    parser = bench_parser(__doc__)  # --json, --device (cuda: Ray workers get 1 GPU each)
    parser.add_argument("--vitl-images", type=int, default=16)
    parser.add_argument("--vitl-batch", type=int, default=2)
    parser.add_argument("--satworld-images", type=int, default=32)
    parser.add_argument("--satworld-batch", type=int, default=4)
    parser.add_argument("--gpu-ms-per-image", type=float, default=5.0,
                        help="ASSUMED ViT-L/14 cost per image on one GPU when none is measured (default 5 ms: "
                             "A100/H100-class, fp32/TF32, batches of 64; decoding on enough CPU cores)")
    parser.add_argument("--gpus", type=int, default=8, help="N for the N-GPU projection")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from geoapp.engine import ray_engine

    photos = sorted(str(p) for p in PHOTOS.glob("*.jpg"))
    if not photos:
        sys.exit(f"no photos in {PHOTOS}")
    cuda = args.device.startswith("cuda")
    cores = os.cpu_count() or 1
    report = {"machine": machine(args.device)}
    print(f"machine: {machine_line(args.device)} (other processes share these cores: scaling needs them idle)",
          flush=True)
    results = []
    ray_engine.connect(None, num_cpus=cores)
    try:
        for config in configs(args):
            paths = photos[:config["images"]]
            rows = [run_local(config, paths)]
            print(config["name"], rows[-1], flush=True)
            for workers in (1, 2):
                rows.append(run_ray(config, paths, workers, 1.0 if cuda else 0.0))
                print(config["name"], rows[-1], flush=True)
            for row in rows:
                row["busy_img_s"] = len(paths) / row["busy_s"]
                row["steady_img_s"] = row["steady_images"] / row["steady_s"] if row.get("steady_s") else \
                    row["busy_img_s"]
            results.append({"model": config["name"], "images": len(paths), "batch": config["batch"], "rows": rows})
    finally:
        ray_engine.disconnect()

    report["load_average_end"] = load_average()
    at_end = machine_line(args.device)
    print(f"\n{at_end} (1/5/15 min, at the end)\n")
    print("| model | images | engine | steady images/s (all workers loaded) | busy images/s (first batch to last) "
          "| end-to-end s (start-up + loading included) |")
    print("|---|---|---|---|---|---|")
    for result in results:
        for row in result["rows"]:
            print(f"| {result['model']} | {result['images']} | {row['engine']} | {row['steady_img_s']:.3f} | "
                  f"{row['busy_img_s']:.3f} | {row['wall_s']:.1f} |")
    for result in results:
        one, two = result["rows"][1]["steady_img_s"], result["rows"][2]["steady_img_s"]
        result["scaling_2_vs_1"] = two / one
        print(f"{result['model']}: 2 Ray workers / 1 = {two / one:.2f}x (target >= 1.6x); "
              f"2 workers / local engine = {two / result['rows'][0]['steady_img_s']:.2f}x")

    vitl = results[0]
    node_rate = max(row["steady_img_s"] for row in vitl["rows"])
    node_hours = TEN_MILLION / node_rate / 3600
    if cuda:
        gpu_ms, gpu_note = 1000 / vitl["rows"][1]["steady_img_s"], "MEASURED here (1 Ray worker on 1 GPU)"
    else:
        gpu_ms, gpu_note = args.gpu_ms_per_image, "ASSUMED (no GPU here), --gpu-ms-per-image"
    gpu_hours = TEN_MILLION * gpu_ms / 1000 / 3600
    projection = {
        "this_node_img_s": node_rate, "this_node_hours": node_hours, "gpu_ms_per_image": gpu_ms,
        "gpu_note": gpu_note, "one_gpu_hours": gpu_hours, "gpus": args.gpus, "n_gpu_hours": gpu_hours / args.gpus,
    }
    print("\nProjection, 10 M images with GeoCLIP ViT-L/14 (cost per image, no start-up):")
    print(f"  this CPU node ({at_end}): {node_rate:.3f} images/s -> {node_hours:,.0f} h "
          f"({node_hours / 24:,.0f} days)")
    print(f"  one GPU: {gpu_ms:.1f} ms/image ({gpu_note}) -> {gpu_hours:,.1f} h, "
          f"if decoding keeps up (each Ray worker decodes its own images; give it the CPUs)")
    print(f"  {args.gpus} GPUs (one Ray worker each, linear scaling assumed): {gpu_hours / args.gpus:,.1f} h")
    emit({**report, "results": results, "projection": projection}, args.json)


if __name__ == "__main__":
    main()
