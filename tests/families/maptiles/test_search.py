"""Beam search on a synthetic world whose answer is known, region restriction, seeds, missing tiles."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geoapp.families.maptiles.search import SearchError, beam_search, expand, flat_search, tile_boxes, world_tiles
from geoapp.geo.regions import parse_region
from geoapp.geo.tiles import latlon_to_tile, tile_center, tiles_covering


def unit(lat, lon) -> np.ndarray:
    lat, lon = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1).astype(np.float32)


def sphere_embed(missing: set | None = None):
    """A 'map encoder' whose tile embedding is the unit vector of the tile centre: the best tile is the nearest."""
    calls = []

    def embed(zoom, tiles):
        calls.append((zoom, len(tiles)))
        lat, lon = tile_center(tiles[:, 0], tiles[:, 1], tiles[:, 2])
        ok = np.array([tuple(t) not in (missing or set()) for t in tiles.tolist()], bool)
        return unit(lat, lon).reshape(-1, 3), ok

    embed.calls = calls
    return embed


@pytest.mark.parametrize("lat,lon", [(48.8566, 2.3522), (-33.87, 151.21), (40.71, -74.0), (64.1, -21.9)])
def test_finds_the_tile_holding_the_answer(lat, lon):
    embed = sphere_embed()
    result = beam_search(unit(lat, lon), (2, 4, 6, 8), embed, k=4)
    x, y = latlon_to_tile(lat, lon, 8)
    assert result.best_tile == (8, int(x), int(y))
    assert [s.zoom for s in result.steps] == [2, 4, 6, 8]
    assert len(result.steps[0].tiles) == 16 and all(len(s.tiles) == 4 * 16 for s in result.steps[1:])
    assert all(len(s.kept) == 4 for s in result.steps)
    assert embed.calls == [(2, 16), (4, 64), (6, 64), (8, 64)]
    # The paper's answer: the centre of the best final tile.
    assert np.allclose(result.answer, [float(v) for v in tile_center(8, int(x), int(y))])


def test_children_are_four_by_four_two_levels_down():
    kids = expand(np.array([[4, 3, 5]]), 6)
    assert kids.shape == (16, 3) and set(kids[:, 0]) == {6}
    assert set(kids[:, 1]) == {12, 13, 14, 15} and set(kids[:, 2]) == {20, 21, 22, 23}
    assert len(world_tiles(4)) == 256


def test_beam_equals_flat_search_when_k_is_large():
    embed = sphere_embed()
    photo = unit(10.0, 20.0)
    beam = beam_search(photo, (1, 3), embed, k=4)
    flat = flat_search(photo, 3, embed)
    assert beam.best_tile == flat.best_tile


def test_region_restriction_keeps_every_tile_inside():
    france = parse_region("FR")
    geometry = france.geometry
    photo = unit(-33.87, 151.21)  # Sydney: the search must still stay in France

    def inside(tiles):
        boxes = shapely.box(*tile_boxes(tiles).T)
        return shapely.intersects(geometry, boxes) & ~shapely.touches(geometry, boxes)

    result = beam_search(photo, (4, 6, 8), sphere_embed(), k=3, start=tiles_covering(france, 4), inside=inside)
    for step in result.steps:
        assert inside(step.tiles).all()
    south, west, north, east = france.bounds
    lat, lon = result.answer
    assert south - 1 < lat < north + 1 and west - 1 < lon < east + 1


def test_seeds_join_every_level():
    photo = unit(-33.87, 151.21)
    result = beam_search(photo, (2, 4), sphere_embed(), k=1, seeds=np.array([[48.85, 2.35]]))
    assert all(step.seeded in (0, 1) for step in result.steps) and result.steps[1].seeded == 1
    x, y = latlon_to_tile(48.85, 2.35, 4)
    assert (4, int(x), int(y)) in {tuple(t) for t in result.steps[1].tiles.tolist()}


def test_missing_tiles_are_dropped_and_an_empty_level_is_a_clear_error():
    everything = {tuple(t) for t in world_tiles(1).tolist()}
    with pytest.raises(SearchError, match="no map tile"):
        beam_search(unit(0, 0), (1,), sphere_embed(missing=everything), k=2)
    one = {tuple(world_tiles(1)[0])}
    result = beam_search(unit(0, 0), (1,), sphere_embed(missing=one), k=4)
    assert len(result.final.tiles) == 3
    with pytest.raises(SearchError):
        beam_search(unit(0, 0), (1,), sphere_embed(), k=0)
