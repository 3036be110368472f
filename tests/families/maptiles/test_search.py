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


def test_seed_tiles_are_kept_beyond_k_and_expanded_to_the_last_level():
    """The paper's future work: GeoCLIP's tile is *added* to the k kept tiles (k + 1 go on), it does not take one
    of the k places; its area is therefore searched down to the last level."""
    photo = unit(-33.87, 151.21)  # Sydney; the seed is Paris, which the beam on its own never keeps
    paris = np.array([[48.85, 2.35]])
    plain = beam_search(photo, (2, 4, 6), sphere_embed(), k=1)
    seeded = beam_search(photo, (2, 4, 6), sphere_embed(), k=1, seeds=paris)
    assert [len(step.kept) for step in plain.steps] == [1, 1, 1]
    assert [len(step.kept) for step in seeded.steps] == [2, 2, 2] and [s.seeded for s in seeded.steps] == [1, 1, 1]
    x, y = latlon_to_tile(48.85, 2.35, 6)
    paris6 = (6, int(x), int(y))
    assert paris6 not in {tuple(t) for t in plain.final.tiles.tolist()}
    assert tuple(seeded.final.kept_tiles()[-1]) == paris6  # kept after the best k
    # The seed's whole 4x4 block of the last level was scored (its zoom-4 parent was expanded), not one tile.
    px, py = latlon_to_tile(48.85, 2.35, 4)
    block = {tuple(t) for t in expand(np.array([[4, int(px), int(py)]]), 6).tolist()}
    assert block <= {tuple(t) for t in seeded.final.tiles.tolist()}
    assert seeded.best_tile == plain.best_tile  # the seed never displaces the best tile


def misleading_coarse_embed(fine_zoom: int):
    """Coarse levels look half a world away (longitude + 180°); only ``fine_zoom`` sees the true place."""
    def embed(zoom, tiles):
        lat, lon = tile_center(tiles[:, 0], tiles[:, 1], tiles[:, 2])
        if zoom < fine_zoom:
            lon = (np.asarray(lon) + 360.0) % 360.0 - 180.0
        return unit(lat, lon).reshape(-1, 3), np.ones(len(tiles), bool)

    return embed


def test_seeding_rescues_an_area_the_coarse_levels_drop():
    """The photo is at (48.0, 3.0); the coarse encoders mislead the beam to the other side of the Earth, and GeoCLIP's
    candidate (48.0, 9.0) is in the right zoom-4 tile but the wrong zoom-6 tile. Only a seed tile that is *kept and
    expanded* lets the fine level find the photo's own tile: without seeding the answer is half a world away, and
    with the seed merely scored as a candidate the answer is GeoCLIP's tile, not the photo's."""
    truth, geoclip = (48.0, 3.0), (48.0, 9.0)
    tx, ty = latlon_to_tile(*truth, 6)
    gx, gy = latlon_to_tile(*geoclip, 6)
    assert (int(tx), int(ty)) != (int(gx), int(gy))
    assert tuple(np.asarray(latlon_to_tile(*truth, 4)).tolist()) == tuple(np.asarray(latlon_to_tile(*geoclip, 4)).tolist())
    result = beam_search(unit(*truth), (2, 4, 6), misleading_coarse_embed(6), k=1, seeds=np.array([geoclip]))
    assert result.best_tile == (6, int(tx), int(ty))
    unseeded = beam_search(unit(*truth), (2, 4, 6), misleading_coarse_embed(6), k=1)
    assert abs(unseeded.answer[1] - truth[1]) > 90  # what the test guards against: the coarse levels alone fail


def test_missing_tiles_are_dropped_and_an_empty_level_is_a_clear_error():
    everything = {tuple(t) for t in world_tiles(1).tolist()}
    with pytest.raises(SearchError, match="no map tile"):
        beam_search(unit(0, 0), (1,), sphere_embed(missing=everything), k=2)
    one = {tuple(world_tiles(1)[0])}
    result = beam_search(unit(0, 0), (1,), sphere_embed(missing=one), k=4)
    assert len(result.final.tiles) == 3
    with pytest.raises(SearchError):
        beam_search(unit(0, 0), (1,), sphere_embed(), k=0)
