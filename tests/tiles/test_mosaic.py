"""Mosaics around a point: centring, the antimeridian, enlargement, missing tiles."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from geoapp.tiles.archives import PMTilesWriter, open_archive
from geoapp.tiles.base import TileSourceError
from geoapp.tiles.mosaic import mosaic_around


def _colour_tile(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    """Zoom 1 only: four tiles of four colours, and tile (1, 1, 1) missing."""
    path = tmp_path_factory.mktemp("mosaic") / "q.pmtiles"
    writer = PMTilesWriter(path, name="quadrants", attribution="test tiles", image_format="png")
    writer.add(1, 0, 0, _colour_tile((255, 0, 0)))
    writer.add(1, 1, 0, _colour_tile((0, 255, 0)))
    writer.add(1, 0, 1, _colour_tile((0, 0, 255)))
    writer.close()
    with open_archive(path) as source:
        yield source


def test_centre_of_the_world_takes_four_tiles(quadrants):
    mosaic = mosaic_around(quadrants, 0.0, 0.0, 1, size_px=256, mark=False)
    pixels = np.asarray(mosaic.image)
    assert tuple(pixels[10, 10]) == (255, 0, 0) and tuple(pixels[10, 245]) == (0, 255, 0)
    assert tuple(pixels[245, 10]) == (0, 0, 255) and tuple(pixels[245, 245]) == (128, 128, 128)
    assert mosaic.tiles_used == 3 and mosaic.missing == 1
    assert "test tiles" in mosaic.caption() and "1 tile(s) not available" in mosaic.caption()


def test_antimeridian_wraps(quadrants):
    mosaic = mosaic_around(quadrants, 40.0, 179.9, 1, size_px=128, mark=False)
    pixels = np.asarray(mosaic.image)
    assert tuple(pixels[64, 5]) == (0, 255, 0)  # left of the point: the eastern hemisphere's tile
    assert tuple(pixels[64, 122]) == (255, 0, 0)  # right, across the antimeridian: the western one


def test_enlargement_and_limits(quadrants):
    mosaic = mosaic_around(quadrants, 45.0, -90.0, 3, size_px=200)
    assert mosaic.tile_zoom == 1 and mosaic.image.size == (200, 200)
    assert "stops at zoom 1" in mosaic.caption()
    with pytest.raises(TileSourceError, match="zoom 5 or less"):
        mosaic_around(quadrants, 45.0, -90.0, 9)
    with pytest.raises(TileSourceError, match="between 64 and 2048"):
        mosaic_around(quadrants, 45.0, -90.0, 1, size_px=10)
