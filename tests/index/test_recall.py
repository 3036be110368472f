"""IVF recall@10 against exact search with the chosen parameters: 1 M random unit vectors, real location embeddings.

Random vectors are 16-dimensional: 1 M x 16 float32 is 64 MB and builds in well under a minute on two cores,
and 16 dimensions is about the hardest case IVF still handles at a useful nprobe (structureless data spreads
every neighbourhood over many cells; at 32-d the same 0.99 needs nprobe = nlist/4, see benchmarks/RESULTS.md).
Structureless data is IVF's worst case, so this test probes nlist/8 cells (choose_spec's nprobe = nlist/32 is
measured for location embeddings, below and in the benchmark); queries are held-out random unit vectors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoapp.index import IndexSpec, build_index, choose_spec, exact_search, normalise, with_nprobe

from .test_index import recall


def random_land_points(n: int, seed: int) -> np.ndarray:
    """Area-uniform random points kept where a country polygon holds them."""
    from geoapp.geo.countries import get_country_index

    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 20 * n)))
    lon = rng.uniform(-180, 180, 20 * n)
    keep = get_country_index().is_land(lat, lon) & (np.abs(lat) < 84)
    return np.stack([lat[keep], lon[keep]], axis=1)[:n].astype(np.float32)


def test_ivf_recall_on_one_million_random_unit_vectors():
    rng = np.random.default_rng(0)
    vectors = normalise(rng.standard_normal((1_000_000, 16), dtype=np.float32))
    queries = normalise(rng.standard_normal((100, 16), dtype=np.float32))  # held out: not in the set
    spec = choose_spec(len(vectors), 16)
    assert spec.kind == "ivf-flat" and spec.nlist == 1024
    index = build_index(vectors, IndexSpec("ivf-flat", nlist=spec.nlist, nprobe=spec.nlist // 8),
                        train_sample=65_536)
    _, truth = exact_search(vectors, queries, 10)
    _, ids = index.search(queries, 10)
    assert recall(ids, truth) >= 0.99


@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-pq"])
def test_ivf_recall_on_real_location_embeddings(tiny_locator, kind):
    """GeoCLIP's 100K gallery embedded by the published location encoder; queries: 200 held-out random land
    points' location embeddings (what a prediction asks when the image embedding lands near a place)."""
    gallery = tiny_locator.candidate_set(None).embeddings.cpu().numpy()
    points = random_land_points(200, seed=5)
    queries = torch.nn.functional.normalize(tiny_locator.encode_locations(points), dim=-1).numpy()
    spec = choose_spec(len(gallery), gallery.shape[1], kind)  # the size-chosen parameters, as the locator uses
    index = build_index(gallery, spec, train_sample=spec.nlist * 40 if kind == "ivf-flat" else 8_192)
    _, truth = exact_search(gallery, queries, 10)
    _, ids = index.search(queries, 10)
    assert recall(ids, truth) >= 0.99, spec
    assert recall(with_nprobe(index, spec.nlist).search(queries, 10)[1], truth) >= recall(ids, truth)
