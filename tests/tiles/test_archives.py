"""PMTiles and MBTiles round trips; MBTiles rows are TMS (flipped)."""

from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image

from geoapp.tiles.archives import (
    MBTilesWriter,
    PMTilesWriter,
    archive_writer,
    open_archive,
)
from geoapp.tiles.base import TileSourceError


def _png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(out, format="PNG")
    return out.getvalue()


TILES = {(0, 0, 0): (10, 20, 30), (2, 1, 0): (200, 0, 0), (2, 1, 3): (0, 200, 0), (5, 30, 2): (0, 0, 200)}


@pytest.mark.parametrize("suffix", [".pmtiles", ".mbtiles"])
def test_round_trip(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    writer = archive_writer(path, name="test", attribution="me", licence="CC0", caching_allowed=False,
                            image_format="png")
    for (z, x, y), colour in TILES.items():
        writer.add(z, x, y, _png(colour))
    writer.close()
    with open_archive(path) as source:
        assert (source.info.min_zoom, source.info.max_zoom) == (0, 5)
        assert source.info.attribution == "me" and source.info.licence == "CC0"
        assert source.info.caching_allowed is False and source.info.image_format == "png"
        for (z, x, y), colour in TILES.items():
            assert source.tile(z, x, y).image().getpixel((5, 5)) == colour
        assert source.tile(2, 0, 0).missing  # not stored
        assert source.tile(3, 0, 0).missing  # a zoom with no tiles
        bad = source.tile(2, 9, 0)
        assert bad.error and "does not exist" in bad.error
        assert source.tile(9, 0, 0).missing  # beyond the zoom range


def test_mbtiles_rows_are_tms(tmp_path):
    path = tmp_path / "flip.mbtiles"
    writer = MBTilesWriter(path, name="flip")
    writer.add(2, 1, 0, b"north")  # XYZ row 0 = the northernmost row
    writer.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT zoom_level, tile_column, tile_row FROM tiles").fetchall() == [(2, 1, 3)]
    with open_archive(path) as source:
        assert source.tile(2, 1, 0).data == b"north"
        assert source.tile(2, 1, 3).missing


def test_pmtiles_clustered_and_readable_by_the_pmtiles_package(tmp_path):
    from pmtiles.reader import MmapSource, Reader

    path = tmp_path / "ref.pmtiles"
    writer = PMTilesWriter(path, name="ref", image_format="png")
    for (z, x, y), colour in TILES.items():
        writer.add(z, x, y, _png(colour))
    writer.close()
    with open(path, "rb") as stream:
        reader = Reader(MmapSource(stream))
        assert reader.header()["clustered"]
        assert reader.get(2, 1, 3) == _png((0, 200, 0))
        assert reader.metadata()["name"] == "ref"


def test_bad_archives_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.pmtiles"
    junk.write_bytes(b"not a tile archive at all" * 10)
    with pytest.raises(TileSourceError, match="not a readable PMTiles"):
        open_archive(junk)
    with pytest.raises(TileSourceError, match="not found"):
        open_archive(tmp_path / "missing.pmtiles")
    with pytest.raises(TileSourceError, match=".pmtiles or .mbtiles"):
        archive_writer(tmp_path / "x.zip", name="x")
    corrupt = tmp_path / "corrupt.pmtiles"
    writer = PMTilesWriter(corrupt, name="c", image_format="png")
    writer.add(0, 0, 0, b"\x89PNG broken")
    writer.close()
    with open_archive(corrupt) as source:
        result = source.tile(0, 0, 0)
        assert result.ok
        with pytest.raises(TileSourceError, match="not a readable image"):
            result.image()


def test_tiles_code_never_imports_torch_or_gradio():
    import subprocess
    import sys

    code = ("import sys; import geoapp.geo.tiles, geoapp.tiles.registry, geoapp.cli.tiles, geoapp.tiles.fetch, "
            "geoapp.tiles.mosaic, geoapp.tiles.show; print(sorted({'torch', 'gradio'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
