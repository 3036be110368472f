"""The offline pyramid is geographically right: land where Natural Earth has land, water elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.geo.countries import get_country_index
from geoapp.geo.tiles import latlon_to_tile, tile_lat, tile_lon
from geoapp.tiles.archives import open_archive
from geoapp.tiles.pyramid import load_raster, render_tile, supersample_factor

GRID = 64  # pixels sampled per tile side for the comparison


def _colour_land_fraction(image) -> float:
    """Blue Marble water is distinctly blue; everything else (vegetation, desert, ice) is land."""
    rgb = np.asarray(image.resize((GRID, GRID), 0)).astype(int)
    water = (rgb[..., 2] > rgb[..., 0] + 12) & (rgb[..., 2] >= rgb[..., 1])
    return float(1.0 - water.mean())


def _natural_earth_land_fraction(z: int, x: int, y: int) -> float:
    """Share of the tile's pixels (equal areas on the map) whose centre is on Natural Earth land."""
    steps = (np.arange(GRID) + 0.5) / GRID
    lat, lon = np.meshgrid(tile_lat(y + steps, z), tile_lon(x + steps, z), indexing="ij")
    return float(get_country_index().is_land(lat.ravel(), lon.ravel()).mean())


def test_pyramid_has_every_tile(offline_pyramid):
    with open_archive(offline_pyramid) as source:
        assert (source.info.min_zoom, source.info.max_zoom) == (0, 3) or source.info.max_zoom >= 3
        assert source.info.online is False and source.info.caching_allowed
        assert "NASA" in source.info.attribution
        for z in range(4):
            for y in range(2**z):
                for x in range(2**z):
                    assert source.tile(z, x, y).image().size == (256, 256)


def test_land_fraction_matches_natural_earth(offline_pyramid):
    differences = []
    with open_archive(offline_pyramid) as source:
        for z in (2, 3):
            for y in range(2**z):
                for x in range(2**z):
                    colour = _colour_land_fraction(source.tile(z, x, y).image())
                    land = _natural_earth_land_fraction(z, x, y)
                    south = float(tile_lat(y + 1, z))
                    differences.append(abs(colour - land))
                    if south > -60.0:  # ice shelves and sea ice are white in the imagery but sea in Natural Earth
                        assert abs(colour - land) < 0.1, (z, x, y, colour, land)
    assert np.mean(differences) < 0.04


def test_paris_is_land_and_mid_pacific_is_water(offline_pyramid):
    with open_archive(offline_pyramid) as source:
        px, py = latlon_to_tile(48.8566, 2.3522, 3)
        assert _colour_land_fraction(source.tile(3, int(px), int(py)).image()) > 0.6
        wx, wy = latlon_to_tile(0.0, -150.0, 3)
        assert _colour_land_fraction(source.tile(3, int(wx), int(wy)).image()) < 0.02


def test_render_is_per_pixel_not_a_slice():
    """A z1 tile's top rows are Mercator-stretched: far more rows than the equirectangular slice would give."""
    raster = load_raster("bluemarble")
    assert supersample_factor(raster, 0) > 1 and supersample_factor(raster, 6) == 1
    tile = render_tile(raster, 1, 0, 0)
    # Row 128 of the NW z1 tile is at latitude 66.5 deg (Mercator), not 42.5 (halfway in degrees).
    assert float(tile_lat(0.5, 1)) == pytest.approx(66.51, abs=0.01)
    assert tile.shape == (256, 256, 3) and tile.dtype == np.uint8


def test_a_shallow_pyramid_is_deepened_keeping_its_tiles(tmp_path, monkeypatch):
    """ensure_offline_pyramid(max_zoom=N) on a pyramid that stops short of N deepens it (it used to return the
    shallow one, so the map-tile model silently lost its last level); tiles already built are copied, not redone."""
    from geoapp.tiles.registry import built_max_zoom, default_pyramid_path, ensure_offline_pyramid

    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path))
    ensure_offline_pyramid(max_zoom=1)
    with open_archive(default_pyramid_path()) as shallow:
        before = {(z, x, y): shallow.tile(z, x, y).data for z in (0, 1) for x in range(2**z) for y in range(2**z)}
        assert shallow.info.max_zoom == 1
    assert ensure_offline_pyramid(max_zoom=2) == default_pyramid_path() and built_max_zoom() == 2
    with open_archive(default_pyramid_path()) as deeper:
        assert all(deeper.tile(*key).data == data for key, data in before.items())
        assert all(deeper.tile(2, x, y).ok for x in range(4) for y in range(4))
    ensure_offline_pyramid(max_zoom=1)  # deep enough already: left as it is
    assert built_max_zoom() == 2
