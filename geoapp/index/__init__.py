"""One vector-index interface for galleries, tile embeddings and reference collections (torch-free).

- :class:`IndexSpec` / :func:`choose_spec`: exact matrix product below :data:`EXACT_MAX` vectors, FAISS
  IVF-Flat above, IVF-PQ (re-ranked) when the float32 vectors would exceed :data:`IVF_FLAT_MAX_BYTES`;
  any kind can be forced (``exact``, ``flat``, ``ivf-flat``, ``ivf-pq``).
- :class:`VectorIndex.search` ``(queries [B, d], k, subset=None) -> (scores [B, k], ids [B, k])``: inner
  product on L2-normalised vectors, ids -1 (scores -inf) past the available results; ``subset`` limits the
  search to those ids (a region filter) and never returns another id.
- :func:`build_index`, :func:`build_index_chunked` (sets larger than memory), :func:`save_index`,
  :func:`load_index`, and :class:`IndexCache` (``<cache>/indexes``, keyed like the embedding cache).

FAISS (``pip install faiss-cpu``, or faiss-gpu) is imported only when a FAISS kind is used.
"""

from geoapp.index.cache import IndexCache, index_key
from geoapp.index.core import (EXACT_MAX, IVF_FLAT_MAX_BYTES, KINDS, IndexSpec, VectorIndex, VectorIndexError,
                               build_index, build_index_chunked, choose_spec, exact_search, load_index, normalise,
                               require_faiss, save_index, with_nprobe)

__all__ = ["EXACT_MAX", "IVF_FLAT_MAX_BYTES", "KINDS", "IndexCache", "IndexSpec", "VectorIndex", "VectorIndexError",
           "build_index", "build_index_chunked", "choose_spec", "exact_search", "index_key", "load_index",
           "normalise", "require_faiss", "save_index", "with_nprobe"]
