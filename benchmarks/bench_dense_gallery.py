"""Global dense gallery: memory when loaded, index query latency, recall@10 of IVF-PQ vs exact search.

    python benchmarks/bench_dense_gallery.py [--gallery DIR] [--queries-csv CSV] [--queries 100]
                                             [--exact-queries 100] [--json OUT]

DIR: a gallery built by ``python -m geoapp gallery build-dense`` (default: ``$GEOAPP_CACHE_DIR/galleries/dense``).
Queries are the normalised GeoCLIP location embeddings (float32 encoder, the published weights) of benchmark
ground-truth coordinates (default Im2GPS3k): "which gallery points are nearest to this place's embedding",
what a prediction asks of the index when the image embedding lands near a location embedding. Timed:
opening the gallery (coords memmap + index read + embeddings memmap attached), ``VectorIndex.search`` for
one query at k = 10 and at k = 4096 (what the GeoCLIP locator retrieves per image), the resident memory
(VmRSS, and its anonymous / file-backed parts) after loading and after the searches, and recall@10 against
exact inner-product search over all float16 embeddings (read in chunks).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import REPO, bench_parser, emit, load_average, machine


def memory_mb() -> dict[str, float]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            values[key] = round(int(line.split()[1]) / 1024, 1)
    return values


def query_embeddings(csv_path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    from geoapp.galleries.gallery import Gallery
    from geoapp.models.geoclip import load_location_encoder

    coords = Gallery.from_csv(csv_path).coords
    coords = coords[np.linspace(0, len(coords) - 1, min(count, len(coords))).astype(int)]
    encoder, _ = load_location_encoder()
    with torch.inference_mode():
        embeddings = torch.nn.functional.normalize(encoder(torch.from_numpy(coords)), dim=-1).numpy()
    return coords, np.ascontiguousarray(embeddings, dtype=np.float32)


def main(argv=None) -> int:
    from geoapp.galleries import dense as dense_gallery
    from dataclasses import replace

    from geoapp.index import exact_search, load_index
    from geoapp.index.core import with_nprobe

    p = bench_parser(__doc__, device=False)
    p.add_argument("--gallery", default=None)
    p.add_argument("--queries-csv", default=str(REPO.parent / "shared/data/benchmarks/im2gps3k_places365.csv"))
    p.add_argument("--queries", type=int, default=100, help="queries timed (one at a time)")
    p.add_argument("--exact-queries", type=int, default=100, help="queries for recall@10 vs exact (0: skip)")
    p.add_argument("--sweep", action="append", default=None, metavar="NPROBExRERANK",
                   help="also measure recall@10 with these search settings, e.g. 32x32 64x32 (repeatable)")
    args = p.parse_args(argv)

    folder = Path(args.gallery) if args.gallery else dense_gallery.dense_folder("dense")
    dense_gallery.check_built(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    _, queries = query_embeddings(Path(args.queries_csv), max(args.queries, args.exact_queries))
    out = {"gallery": str(folder), "points": manifest["points"], "machine": machine(),
           "before_load_mb": memory_mb()}

    start = time.perf_counter()
    coords = np.load(folder / "coords.npy", mmap_mode="r")
    embeddings = np.load(folder / dense_gallery.EMBEDDINGS_FILE, mmap_mode="r")
    index = load_index(folder / dense_gallery.INDEX_FILE, vectors=embeddings)
    out["load_s"] = round(time.perf_counter() - start, 2)
    out["index"] = index.spec.describe()
    out["after_load_mb"] = memory_mb()
    assert len(coords) == len(index)

    index.search(queries[:1], 10)  # warm-up
    for k in (10, 4096):
        times = []
        for q in queries[:args.queries]:
            start = time.perf_counter()
            index.search(q[None], k)
            times.append((time.perf_counter() - start) * 1000)
        out[f"search_ms_k{k}"] = {"median": round(statistics.median(times), 2), "min": round(min(times), 2),
                                  "p90": round(float(np.percentile(times, 90)), 2)}
        print(f"search k={k}: median {statistics.median(times):.1f} ms", file=sys.stderr)
    out["after_search_mb"] = memory_mb()

    if args.exact_queries:
        sample = queries[:args.exact_queries]
        start = time.perf_counter()
        _, exact_ids = exact_search(embeddings, sample, 10)
        out["exact_search_s"] = round(time.perf_counter() - start, 1)
        _, approx_ids = index.search(sample, 10)
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_ids, exact_ids)])
        top1 = float(np.mean(approx_ids[:, 0] == exact_ids[:, 0]))
        out["recall_at_10"] = round(float(recall), 4)
        out["top1_agreement"] = round(top1, 4)
        print(f"recall@10 {recall:.4f}, top-1 agreement {top1:.4f} ({len(sample)} queries; exact "
              f"{out['exact_search_s']} s)", file=sys.stderr)
        # the same index searched with other nprobe / re-ranking (both are search-time settings)
        out["sweep"] = []
        for setting in args.sweep or ():
            nprobe, rerank = (int(v) for v in setting.split("x"))
            variant = with_nprobe(index, nprobe)
            variant.spec = replace(variant.spec, refine=rerank)
            start = time.perf_counter()
            _, ids = variant.search(sample, 10)
            ms = (time.perf_counter() - start) * 1000 / len(sample)
            r = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact_ids)]))
            out["sweep"].append({"nprobe": nprobe, "rerank": rerank, "recall_at_10": round(r, 4),
                                 "ms_per_query_batched": round(ms, 1)})
            print(f"nprobe {nprobe}, re-rank {rerank}x: recall@10 {r:.4f}, {ms:.1f} ms/query (batch of "
                  f"{len(sample)})", file=sys.stderr)
    out["load_average_end"] = load_average()
    emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
