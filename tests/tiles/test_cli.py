"""python -m geoapp tiles …, in process (main(argv)), offline."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from geoapp.cli.main import main
from geoapp.tiles.archives import open_archive


def test_build_offline_and_show(tmp_path, capsys):
    output = tmp_path / "world.pmtiles"
    assert main(["tiles", "build-offline", "--max-zoom", "2", "--output", str(output)]) == 0
    with open_archive(output) as source:
        assert (source.info.min_zoom, source.info.max_zoom) == (0, 2)
    tile = tmp_path / "tile.png"
    # Beyond the archive's zoom: the z2 tile is enlarged, and the output says so.
    assert main(["tiles", "show", "48.8566,2.3522", "--zoom", "5", "--source", str(output), "--output", str(tile)]) == 0
    out = capsys.readouterr().out
    assert "tile 5/16/11" in out and "enlarged from zoom 2" in out
    pixels = np.asarray(Image.open(tile).convert("RGB")).astype(int)
    assert pixels.shape == (256, 256, 3)
    assert (pixels[..., 2] > pixels[..., 0] + 12).mean() < 0.5  # northern France: mostly land


def test_show_uses_the_offline_pyramid_and_info_lists_sources(offline_pyramid, tmp_path, capsys):
    tile = tmp_path / "paris.png"
    assert main(["tiles", "show", "48.8566,2.3522", "--zoom", "3", "--output", str(tile)]) == 0
    assert "tile 3/4/2" in capsys.readouterr().out
    mosaic = tmp_path / "mosaic.png"
    assert main(["tiles", "show", "48.8566,2.3522", "--zoom", "4", "--size", "300", "--output", str(mosaic)]) == 0
    assert Image.open(mosaic).size == (300, 300)
    capsys.readouterr()
    assert main(["tiles", "info", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"offline", "gibs-bluemarble", "esri-imagery"} <= {e["name"] for e in listed}
    assert main(["tiles", "info", "offline"]) == 0
    assert "public domain" in capsys.readouterr().out


def test_fetch_is_resumable_and_respects_licences(offline_pyramid, tmp_path, capsys):
    output = tmp_path / "fr.pmtiles"
    args = ["tiles", "fetch", "--source", str(offline_pyramid), "--region", "FR", "--zoom", "2-3", "--output", str(output)]
    assert main(args) == 0
    assert "0 already there" in capsys.readouterr().out
    with open_archive(output) as source:
        assert source.info.max_zoom == 3 and source.tile(3, 4, 2).ok
    staging = tmp_path / "fr.mbtiles"
    assert main([*args[:-1], str(staging)]) == 0
    capsys.readouterr()
    assert main([*args[:-1], str(staging)]) == 0  # everything already there: nothing fetched again
    assert " 0 tiles written" in capsys.readouterr().out
    assert main(["tiles", "fetch", "--source", "esri-imagery", "--region", "FR", "--zoom", "3", "--output",
                 str(tmp_path / "esri.pmtiles")]) == 1
    assert "does not allow storing" in capsys.readouterr().err
    assert not (tmp_path / "esri.pmtiles").exists()


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["tiles", "show", "95,2", "--zoom", "3", "--source", "offline", "--output", str(tmp_path / "x.png")]) == 2
    assert "LAT,LON" in capsys.readouterr().err
    assert main(["tiles", "info", "no-such-source"]) == 1
    assert "unknown tile source" in capsys.readouterr().err
    assert main(["tiles", "show", "1,2", "--zoom", "3", "--source", "gibs-bluemarble", "--offline",
                 "--output", str(tmp_path / "x.png")]) == 1
    assert "online tiles are off" in capsys.readouterr().err
