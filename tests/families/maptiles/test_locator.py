"""The family end to end on a tiny random model over the synthetic tile source (no files, no network)."""

from __future__ import annotations

import json

import pytest
import torch

from geoapp.results import formats
from geoapp.families import LoadOptions, registry
from geoapp.families.maptiles import CROSSVIEW_CAVEAT
from geoapp.families.maptiles.model import CheckpointMeta, MapTileModel, preset, save_checkpoint
from geoapp.geo.regions import parse_region

from ...conftest import shared_path


@pytest.fixture(scope="module")
def family():
    spec = registry.get("maptiles")
    return spec.load(LoadOptions(device="cpu", backbone_weights="random", extras=dict(spec.test_options)))


@pytest.fixture(scope="module")
def photo():
    return str(shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg"))


def test_prediction_candidates_are_final_tiles_with_evidence(family, photo):
    result = family.predict(photo, top_k=5, beam_k=4)
    assert result.ok and 1 <= len(result.candidates) <= 5
    assert abs(sum(result.surface.probability) - 1) < 1e-6 and len(result.surface) == 4 * 16
    assert result.parameters["beam_k"] == 4 and result.parameters["zooms"] == [1, 3]
    keys = [item.key for item in result.evidence]
    assert keys == ["search_path", "best_tiles"]
    path = result.evidence[0].to_dict()
    assert [len(level["kept"]) for level in path["levels"]] == [4, 4]
    layers = result.evidence[0].map_layers()
    assert len(layers) == 1 and len(layers[0].features) == 8
    assert result.evidence[1].images() and "<img" in result.evidence[1].html()
    assert CROSSVIEW_CAVEAT in result.warnings
    data = json.loads(formats.to_json([result]))[0]
    assert data["search_path"]["k"] == 4 and len(data["best_tiles"]) == 4


def test_search_path_is_drawn_on_the_map(family, photo):
    from geoapp.ui.maps.render import MapAssets, MapOptions, prediction_map_html

    result = family.predict(photo, top_k=3, beam_k=2)
    page = prediction_map_html(result, MapOptions(MapAssets.cdn(), online_tiles=False))
    assert "Map-tile search path" in page and "similarity" in page


def test_region_keeps_the_search_inside(family, photo):
    result = family.predict(photo, top_k=3, beam_k=3, region="FR")
    france = parse_region("FR")
    assert all(france.geometry.buffer(0.05).contains(_point(c.lon, c.lat)) for c in result.candidates)
    for level in result.evidence[0].to_dict()["levels"]:
        for tile in level["kept"]:
            west, south, east, north = tile["bounds"]
            assert france.geometry.intersects(_box(west, south, east, north))


def test_bad_inputs_give_records(family, photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"junk")
    results = family.predict_batch([str(broken), photo, str(tmp_path / "absent.jpg")], top_k=2, beam_k=2)
    assert [r.ok for r in results] == [False, True, False] and all(r.error for r in (results[0], results[2]))


def test_grad_cam_towards_the_chosen_tile(family, photo):
    result = family.predict(photo, top_k=1, beam_k=2)
    maps = family.explain(photo, result.top.lat, result.top.lon)
    assert list(maps) == ["photo"] and "map tile 3/" in maps["photo"].target


def test_tiles_embed_command(tmp_path, monkeypatch, capsys):
    from geoapp.cli.main import main

    torch.manual_seed(0)
    model = MapTileModel(preset("tiny"), (1, 3))
    checkpoint = save_checkpoint(model, tmp_path / "tiny.pt", CheckpointMeta("tiny", (1, 3), crossview_demo=True,
                                 training={"tile_source": "synthetic"}), include_tower=True)
    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["tiles", "embed", "--zooms", "1,3", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "zoom 1: 4 tiles embedded" in out and "zoom 3: 64 tiles embedded" in out
    assert main(["tiles", "embed", "--zooms", "2", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 2
    # Deep levels where the analyst works: only the tiles of a box (or a region) are embedded.
    capsys.readouterr()
    assert main(["tiles", "embed", "--zooms", "3", "--bbox", "40,0,50,10", "--checkpoint", str(checkpoint),
                 "--device", "cpu"]) == 0
    assert "zoom 3 covering Box 40..50°N, 0..10°E: 2 tiles embedded" in capsys.readouterr().out
    assert main(["tiles", "embed", "--zooms", "3", "--bbox", "50,0,40,10", "--checkpoint", str(checkpoint),
                 "--device", "cpu"]) == 2


def _point(lon, lat):
    from shapely.geometry import Point

    return Point(lon, lat)


def _box(west, south, east, north):
    from shapely.geometry import box

    return box(west, south, east, north)


def test_geoclip_seed_tile_is_added_to_the_kept_tiles(family, photo, monkeypatch):
    """GeoCLIP's candidate's tile is kept *beyond* the k best at every level (k + 1 expanded), so its children are
    scored at the last level: a stand-in GeoCLIP answers a point in the quarter the beam did not keep."""
    from geoapp.geo.tiles import latlon_to_tile, tile_center
    from geoapp.results.prediction import build_prediction

    plain = family.predict(photo, top_k=2, beam_k=1).evidence[0].to_dict()["levels"]
    kept = plain[0]["kept"][0]
    lat, lon = (float(v) for v in tile_center(1, 1 - kept["x"], 1 - kept["y"]))  # the opposite quarter

    class FakeGeoclip:
        def predict_batch(self, images, top_k, region):
            return [build_prediction("x", [lat], [lon], [1.0], top_k=1, merge_km=25, place_names=False)
                    for _ in images]

    monkeypatch.setattr(family, "_geoclip", FakeGeoclip())
    result = family.predict(photo, top_k=2, beam_k=1, seed_geoclip=1)
    levels = result.evidence[0].to_dict()["levels"]
    assert [len(level["kept"]) for level in plain] == [1, 1]
    assert [len(level["kept"]) for level in levels] == [2, 2]  # k + 1 at every level
    assert [level["kept"][-1]["seed"] for level in levels] == [True, True]
    assert result.parameters["seed_geoclip"] == 1 and result.parameters["seeded_tiles"] == 2
    sx, sy = (int(v) for v in latlon_to_tile(lat, lon, 1))
    assert (levels[0]["kept"][-1]["x"], levels[0]["kept"][-1]["y"]) == (sx, sy)
    # The last level scored the seed quarter's 16 children as well as the beam's: 32 candidates, not 16 (+1).
    assert levels[1]["scored"] == 32 and len(result.surface) == 32


def test_geoclip_seeding_failure_is_a_warning(family, photo, monkeypatch):
    class Broken:
        def predict_batch(self, *args, **kwargs):
            raise FileNotFoundError("Missing weights: open_clip_model.safetensors")

    monkeypatch.setattr(family, "_geoclip", Broken())
    result = family.predict(photo, top_k=2, beam_k=2, seed_geoclip=3)
    assert result.ok and any("GeoCLIP-seeded search skipped" in w for w in result.warnings)


def _tiny_checkpoint(path, tile_source: str):
    torch.manual_seed(0)
    model = MapTileModel(preset("tiny"), (1, 3))
    return save_checkpoint(model, path, CheckpointMeta("tiny", (1, 3), crossview_demo=True,
                                                       training={"tile_source": tile_source}), include_tower=True)


def test_the_offline_pyramid_is_deepened_to_the_models_last_level(tmp_path, monkeypatch, photo):
    """Issue 26 item 12: a pyramid built shallower than the model's levels (the app's start-up one) is deepened on
    first use, so the search reaches the model's last level instead of silently stopping one level early."""
    from geoapp.tiles import registry as tile_registry
    from geoapp.tiles.pyramid import build_pyramid

    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tile_registry, "AUTO_MAX_ZOOM", 2)  # keep the build small: the model needs zoom 3
    build_pyramid(tile_registry.default_pyramid_path(), max_zoom=2)
    family = registry.get("maptiles").load(LoadOptions(device="cpu", checkpoint=_tiny_checkpoint(
        tmp_path / "tiny.pt", "offline")))
    assert family.zooms == (1, 3) and family.load_warnings == []
    assert tile_registry.built_max_zoom() == 3
    result = family.predict(photo, top_k=2, beam_k=2)
    assert result.parameters["zooms"] == [1, 3] and not any("truncated" in w for w in result.warnings)


def test_a_truncated_search_warns_on_the_result_the_record_and_stderr(tmp_path, photo, capsys):
    """A tile source that stops short of the model's last level (here a user's zoom 0-2 archive; the model needs
    zoom 3) cannot be deepened: every result, every record and the CLI's stderr say the search was truncated."""
    from geoapp.cli.main import main
    from geoapp.tiles.pyramid import build_pyramid
    from geoapp.ui.views import banner_html

    archive = build_pyramid(tmp_path / "shallow.pmtiles", max_zoom=2).path
    checkpoint = _tiny_checkpoint(tmp_path / "tiny.pt", str(archive))
    family = registry.get("maptiles").load(LoadOptions(device="cpu", checkpoint=checkpoint))
    assert family.zooms == (1,)
    result = family.predict(photo, top_k=2, beam_k=2)
    warning = next(w for w in result.warnings if w.startswith("Map-tile search truncated"))
    assert "stops at zoom 2" in warning and "ends at zoom 1 instead of the model's zoom 3" in warning
    assert warning in formats.to_records([result])[0]["warnings_json"]
    assert "Map-tile search truncated" in banner_html([result], random_weights=False)
    assert main(["predict", "--model", "maptiles", "--checkpoint", str(checkpoint), "--device", "cpu",
                 "--format", "json", photo]) == 0
    out, err = capsys.readouterr()
    assert "WARNING: Map-tile search truncated" in err
    assert any(w.startswith("Map-tile search truncated") for w in json.loads(out)[0]["warnings"])
