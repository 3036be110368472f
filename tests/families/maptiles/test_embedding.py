"""Tile embeddings: the disk cache gives exactly what encoding gives; missing tiles are remembered."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoapp.families.maptiles.embedding import TileEmbedder
from geoapp.families.maptiles.model import MapTileModel, preset
from geoapp.families.maptiles.search import beam_search, world_tiles
from geoapp.families.maptiles.synthetic import SyntheticTileSource


@pytest.fixture(scope="module")
def model() -> MapTileModel:
    torch.manual_seed(1)
    return MapTileModel(preset("tiny"), (1, 3, 5)).eval()


def photo_vector(model, seed=0) -> np.ndarray:
    torch.manual_seed(seed)
    with torch.no_grad():
        vector = model.encode_photo(torch.randn(1, 3, 32, 32))[0]
    return (vector / vector.norm()).numpy()


def test_cached_and_uncached_searches_are_identical(model, tmp_path):
    source = SyntheticTileSource(max_zoom=5)
    paper = TileEmbedder(model, source, cache_dir=None, memory=False)  # every tile encoded on every call
    cached = TileEmbedder(model, source, cache_dir=tmp_path)
    cached.embed_level(1)
    for seed in range(3):
        photo = photo_vector(model, seed)
        a = beam_search(photo, model.zooms, paper, k=4)
        b = beam_search(photo, model.zooms, cached, k=4)
        assert a.best_tile == b.best_tile
        for sa, sb in zip(a.steps, b.steps):
            assert np.array_equal(sa.tiles, sb.tiles) and np.array_equal(sa.kept, sb.kept)
            assert np.allclose(sa.scores, sb.scores, atol=1e-6)
    assert paper.encoded > cached.encoded
    # A new embedder on the same cache file encodes nothing for what is stored.
    again = TileEmbedder(model, source, cache_dir=tmp_path)
    result = beam_search(photo_vector(model, 0), model.zooms, again, k=4)
    assert again.encoded == 0 and result.best_tile == beam_search(photo_vector(model, 0), model.zooms, paper, 4).best_tile
    assert again.store.path == cached.store.path


def test_cache_key_changes_with_weights(model, tmp_path):
    source = SyntheticTileSource(max_zoom=3)
    first = TileEmbedder(model, source, cache_dir=tmp_path)
    other = MapTileModel(preset("tiny"), (1, 3, 5))
    with torch.no_grad():
        other.levels["3"].proj.mul_(2)
    assert TileEmbedder(other, source, cache_dir=tmp_path).store.path != first.store.path


def test_missing_tiles_are_skipped_and_remembered(model, tmp_path):
    gone = {(1, 0, 0), (1, 1, 1)}
    source = SyntheticTileSource(max_zoom=3, missing=gone)
    embedder = TileEmbedder(model, source, cache_dir=tmp_path)
    have, missing = embedder.embed_level(1)
    assert (have, missing) == (2, 2)
    vectors, ok = TileEmbedder(model, source, cache_dir=tmp_path)(1, world_tiles(1))
    assert ok.tolist() == [False, True, True, False] and np.allclose(np.linalg.norm(vectors[ok], axis=1), 1, atol=1e-5)


def test_cold_cache_search_embeds_and_reads_only_the_tiles_it_visits(model, tmp_path):
    """Below what was pre-embedded, a search encodes only the tiles it visits and stores them for the next photo;
    a later search reads back only its own rows from the disk cache, never a whole level."""
    from geoapp.geo.regions import parse_region
    from geoapp.geo.tiles import tiles_covering

    source = SyntheticTileSource(max_zoom=5)
    region = tiles_covering(parse_region("bbox:45,5,48,11"), 5)  # a Switzerland-sized box at the deepest level
    first = TileEmbedder(model, source, cache_dir=tmp_path)
    assert first.embed_level(5, region) == (len(region), 0) and first.store.count(5) == len(region)
    result = beam_search(photo_vector(model, 0), model.zooms, first, k=2)
    visited5 = {tuple(t) for t in result.steps[-1].tiles.tolist()}
    new5 = visited5 - {tuple(t) for t in region.tolist()}
    assert first.encoded == len(region) + 4 + len(result.steps[1].tiles) + len(new5)
    assert first.store.count(5) == len(region) + len(new5)
    assert first.store.count(5) < 4 ** 5  # the level was never embedded whole
    again = TileEmbedder(model, source, cache_dir=tmp_path, memory_tiles=10_000)
    same = beam_search(photo_vector(model, 0), model.zooms, again, k=2)
    assert again.encoded == 0 and same.best_tile == result.best_tile
    assert again.held == sum(len({tuple(t) for t in step.tiles.tolist()}) for step in same.steps)


def test_the_memory_cache_is_bounded(model, tmp_path):
    source = SyntheticTileSource(max_zoom=3)
    embedder = TileEmbedder(model, source, cache_dir=tmp_path, memory_tiles=10)
    have, _ = embedder.embed_level(3)
    assert have == 4 ** 3 and embedder.held == 10 and embedder.store.count(3) == 4 ** 3
    encoded = embedder.encoded
    vectors, ok = embedder(3, world_tiles(3)[:30])  # evicted ones come back from the disk cache, not re-encoded
    assert ok.all() and embedder.encoded == encoded and embedder.held == 10
