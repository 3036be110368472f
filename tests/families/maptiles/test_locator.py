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


def _point(lon, lat):
    from shapely.geometry import Point

    return Point(lon, lat)


def _box(west, south, east, north):
    from shapely.geometry import box

    return box(west, south, east, north)


def test_geoclip_seeds_join_the_beam(family, photo, monkeypatch):
    """GeoCLIP's candidates' tiles join every level (a stand-in GeoCLIP answers a point the beam left)."""
    from geoapp.geo.tiles import tile_center
    from geoapp.results.prediction import build_prediction

    kept = family.predict(photo, top_k=2, beam_k=1).evidence[0].to_dict()["levels"][0]["kept"][0]
    lat, lon = (float(v) for v in tile_center(1, 1 - kept["x"], 1 - kept["y"]))  # the opposite quarter

    class FakeGeoclip:
        def predict_batch(self, images, top_k, region):
            return [build_prediction("x", [lat], [lon], [1.0], top_k=1, merge_km=25, place_names=False)
                    for _ in images]

    monkeypatch.setattr(family, "_geoclip", FakeGeoclip())
    result = family.predict(photo, top_k=2, beam_k=1, seed_geoclip=1)
    assert result.parameters["seeded_tiles"] >= 1
    scored = {(t["z"], t["x"], t["y"]) for level in result.evidence[0].to_dict()["levels"] for t in level["kept"]}
    assert result.parameters["seed_geoclip"] == 1 and scored


def test_geoclip_seeding_failure_is_a_warning(family, photo, monkeypatch):
    class Broken:
        def predict_batch(self, *args, **kwargs):
            raise FileNotFoundError("Missing weights: open_clip_model.safetensors")

    monkeypatch.setattr(family, "_geoclip", Broken())
    result = family.predict(photo, top_k=2, beam_k=2, seed_geoclip=3)
    assert result.ok and any("GeoCLIP-seeded search skipped" in w for w in result.warnings)
