"""Vector index: build time, memory, query latency and recall@10 of exact vs FAISS flat vs IVF-Flat vs IVF-PQ.

Vectors are REAL GeoCLIP location embeddings (512-d, the published location encoder shipped in the
``geoclip`` package): GeoCLIP's 100K MP-16 gallery plus uniformly random land points (rejection
sampling on the Natural Earth countries), embedded in chunks once and cached as a float32 ``.npy``
(1 M points: about 3 minutes on a 2-core CPU). Queries are held-out location embeddings (random land
points not in the set, i.e. "where is the nearest gallery point to this place"), which is what a
region-free prediction asks of the index when the image embedding lands near a location embedding.

10 M: ``--dense PATH`` (a PrebuiltGallery folder from the dense-gallery build, see
:class:`geoapp.galleries.gallery.PrebuiltGallery`, or a ``.npy`` of [N, 512] embeddings); without it
``--synthetic-10m`` derives 10 M vectors from the 1 M set (each real vector plus 9 small random
perturbations, re-normalised; memory-mapped float16 on disk), which keeps the neighbourhood structure
of real embeddings but is not a real 10 M gallery.

    python benchmarks/bench_index.py [--n 1000000] [--kinds exact,flat,ivf-flat,ivf-pq] [--device cpu|cuda]
                                     [--dense PATH | --synthetic-10m] [--queries 200] [--json OUT]
"""

from __future__ import annotations

import gc
import json
import resource
import time
from pathlib import Path

import numpy as np
from _common import bench_parser, emit, load_average, machine

from geoapp.fileio import atomic_write_path

WORK = Path("/tmp/geoapp-bench-index")


def rss_mb() -> float:
    """Current resident set size (MiB), from /proc (falls back to the peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_land_points(n: int, seed: int) -> np.ndarray:
    """``n`` uniformly random points on land (area-uniform on the sphere, then rejection on countries)."""
    from geoapp.geo.countries import get_country_index

    countries = get_country_index()
    rng = np.random.default_rng(seed)
    found, total = [np.zeros((0, 2), np.float32)], 0
    while total < n:
        m = max(4 * (n - total), 10_000)
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, m)))
        lon = rng.uniform(-180, 180, m)
        keep = countries.is_land(lat, lon) & (np.abs(lat) < 84)
        found.append(np.stack([lat[keep], lon[keep]], axis=1).astype(np.float32))
        total += int(keep.sum())
    return np.concatenate(found)[:n]


def location_encoder():
    """The published GeoCLIP location encoder (the backbone is irrelevant: tiny, random)."""
    import torch

    from geoapp.models.geoclip import build_geoclip

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, identity = build_geoclip("tiny-test", "random", "pretrained")
    return model.eval(), identity


def embed(coords: np.ndarray, out: Path | None = None, chunk: int = 16384, log=print) -> np.ndarray:
    """Normalised location embeddings [N, 512] float32 of ``coords``, chunk by chunk (into ``out`` .npy)."""
    n = len(coords)
    if out is None:
        result = np.empty((n, 512), dtype=np.float32)
        _embed_into(coords, result, chunk, log)
        return result
    atomic_write_path(out, lambda tmp: _embed_into(
        coords, np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, 512)), chunk, log),
        suffix=".npy")
    return np.load(out, mmap_mode="r")


def _embed_into(coords: np.ndarray, result: np.ndarray, chunk: int, log) -> None:
    import torch
    import torch.nn.functional as F

    model, _ = location_encoder()
    n = len(coords)
    start = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n, chunk):
            block = torch.from_numpy(np.ascontiguousarray(coords[s:s + chunk], dtype=np.float32))
            result[s:s + chunk] = F.normalize(model.encode_locations(block).float(), dim=-1).numpy()
            if (s // chunk) % 10 == 0:
                log(f"  embedded {min(s + chunk, n):,} / {n:,} ({time.perf_counter() - start:.0f} s)")
    if isinstance(result, np.memmap):
        result.flush()


def real_set(n: int, queries: int, log=print) -> tuple[np.ndarray, np.ndarray, float]:
    """(base [n, 512] memmap, held-out queries [q, 512], seconds spent embedding, 0 when cached)."""
    from geoapp.galleries.gallery import Gallery

    base_path, query_path = WORK / f"loc{n}.npy", WORK / f"loc{n}-queries{queries}.npy"
    spent = 0.0
    if not base_path.is_file():
        gallery = Gallery.default().coords
        extra = random_land_points(max(0, n - len(gallery)), seed=1)
        coords = np.concatenate([gallery, extra])[:n]
        log(f"embedding {n:,} locations (100K gallery + random land) into {base_path} …")
        start = time.perf_counter()
        embed(coords, base_path, log=log)
        spent = time.perf_counter() - start
    if not query_path.is_file():
        np.save(query_path, embed(random_land_points(queries, seed=2), log=lambda *_: None))
    return np.load(base_path, mmap_mode="r"), np.load(query_path), spent


def synthetic_10m(base: np.ndarray, factor: int = 10, log=print) -> np.ndarray:
    """``factor`` x the real set: each vector and ``factor - 1`` perturbed copies (noise 0.05/sqrt(d) per
    coordinate, re-normalised), float16 memmap on disk."""
    n, dim = base.shape
    path = WORK / f"synthetic{n * factor}.f16.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    def fill(tmp: str) -> None:
        _fill_synthetic(base, factor, np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                                                 shape=(n * factor, dim)), log)

    atomic_write_path(path, fill, suffix=".npy")
    return np.load(path, mmap_mode="r")


def _fill_synthetic(base: np.ndarray, factor: int, out: np.memmap, log) -> None:
    n, dim = base.shape
    rng = np.random.default_rng(3)
    chunk = 100_000
    for copy in range(factor):
        for s in range(0, n, chunk):
            block = np.asarray(base[s:s + chunk], dtype=np.float32)
            if copy:
                block = block + rng.standard_normal(block.shape, dtype=np.float32) * (0.05 / np.sqrt(dim))
                block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[copy * n + s: copy * n + s + len(block)] = block
        log(f"  synthetic copy {copy + 1}/{factor}")
    out.flush()
    del out


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def latency_ms(index, queries: np.ndarray, batch: int, k: int = 10, budget_s: float = 20.0) -> float:
    """Median per-batch latency (ms) over up to ``len(queries) // batch`` batches (time-boxed)."""
    times = []
    started = time.perf_counter()
    for s in range(0, len(queries) - batch + 1, batch):
        t = time.perf_counter()
        index.search(queries[s:s + batch], k)
        times.append((time.perf_counter() - t) * 1000)
        if time.perf_counter() - started > budget_s and len(times) >= 3:
            break
    return float(np.median(times))


def bench(base: np.ndarray, queries: np.ndarray, kinds: list[str], device: str, label: str, log=print,
          nprobes: list[int] | None = None) -> list[dict]:
    from geoapp.index import IndexSpec, build_index, choose_spec, exact_search, with_nprobe

    n, dim = base.shape
    log(f"[{label}] ground truth: exact top-10 of {len(queries)} queries over {n:,} …")
    start = time.perf_counter()
    _, truth = exact_search(base, queries, 10)
    log(f"  {time.perf_counter() - start:.1f} s")
    rows = []
    for kind in kinds:
        spec = choose_spec(n, dim, kind)
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        if kind == "exact":
            # Exact = the (memory-mapped) array: "build" is reading it into memory once.
            index = build_index(np.ascontiguousarray(base, dtype=np.float32), IndexSpec("exact"))
        else:
            index = build_index(base, spec, progress=None)
        build_s = time.perf_counter() - start
        index.to_device(device)
        rss = rss_mb() - before
        nbytes = index.nbytes
        for probe in ([spec.nprobe] if not spec.approximate else sorted({spec.nprobe, *(nprobes or [])})):
            searched = with_nprobe(index, probe) if spec.approximate else index
            _, ids = searched.search(queries, 10)
            row = {"set": label, "n": n, "dim": dim, "kind": kind, "spec": searched.spec.describe(),
                   "build_s": round(build_s, 1), "rss_delta_mb": round(rss), "index_mb": round(nbytes / 2**20),
                   "latency_b1_ms": round(latency_ms(searched, queries, 1), 2),
                   "latency_b64_ms": round(latency_ms(searched, queries, 64), 1),
                   "recall@10": round(recall_at(ids, truth), 4), "device": device}
            log("  " + json.dumps(row))
            rows.append(row)
        del index
        gc.collect()
    return rows


def load_dense(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    from geoapp.galleries.gallery import PrebuiltGallery

    return PrebuiltGallery.open(path).embeddings()


def main() -> None:
    parser = bench_parser(__doc__)  # --json, --device
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", default="exact,flat,ivf-flat,ivf-pq")
    parser.add_argument("--nprobes", default="", help="extra nprobe values to report for IVF kinds, e.g. 32,64,256")
    parser.add_argument("--dense", type=Path, default=None, help="10 M: a PrebuiltGallery folder or an .npy")
    parser.add_argument("--synthetic-10m", action="store_true", help="10 M derived from the 1 M real set")
    parser.add_argument("--embed-only", action="store_true")
    args = parser.parse_args()
    at_start = machine(args.device)

    import faiss

    faiss.omp_set_num_threads(faiss.omp_get_max_threads())
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    nprobes = [int(p) for p in args.nprobes.split(",") if p.strip()]
    base, queries, embed_s = real_set(args.n, args.queries)
    if args.embed_only:
        print(f"embedding: {embed_s:.0f} s")
        return
    rows = bench(base, queries, kinds, args.device, f"real {args.n:,}", nprobes=nprobes)
    if args.dense is not None or args.synthetic_10m:
        big = load_dense(args.dense) if args.dense is not None else synthetic_10m(base)
        big_kinds = [k for k in kinds if k != "exact" or big.nbytes < 8 * 2**30]
        rows += bench(big, queries, big_kinds, args.device,
                      "dense" if args.dense is not None else f"synthetic {len(big):,}", nprobes=nprobes)
    record = {**at_start, "faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(),
              "embed_1m_s": round(embed_s), "load_average_end": load_average()}
    emit({"machine": record, "rows": rows}, args.json, indent=1)


if __name__ == "__main__":
    main()
