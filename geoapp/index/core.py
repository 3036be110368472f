"""Vector indexes: exact matrix product, FAISS flat inner product, IVF-Flat and IVF-PQ.

All indexes score by inner product, so vectors (and queries) are expected to be L2-normalised:
the score is then the cosine similarity. FAISS is imported lazily, inside the functions that need it,
so ``exact`` works (and this module imports) without it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from geoapp.fileio import atomic_write_path

log = logging.getLogger(__name__)

KINDS = ("exact", "flat", "ivf-flat", "ivf-pq")
EXACT_MAX = 1_000_000  # below this many vectors: exact matrix product (auto)
IVF_FLAT_MAX_BYTES = 8 * 1024**3  # above this much float32 payload: IVF-PQ instead of IVF-Flat (auto)
EXACT_CHUNK = 65_536  # rows scored per matrix product in exact search (bounds the temporary [B, chunk])
FORMAT_VERSION = 1

Progress = Callable[[float, str], None] | None


class VectorIndexError(RuntimeError):
    """An index cannot be built, loaded or searched; the message says why."""


def require_faiss() -> Any:
    """The ``faiss`` module, or an error that says how to install it."""
    try:
        import faiss  # noqa: PLC0415 - optional dependency, imported only when an index needs it
    except ImportError as error:  # pragma: no cover - faiss-cpu is installed in the dev environment
        raise VectorIndexError("this vector index needs FAISS: pip install faiss-cpu (or faiss-gpu on CUDA machines)"
                          ) from error
    return faiss


@dataclass(frozen=True)
class IndexSpec:
    """How to index a set of vectors.

    ``nlist``: IVF cells; ``nprobe``: cells visited per query; ``pq_m``/``pq_bits``: IVF-PQ sub-quantisers
    and bits per code; ``refine``: IVF-PQ re-ranking factor (``k * refine`` PQ candidates re-scored exactly
    from the original vectors, when those are attached; 0 = none).
    """

    kind: str = "exact"
    nlist: int = 0
    nprobe: int = 0
    pq_m: int = 0
    pq_bits: int = 8
    refine: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind.startswith("ivf") and (self.nlist < 1 or not 1 <= self.nprobe <= self.nlist):
            raise ValueError(f"{self.kind} needs nlist >= 1 and 1 <= nprobe <= nlist (got {self.nlist}, {self.nprobe})")
        if self.kind == "ivf-pq" and (self.pq_m < 1 or not 1 <= self.pq_bits <= 16):
            raise ValueError(f"ivf-pq needs pq_m >= 1 and 1 <= pq_bits <= 16 (got {self.pq_m}, {self.pq_bits})")

    @property
    def approximate(self) -> bool:
        return self.kind.startswith("ivf")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> IndexSpec:
        known = {f: data[f] for f in ("kind", "nlist", "nprobe", "pq_m", "pq_bits", "refine") if f in data}
        return cls(**known)

    def describe(self) -> str:
        if self.kind == "ivf-flat":
            return f"ivf-flat (nlist {self.nlist}, nprobe {self.nprobe})"
        if self.kind == "ivf-pq":
            return (f"ivf-pq (nlist {self.nlist}, nprobe {self.nprobe}, {self.pq_m}x{self.pq_bits} bit codes"
                    + (f", re-ranking {self.refine}x" if self.refine else "") + ")")
        return self.kind


def _pow2(value: float) -> int:
    return 1 << max(0, round(math.log2(max(1.0, value))))


def choose_spec(n: int, dim: int, kind: str = "auto") -> IndexSpec:
    """The index for ``n`` vectors of ``dim`` dimensions.

    ``auto``: exact below :data:`EXACT_MAX`; IVF-Flat while the float32 vectors fit in
    :data:`IVF_FLAT_MAX_BYTES`; IVF-PQ (re-ranked from the original vectors) above. IVF parameters by
    size: ``nlist`` ~ sqrt(n) rounded to a power of two, ``nprobe`` = max(32, nlist/32) (measured recall@10 >= 0.99
    on location embeddings, see benchmarks/RESULTS.md), ``pq_m`` = dim/8 bytes per vector.
    Any explicit kind is honoured (IVF parameters still chosen by size).
    """
    if kind == "auto":
        if n < EXACT_MAX:
            return IndexSpec("exact")
        kind = "ivf-flat" if n * dim * 4 <= IVF_FLAT_MAX_BYTES else "ivf-pq"
    if kind in ("exact", "flat"):
        return IndexSpec(kind)
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose auto or one of {', '.join(KINDS)}")
    # ~sqrt(n) cells (1 M -> 1024, 10 M -> 4096): k-means training and assignment stay affordable on a CPU;
    # at least ~39 training points per cell (FAISS warns below).
    nlist = max(1, min(_pow2(math.sqrt(max(n, 1))), _pow2(max(n, 1) / 64)))
    # nlist/32 cells, at least 32: recall@10 = 1.0 at 1 M location embeddings (nprobe 8 already), 0.976 at
    # 100K with 8 of 256 cells, so small indexes probe a larger share (see benchmarks/RESULTS.md).
    nprobe = max(1, min(nlist, max(32, nlist // 32)))
    if kind == "ivf-flat":
        return IndexSpec(kind, nlist=nlist, nprobe=nprobe)
    # One byte per 8 dimensions for wide vectors (64 bytes at 512-d), at least 2 dims/byte for narrow ones.
    pq_m = next(m for m in (max(dim // 8, min(dim // 2, 16)), dim // 8, dim // 4, dim // 2, dim, 1)
                if m >= 1 and dim % m == 0)
    # Re-rank 32·k candidates: on the 100K gallery, 8·k gave recall@10 0.977, 16·k 0.990, 32·k 0.997 (the
    # codes, not nprobe, limit IVF-PQ); 320 rows read per query from the memory-mapped vectors.
    return IndexSpec(kind, nlist=nlist, nprobe=nprobe, pq_m=pq_m, pq_bits=8, refine=32)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return np.ascontiguousarray(array / np.where(norms > 0, norms, 1), dtype=np.float32)


def _topk_rows(scores: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of each row of ``scores`` [B, n] by descending score, ties by ascending position (as a stable
    ``argsort(-scores)`` would order them); ``ids`` maps positions to ids. -1 / -inf padding past n."""
    batch, n = scores.shape
    out_scores = np.full((batch, k), -np.inf, dtype=np.float32)
    out_ids = np.full((batch, k), -1, dtype=np.int64)
    take = min(k, n)
    if take == 0:
        return out_scores, out_ids
    for row in range(batch):
        values = scores[row]
        if take == n:
            order = np.argsort(-values, kind="stable")
        else:
            part = np.argpartition(-values, take - 1)[:take]
            threshold = values[part].min()
            above = np.flatnonzero(values > threshold)
            tied = np.flatnonzero(values == threshold)[: take - len(above)]
            chosen = np.concatenate([above, tied])
            order = chosen[np.lexsort((chosen, -values[chosen]))]
        out_scores[row, :take] = values[order]
        out_ids[row, :take] = order if ids is None else ids[order]
    return out_scores, out_ids


def _merge(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk top-k lists (chunks in id order, so ties still prefer the lower id)."""
    all_scores = np.concatenate(scores, axis=1)
    all_ids = np.concatenate(ids, axis=1)
    merged_scores = np.full((all_scores.shape[0], k), -np.inf, dtype=np.float32)
    merged_ids = np.full((all_scores.shape[0], k), -1, dtype=np.int64)
    for row in range(all_scores.shape[0]):
        valid = all_ids[row] >= 0
        s, i = all_scores[row][valid], all_ids[row][valid]
        order = np.lexsort((i, -s))[:k]
        merged_scores[row, : len(order)] = s[order]
        merged_ids[row, : len(order)] = i[order]
    return merged_scores, merged_ids


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, subset: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k of ``queries`` [B, d] against ``vectors`` [N, d] (any float dtype, may be a
    memmap), restricted to the ids in ``subset`` when given. Chunked, so N can exceed memory."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if subset is not None:
        rows = np.unique(np.asarray(subset, dtype=np.int64))
        rows = rows[(rows >= 0) & (rows < len(vectors))]
        if len(rows) <= EXACT_CHUNK:
            block = np.asarray(vectors[rows], dtype=np.float32)
            return _topk_rows(queries @ block.T, k, rows)
        parts = [_topk_rows(queries @ np.asarray(vectors[rows[s:s + EXACT_CHUNK]], dtype=np.float32).T, k,
                            rows[s:s + EXACT_CHUNK]) for s in range(0, len(rows), EXACT_CHUNK)]
        return _merge([p[0] for p in parts], [p[1] for p in parts], k)
    n = len(vectors)
    if n <= EXACT_CHUNK:
        return _topk_rows(queries @ np.asarray(vectors, dtype=np.float32).T, k)
    parts = []
    for start in range(0, n, EXACT_CHUNK):
        block = np.asarray(vectors[start:start + EXACT_CHUNK], dtype=np.float32)
        scores, ids = _topk_rows(queries @ block.T, k)
        parts.append((scores, np.where(ids >= 0, ids + start, -1)))
    return _merge([p[0] for p in parts], [p[1] for p in parts], k)


class VectorIndex:
    """A searchable set of ``size`` L2-normalised vectors of ``dim`` dimensions (ids 0..size-1).

    ``search(queries, k, subset)`` -> (scores float32 [B, k], ids int64 [B, k]), best first, -1 padding.
    ``subset`` restricts the search to those ids (a region filter); the result never holds another id.
    ``vectors``: the original vectors (array or memmap, float32/float16) when available; exact indexes
    search them directly, IVF-PQ re-ranks its candidates with them, and a subset search over an
    approximate index is exact over the subset's rows when they are attached.
    """

    def __init__(self, spec: IndexSpec, size: int, dim: int, vectors: np.ndarray | None = None,
                 faiss_index: Any = None, key: str | None = None) -> None:
        self.spec = spec
        self.size = int(size)
        self.dim = int(dim)
        self.vectors = vectors
        self.faiss_index = faiss_index  # the CPU index (None for exact)
        self.gpu_index = None  # a GPU copy, when moved with to_device("cuda")
        self.key = key

    @property
    def kind(self) -> str:
        return self.spec.kind

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"VectorIndex({self.spec.describe()}, size={self.size:,}, dim={self.dim})"

    @property
    def nbytes(self) -> int:
        """Approximate memory of the searchable structure (the vectors for exact; FAISS's own storage)."""
        if self.faiss_index is None:
            return int(self.vectors.nbytes) if self.vectors is not None else 0
        index = self.faiss_index
        if not self.spec.approximate:
            return int(index.ntotal) * self.dim * 4
        # codes + 8-byte ids per vector, plus the coarse centroids (no serialisation: that would copy it all)
        return int(index.ntotal) * (int(index.code_size) + 8) + self.spec.nlist * self.dim * 4

    def attach_vectors(self, vectors: np.ndarray | None) -> VectorIndex:
        if vectors is not None and (len(vectors) != self.size or vectors.shape[1] != self.dim):
            raise VectorIndexError(f"attached vectors have shape {vectors.shape}; the index holds {self.size} x {self.dim}")
        self.vectors = vectors
        return self

    def to_device(self, device: Any) -> VectorIndex:
        """Move an IVF/flat FAISS index to the GPU when ``device`` is CUDA and FAISS has GPU support
        (``faiss.get_num_gpus() > 0``); otherwise a no-op. Subset searches stay on the CPU copy."""
        if self.faiss_index is None or not str(device).startswith("cuda"):
            return self
        faiss = require_faiss()
        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
            log.info("FAISS has no GPU support here; the %s index stays on the CPU", self.kind)
            return self
        gpu = int(str(device).split(":")[1]) if ":" in str(device) else 0
        self._gpu_resources = faiss.StandardGpuResources()
        self.gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, gpu, self.faiss_index)
        if self.spec.approximate:
            self.gpu_index.nprobe = self.spec.nprobe
        return self

    def search(self, queries: np.ndarray, k: int, subset: np.ndarray | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape [B, {self.dim}]; got {queries.shape}")
        k = int(k)
        if k < 1:
            raise ValueError("k must be at least 1")
        queries = np.ascontiguousarray(queries)
        if self.faiss_index is None:
            if self.vectors is None:
                raise VectorIndexError("an exact index needs its vectors")
            return exact_search(self.vectors, queries, k, subset)
        if subset is not None:
            return self._search_subset(queries, k, subset, nprobe)
        nprobe = self.spec.nprobe if nprobe is None else int(nprobe)
        fetch = k * self.spec.refine if (self.spec.kind == "ivf-pq" and self.spec.refine and self.vectors is not None) else k
        fetch = min(fetch, self.size) if fetch > k else fetch
        if self.gpu_index is not None:
            if self.spec.approximate:
                self.gpu_index.nprobe = min(nprobe, 2048)
            scores, ids = self.gpu_index.search(queries, fetch)
        else:
            params = self._params(nprobe)
            scores, ids = self.faiss_index.search(queries, fetch, params=params)
        return self._finish(queries, scores, ids, k)

    def _params(self, nprobe: int, selector: Any = None) -> Any:
        faiss = require_faiss()
        if self.spec.approximate:
            return faiss.SearchParametersIVF(sel=selector, nprobe=min(max(1, nprobe), self.spec.nlist))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _finish(self, queries: np.ndarray, scores: np.ndarray, ids: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
        ids = ids.astype(np.int64, copy=False)
        scores = scores.astype(np.float32, copy=False)
        if scores.shape[1] > k:  # IVF-PQ candidates: re-score exactly from the original vectors
            rescored = np.full(scores.shape, -np.inf, dtype=np.float32)
            for row in range(len(queries)):
                valid = ids[row] >= 0
                rows = ids[row][valid]
                order = np.argsort(rows)  # sorted reads are faster on a memmap
                block = np.asarray(self.vectors[rows[order]], dtype=np.float32)
                values = np.empty(len(rows), dtype=np.float32)
                values[order] = block @ queries[row]
                rescored[row][valid] = values
            order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -rescored), axis=1)[:, :k]
            scores = np.take_along_axis(rescored, order, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        return np.ascontiguousarray(scores), np.ascontiguousarray(ids)

    def _search_subset(self, queries: np.ndarray, k: int, subset: np.ndarray, nprobe: int | None
                       ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.unique(np.asarray(subset, dtype=np.int64))
        rows = rows[(rows >= 0) & (rows < self.size)]
        if len(rows) == 0:
            return (np.full((len(queries), k), -np.inf, dtype=np.float32), np.full((len(queries), k), -1, np.int64))
        if self.vectors is not None and (len(rows) <= EXACT_MAX or not self.spec.approximate):
            # exact over the region's rows: the filter costs nothing in recall
            return exact_search(self.vectors, queries, k, rows)
        faiss = require_faiss()
        selector = faiss.IDSelectorBatch(len(rows), faiss.swig_ptr(rows))
        if self.spec.approximate and len(rows) > EXACT_MAX and self.vectors is not None:
            # A huge region (over EXACT_MAX ids): the index itself, restricted by a selector, with nprobe scaled
            # up by the share of the set outside the region; approximate like any IVF search, never outside it.
            nprobe = min(self.spec.nlist, max(self.spec.nprobe,
                                              math.ceil((nprobe or self.spec.nprobe) * self.size / len(rows))))
            fetch = k * self.spec.refine if self.spec.kind == "ivf-pq" and self.spec.refine else k
            scores, ids = self.faiss_index.search(queries, min(fetch, len(rows)) if fetch > k else k,
                                                  params=self._params(nprobe, selector))
            return self._finish(queries, scores, ids, k)
        if self.spec.approximate:
            # Without the vectors, a flat-coded IVF scan of every cell is exact over the subset; cells are
            # cheap to skip when few of their members are selected. IVF-PQ stays approximate.
            nprobe = self.spec.nlist if self.spec.kind == "ivf-flat" else min(
                self.spec.nlist, max(self.spec.nprobe, math.ceil((nprobe or self.spec.nprobe) * self.size / len(rows))))
        scores, ids = self.faiss_index.search(queries, k, params=self._params(nprobe or 1, selector))
        return self._finish(queries, scores, ids, k)


# ---------------------------------------------------------------------- building
def _faiss_index(spec: IndexSpec, dim: int) -> Any:
    faiss = require_faiss()
    if spec.kind == "flat":
        return faiss.IndexFlatIP(dim)
    quantizer = faiss.IndexFlatIP(dim)
    if spec.kind == "ivf-flat":
        index = faiss.IndexIVFFlat(quantizer, dim, spec.nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        if dim % spec.pq_m:
            raise ValueError(f"pq_m = {spec.pq_m} must divide the dimension {dim}")
        index = faiss.IndexIVFPQ(quantizer, dim, spec.nlist, spec.pq_m, spec.pq_bits, faiss.METRIC_INNER_PRODUCT)
        # Sub-quantiser k-means on at most 64 points per centroid and 15 iterations: minutes less on a CPU, and
        # the codes only pick candidates (re-ranked exactly when the vectors are attached).
        index.pq.cp.max_points_per_centroid = 64
        index.pq.cp.min_points_per_centroid = 16  # no FAISS warning from 4 096 training vectors up
        index.pq.cp.niter = 15
    index.nprobe = spec.nprobe
    index.own_fields = True
    quantizer.this.disown()  # the IVF index owns (and frees) its quantizer
    return index


def _train(index: Any, spec: IndexSpec, sample: np.ndarray, progress: Progress) -> None:
    if not spec.approximate:
        return
    need = spec.nlist * 39
    if len(sample) < spec.nlist:
        raise VectorIndexError(f"{spec.kind} with nlist={spec.nlist} needs at least {spec.nlist} training vectors "
                          f"(got {len(sample)})")
    if len(sample) < need:
        log.info("training %s on %d vectors (FAISS suggests %d)", spec.kind, len(sample), need)
    if progress:
        progress(0.0, f"Training {spec.describe()} on {len(sample):,} vectors …")
    index.train(np.ascontiguousarray(sample, dtype=np.float32))


def build_index(vectors: np.ndarray, spec: IndexSpec | None = None, progress: Progress = None,
                train_sample: int | None = None, seed: int = 0) -> VectorIndex:
    """An index over ``vectors`` [N, d] (L2-normalised rows; float32 or float16, may be a memmap).

    ``spec`` None: :func:`choose_spec` by size. Exact keeps ``vectors`` as they are (no copy); FAISS kinds
    copy them into the index (chunk by chunk) and keep a reference for subset search and re-ranking.
    """
    if vectors.ndim != 2:
        raise ValueError(f"vectors must have shape [N, d]; got {vectors.shape}")
    n, dim = vectors.shape
    spec = spec or choose_spec(n, dim)
    if spec.kind == "exact":
        return VectorIndex(spec, n, dim, vectors=vectors)
    sample_size = train_sample or min(n, max(spec.nlist * 64, 2 ** spec.pq_bits * 64 if spec.kind == "ivf-pq" else 0))

    def chunks() -> Iterable[np.ndarray]:
        for start in range(0, n, EXACT_CHUNK * 4):
            yield vectors[start:start + EXACT_CHUNK * 4]

    sample = _sample_rows(vectors, sample_size, seed) if spec.approximate else None
    index = build_index_chunked(chunks(), n, dim, spec, sample, progress)
    return index.attach_vectors(vectors)


def _sample_rows(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    if size >= len(vectors):
        return np.asarray(vectors, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=size, replace=False))
    return np.asarray(vectors[rows], dtype=np.float32)


def build_index_chunked(chunks: Iterable[np.ndarray], n: int, dim: int, spec: IndexSpec,
                        train_sample: np.ndarray | None, progress: Progress = None) -> VectorIndex:
    """An index over ``n`` vectors that arrive in ``chunks`` (in id order; float16 or float32), for sets that
    do not fit in memory. IVF kinds are trained on ``train_sample`` first (a few hundred thousand rows
    drawn from the set). An exact index cannot be built from chunks (it needs the array: use build_index)."""
    if spec.kind == "exact":
        raise VectorIndexError("an exact index is the array itself: pass the (memory-mapped) vectors to build_index")
    index = _faiss_index(spec, dim)
    if spec.approximate:
        if train_sample is None:
            raise VectorIndexError(f"{spec.kind} needs a training sample")
        _train(index, spec, train_sample, progress)
    added = 0
    started = time.perf_counter()
    for chunk in chunks:
        block = np.ascontiguousarray(chunk, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != dim:
            raise ValueError(f"chunk of shape {block.shape}; expected [*, {dim}]")
        index.add(block)
        added += len(block)
        if progress:
            progress(min(1.0, added / max(n, 1)), f"Indexing vectors: {added:,} of {n:,} "
                     f"({time.perf_counter() - started:.0f} s) …")
    if added != n:
        raise VectorIndexError(f"chunks held {added:,} vectors; expected {n:,}")
    return VectorIndex(spec, n, dim, faiss_index=index)


# ---------------------------------------------------------------------- files
def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_index(index: VectorIndex, path: str | Path) -> Path:
    """Write ``index`` to ``path`` (FAISS's format; ``.npy`` for exact, memory-mappable) plus ``path.json``
    (spec, size, dim, key). Both are written to temporary files and renamed, sidecar last."""
    path = Path(path)
    if index.faiss_index is None:
        if index.vectors is None:
            raise VectorIndexError("an exact index without vectors cannot be saved")

        def write_npy(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, np.asarray(index.vectors))
        atomic_write_path(path, write_npy)
    else:
        faiss = require_faiss()
        atomic_write_path(path, lambda tmp: faiss.write_index(index.faiss_index, tmp))
    meta = {"format": FORMAT_VERSION, "spec": index.spec.to_dict(), "size": index.size, "dim": index.dim,
            "key": index.key, "file": path.name}

    def write_json(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    atomic_write_path(_sidecar(path), write_json)
    return path


def load_index(path: str | Path, vectors: np.ndarray | None = None, mmap: bool = True) -> VectorIndex:
    """Read an index written by :func:`save_index`; ``vectors`` attaches the original vectors (for
    re-ranking and exact subset search). Raises :class:`VectorIndexError` when a file is missing or corrupt."""
    path = Path(path)
    try:
        meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        spec = IndexSpec.from_dict(meta["spec"])
        size, dim = int(meta["size"]), int(meta["dim"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VectorIndexError(f"cannot read index metadata {_sidecar(path)}: {error}") from error
    try:
        if spec.kind == "exact":
            array = np.load(path, mmap_mode="r" if mmap else None)
            if array.shape != (size, dim):
                raise ValueError(f"shape {array.shape}, expected {(size, dim)}")
            return VectorIndex(spec, size, dim, vectors=array, key=meta.get("key"))
        faiss = require_faiss()
        index = faiss.read_index(str(path))
    except (OSError, ValueError, RuntimeError) as error:
        raise VectorIndexError(f"cannot read index {path}: {error}") from error
    if index.ntotal != size or index.d != dim:
        raise VectorIndexError(f"index {path} holds {index.ntotal} x {index.d}; its metadata says {size} x {dim}")
    if spec.approximate:
        index.nprobe = spec.nprobe
    result = VectorIndex(spec, size, dim, faiss_index=index, key=meta.get("key"))
    return result.attach_vectors(vectors) if vectors is not None else result


def with_nprobe(index: VectorIndex, nprobe: int) -> VectorIndex:
    """The same index searched with another ``nprobe`` (shares the FAISS structure)."""
    spec = replace(index.spec, nprobe=min(max(1, int(nprobe)), max(index.spec.nlist, 1)))
    clone = VectorIndex(spec, index.size, index.dim, index.vectors, index.faiss_index, index.key)
    clone.gpu_index = index.gpu_index
    return clone
