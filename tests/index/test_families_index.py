"""The index interface in the map-tile level search and the regional reference matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoapp.families.maptiles.embedding import TileEmbedder
from geoapp.families.maptiles.model import MapTileModel, preset
from geoapp.families.maptiles.search import LevelIndex, flat_search, world_tiles
from geoapp.families.maptiles.synthetic import SyntheticTileSource
from geoapp.families.regional.model import References
from geoapp.index import IndexSpec, build_index, normalise


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    torch.manual_seed(1)
    model = MapTileModel(preset("tiny"), (1, 3)).eval()
    tiles = TileEmbedder(model, SyntheticTileSource(max_zoom=3), cache_dir=tmp_path_factory.mktemp("tiles"))
    tiles.embed_level(3)
    return tiles


def photo(embedder, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    with torch.no_grad():
        vector = embedder.model.encode_photo(torch.randn(1, 3, 32, 32))[0]
    return (vector / vector.norm()).numpy()


@pytest.mark.parametrize("kind", ["auto", "flat", IndexSpec("ivf-flat", nlist=4, nprobe=4)])
def test_level_index_search_equals_scoring_every_tile(embedder, kind, tmp_path):
    level = embedder.level_index(3, kind, cache_dir=tmp_path)
    assert isinstance(level, LevelIndex) and len(level) == 64 and level.index.kind == (
        "exact" if kind == "auto" else getattr(kind, "kind", kind))
    inside = lambda tiles: tiles[:, 1] < 4  # noqa: E731 - the western half of the level
    for seed in range(3):
        query = photo(embedder, seed)
        every = flat_search(query, 3, embedder, k=5)
        indexed = flat_search(query, 3, embedder, k=5, index=level)
        assert [tuple(t) for t in indexed.final.kept_tiles()] == [tuple(t) for t in every.final.kept_tiles()]
        if kind == "auto":  # exact: the very same scores as the matrix product
            np.testing.assert_array_equal(indexed.final.scores, every.final.scores[every.final.kept])
        west = flat_search(query, 3, embedder, k=5, index=level, inside=inside)
        west_every = flat_search(query, 3, embedder, k=5, inside=inside)
        assert (west.final.kept_tiles()[:, 1] < 4).all()
        assert [tuple(t) for t in west.final.kept_tiles()] == [tuple(t) for t in west_every.final.kept_tiles()]
    some = world_tiles(3)[::7]
    restricted = flat_search(photo(embedder, 0), 3, embedder, k=3, tiles=some, index=level)
    assert {tuple(t) for t in restricted.final.kept_tiles()} <= {tuple(t) for t in some}


def test_reference_matches_through_the_index_are_unchanged():
    rng = np.random.default_rng(0)
    features = normalise(rng.standard_normal((3000, 64))).astype(np.float16)
    features[10] = features[11]  # a tie: the lower index comes first, as with the stable argsort before
    refs = References(features, rng.uniform(-60, 60, (3000, 2)), [f"{i}.jpg" for i in range(3000)], [])
    query = rng.standard_normal((4, 64)).astype(np.float32)
    query[0] = features[10].astype(np.float32) * 3
    idx, sim = refs.nearest(query, 8)
    unit_query = query / np.linalg.norm(query, axis=1, keepdims=True)
    similarity = unit_query.astype(np.float32) @ features.astype(np.float32).T  # the previous implementation
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :8]
    np.testing.assert_array_equal(idx, top)
    np.testing.assert_array_equal(sim, np.take_along_axis(similarity, top, axis=1))
    assert refs.index().kind == "exact" and list(idx[0][:2]) == [10, 11]
    region = np.arange(500, 900)
    inside, _ = refs.nearest(query, 8, subset=region)
    assert np.isin(inside, region).all()
    refs.index_kind = "ivf-flat"
    refs._index = build_index(features, IndexSpec("ivf-flat", nlist=16, nprobe=16))
    through_faiss = refs.nearest(query, 8)[0]  # FAISS may order exact ties differently: compare as sets
    assert [set(row) for row in through_faiss] == [set(row) for row in top]
