"""geoapp.index: spec choice, every kind against exact search, region subsets, chunked builds, the disk cache."""

from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest

from geoapp.index import (EXACT_MAX, KINDS, IndexCache, IndexSpec, VectorIndexError, build_index, build_index_chunked,
                          choose_spec, exact_search, index_key, load_index, normalise, require_faiss, save_index,
                          with_nprobe)

N, DIM = 20_000, 32


def unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return normalise(np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true ids (ignoring -1 padding) that were found."""
    return float(np.mean([len(set(f) & set(t[t >= 0])) / max(1, int((t >= 0).sum())) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    return unit(N), unit(50, seed=1)


@pytest.fixture(scope="module")
def built(data):
    """One index per kind with the size-chosen spec (built once: IVF-PQ training dominates this file's time)."""
    return {kind: build_index(data[0], choose_spec(N, DIM, kind), train_sample=4096) for kind in KINDS}


def test_choose_spec_thresholds():
    assert choose_spec(EXACT_MAX - 1, 512).kind == "exact"
    big = choose_spec(EXACT_MAX, 512)
    assert big.kind == "ivf-flat" and big.nlist == 1024 and 1 <= big.nprobe < big.nlist
    huge = choose_spec(10_000_000, 512)  # 20 GB of float32: compressed codes, re-ranked
    assert huge.kind == "ivf-pq" and huge.nlist == 4096 and huge.pq_m == 64 and huge.refine > 0
    assert choose_spec(10, 512, "flat").kind == "flat"
    small_ivf = choose_spec(5_000, 32, "ivf-pq")  # forced on a small set: enough points per cell, pq_m | dim
    assert small_ivf.nlist * 39 <= 5_000 and DIM % small_ivf.pq_m == 0
    with pytest.raises(ValueError):
        choose_spec(10, 4, "hnsw")
    with pytest.raises(ValueError):
        IndexSpec("ivf-flat", nlist=16, nprobe=32)
    spec = IndexSpec("ivf-pq", nlist=64, nprobe=8, pq_m=8, pq_bits=8, refine=4)
    assert IndexSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_agrees_with_exact(data, built, kind):
    vectors, queries = data
    truth_scores, truth = exact_search(vectors, queries, 10)
    index = with_nprobe(built[kind], built[kind].spec.nlist) if kind.startswith("ivf") else built[kind]
    assert (index.kind, index.size, index.dim) == (kind, N, DIM)
    scores, ids = index.search(queries, 10)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (50, 10)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    if kind == "ivf-pq":  # compressed codes, re-ranked exactly from the attached vectors
        assert recall(ids, truth) >= 0.99
    else:
        np.testing.assert_array_equal(ids, truth)
        np.testing.assert_allclose(scores, truth_scores, atol=1e-5)
    padded_scores, padded = build_index(vectors[:5], IndexSpec("exact")).search(queries[:2], 8)
    assert (padded[:, 5:] == -1).all() and np.isneginf(padded_scores[:, 5:]).all()


def test_exact_ties_match_a_stable_argsort():
    vectors = normalise(np.repeat(np.eye(4, dtype=np.float32), 50, axis=0))  # 50 identical copies of each axis
    query = np.eye(4, dtype=np.float32)[[2]]
    _, ids = build_index(vectors, IndexSpec("exact")).search(query, 7)
    np.testing.assert_array_equal(ids[0], np.argsort(-(vectors @ query[0]), kind="stable")[:7])


# Every kind with its vectors attached, and the FAISS kinds from their codes alone (an exact index is its
# vectors, so it has no index-only case).
SUBSET_CASES = [pytest.param(kind, True, id=f"{kind}-vectors") for kind in KINDS] + [
    pytest.param(kind, False, id=f"{kind}-index-only") for kind in KINDS if kind != "exact"]


@pytest.mark.parametrize(("kind", "attached"), SUBSET_CASES)
def test_region_subset_is_exact(data, built, kind, attached):
    vectors, queries = data
    index = with_nprobe(built[kind], built[kind].spec.nprobe) if kind != "exact" else built[kind]  # a copy
    if not attached:
        index.attach_vectors(None)
    rng = np.random.default_rng(2)
    for size in (1, 7, 300, 5_000):
        subset = rng.choice(N, size=size, replace=False)
        _, ids = index.search(queries, 10, subset=subset)
        found = ids[ids >= 0]
        assert np.isin(found, subset).all()  # never an id outside the region
        _, truth = exact_search(vectors, queries, 10, subset=subset)
        if kind == "ivf-pq" and not attached:
            assert recall(ids, truth) >= 0.5  # codes only: inside the region, but approximate
        else:
            np.testing.assert_array_equal(ids, truth)
    _, none = index.search(queries[:1], 3, subset=np.array([], np.int64))
    assert (none == -1).all()


def test_chunked_float16_build_matches_in_memory(data):
    vectors, queries = data
    half = vectors.astype(np.float16)
    spec = IndexSpec("ivf-flat", nlist=64, nprobe=64)
    chunked = build_index_chunked((half[s:s + 3000] for s in range(0, N, 3000)), N, DIM, spec,
                                  train_sample=half[::4].astype(np.float32))
    _, ids = chunked.search(queries, 10)
    _, truth = exact_search(half, queries, 10)
    assert recall(ids, truth) == 1.0
    with pytest.raises(VectorIndexError, match="expected"):
        build_index_chunked([half[:100]], N, DIM, IndexSpec("flat"), None)


@pytest.mark.parametrize("kind", ["exact", "flat", "ivf-flat", "ivf-pq"])
def test_save_load_round_trip(data, built, tmp_path, kind):
    vectors, queries = data
    index = with_nprobe(built[kind], built[kind].spec.nprobe) if kind != "exact" else built[kind]
    index.key = "k1"
    path = save_index(index, tmp_path / f"index.{kind}")
    loaded = load_index(path, vectors=vectors if kind == "ivf-pq" else None)
    assert (loaded.spec, loaded.size, loaded.dim, loaded.key) == (index.spec, N, DIM, "k1")
    index.key = None
    for (a_scores, a_ids), (b_scores, b_ids) in [(index.search(queries, 10), loaded.search(queries, 10))]:
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_allclose(a_scores, b_scores, atol=1e-6)
    if kind == "exact":
        assert isinstance(loaded.vectors, np.memmap)  # memory-mapped, not read


def test_cache_round_trip_and_corrupt_file_rebuilt(data, tmp_path, caplog):
    vectors, queries = data
    cache = IndexCache(tmp_path / "indexes")
    spec = IndexSpec("ivf-flat", nlist=64, nprobe=8)
    key = index_key("encoder:abc", np.zeros((3, 2), np.float32))
    calls = []

    def loader():
        calls.append(1)
        return vectors

    first = cache.get_or_build(key, loader, spec)
    path = cache.path_for(key, spec)
    assert path.is_file() and path.with_name(path.name + ".json").is_file()
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave no temporary files
    second = IndexCache(tmp_path / "indexes").get_or_build(key, loader, spec)
    assert len(calls) == 1  # loaded, not rebuilt: the vectors were not even asked for
    np.testing.assert_array_equal(first.search(queries, 10)[1], second.search(queries, 10)[1])
    # Another nprobe is a search-time setting: the same file, searched differently.
    wider = IndexCache(tmp_path / "indexes").get_or_build(key, loader, IndexSpec("ivf-flat", nlist=64, nprobe=64))
    assert wider.spec.nprobe == 64 and len(calls) == 1
    path.write_bytes(b"not an index")
    with caplog.at_level(logging.WARNING):
        rebuilt = IndexCache(tmp_path / "indexes").get_or_build(key, loader, spec)
    assert "ignoring unreadable vector index" in caplog.text and len(calls) == 2
    np.testing.assert_array_equal(rebuilt.search(queries, 10)[1], first.search(queries, 10)[1])
    assert load_index(path).size == N  # the rebuilt file replaced the corrupt one
    assert index_key("encoder:abc", np.zeros((3, 2))) != index_key("encoder:other", np.zeros((3, 2)))
    exact = IndexCache(tmp_path / "indexes").get_or_build("e", vectors, "auto")
    assert exact.kind == "exact" and IndexCache(None).get_or_build("e", vectors, "flat").kind == "flat"


def test_missing_faiss_names_the_package(monkeypatch, data):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(VectorIndexError, match="pip install faiss-cpu"):
        require_faiss()
    vectors, queries = data
    assert build_index(vectors, IndexSpec("exact")).search(queries, 3)[1].shape == (50, 3)  # exact needs no FAISS


def test_gpu_move_is_a_no_op_without_gpu_faiss(data):
    vectors, queries = data
    index = build_index(vectors, IndexSpec("ivf-flat", nlist=64, nprobe=64))
    before = index.search(queries, 5)[1]
    index.to_device("cuda")
    faiss = require_faiss()
    assert (index.gpu_index is not None) == (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)
    np.testing.assert_array_equal(index.search(queries, 5)[1], before)
    assert build_index(vectors, IndexSpec("exact")).to_device("cuda").kind == "exact"


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-pq"])
def test_huge_region_goes_through_the_selector(data, built, kind, monkeypatch):
    """Regions above EXACT_MAX ids are searched by the index with an ID selector: never outside the region."""
    from geoapp.index import core

    monkeypatch.setattr(core, "EXACT_MAX", 100)  # a 5 000-id region counts as huge
    vectors, queries = data
    subset = np.random.default_rng(3).choice(N, size=5_000, replace=False)
    _, ids = built[kind].search(queries, 10, subset=subset)
    assert np.isin(ids[ids >= 0], subset).all()
    _, truth = exact_search(vectors, queries, 10, subset=subset)
    assert recall(ids, truth) >= 0.9
