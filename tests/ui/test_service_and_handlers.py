"""The service layer and the tab handlers, called directly on the tiny random model."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest

from geoapp.ui.common import user_errors
from geoapp.ui.forms import (
    COMPARE_DIFFERENCE,
    REGION_CIRCLE,
    REGION_COUNTRY,
    LocateForm,
)
from geoapp.ui.locate_tab import LocateHandlers
from geoapp.ui.service import GeolocationService, ModelSettings, ModelUnavailableError
from geoapp.ui.text_map_tab import TextMapHandlers
from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO


def no_progress(*_args, **_kwargs) -> None:
    return None


def test_gradcam_on_the_tiny_model_is_finite_normalised_and_not_constant(ctx):
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    located = ctx.service.locate(LocateForm(files=(photo,), top_k=3))[0]
    result = ctx.service.gradcam(located, 1)
    heatmap = result.heatmap
    assert heatmap.ndim == 2 and np.isfinite(heatmap).all()
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
    assert heatmap.std() > 1e-3
    assert result.overlay.size == result.crop.size and result.random_weights


def test_locate_handler_returns_state_and_json_then_draws(ctx):
    handlers = LocateHandlers(ctx)
    photos = [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)), str(shared_path(*GPS_PHOTO))]
    # refinement is off by default for GeoCLIP; the family option field turns it on
    session, payload = handlers.locate(photos, 4, False, "geoclip", claimed_location="43.0, 11.0",
                                       model_options={"refine_km": "15"}, progress=no_progress)
    json.dumps(payload)  # the API answer is plain JSON
    assert payload["random_weights"] and "RANDOM WEIGHTS" in payload["warning"]
    assert [r["source"] for r in payload["results"]] == [IM2GPS_PHOTO, "DSCN0010.jpg"]
    assert all(len(r["candidates"]) == 4 for r in payload["results"])
    gps_record = payload["results"][1]
    assert gps_record["image"]["exif"]["gps_lat"] == pytest.approx(43.467448, abs=1e-4)
    assert [ref["label"] for ref in gps_record["references"]] == ["EXIF GPS (in the file)", "Claimed location"]

    banner, selector, summary, map_html, table, photo, exif, rank, evidence, evidence_view, fusion = \
        handlers.show(session, 1, False)
    assert fusion == ""  # no clues: no fused map
    assert evidence["visible"] is True and "Fine refinement" in evidence_view  # GeoCLIP: the refinement of its places
    assert all(r["parameters"]["refinement"]["radius_km"] == 15 for r in payload["results"])
    assert "RANDOM WEIGHTS" in banner and selector["visible"] and selector["value"] == 1
    assert "EXIF GPS" in summary and "geoapp-pin" in map_html and "geoapp-ref" in map_html
    assert table.value["headers"][-2:] == ["km from EXIF GPS (in the file)", "km from Claimed location"]
    assert len(table.column_widths) == len(table.value["headers"]) == 9
    assert photo is not None and "43.467448" in exif and rank["value"] == 1
    crop, overlay, caption, others = handlers.gradcam(session, 1, 2, progress=no_progress)
    assert overlay is not None and "RANDOM WEIGHTS" in caption and "#2" in caption and not others["visible"]


def test_locate_with_clues_and_same_place_fuses_one_map_with_areas(ctx):
    handlers = LocateHandlers(ctx)
    photos = [str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)), str(shared_path(*GPS_PHOTO))]
    tz = "tz:offset=+02:00,time=2024-06-21T12:00:00"
    session, payload = handlers.locate(photos, 3, False, "geoclip", claimed_location="43.0, 11.0", clues=f"{tz}\n",
                                       same_place=True, progress=no_progress)
    first, second = (r["fusion"] for r in payload["results"])
    assert first == second and first["photos"] == [IM2GPS_PHOTO, "DSCN0010.jpg"]
    assert [c["name"] for c in first["clues"]] == [tz]
    assert len(first["areas"]["features"]) == 4 and len(first["tempering"]["weights"]) == 2
    shown = handlers.show(session, 0, False)
    assert "Fused map of the same place" in shown[-1] and "90 %" in shown[-1] and "Claimed location" in shown[-1]
    assert "geoapp-area-90" in shown[3]
    with pytest.raises(gr.Error, match="drive:middle"):
        user_errors(handlers.locate)(photos, 3, False, "geoclip", clues="drive:middle", progress=no_progress)


def test_bad_file_and_unknown_country_are_readable_errors(ctx, tmp_path):
    handlers = LocateHandlers(ctx)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(gr.Error) as error:
        user_errors(handlers.locate)([str(broken)], progress=no_progress)
    assert "broken.jpg" in error.value.message
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    with pytest.raises(gr.Error) as error:
        user_errors(handlers.locate)([photo], region_mode=REGION_COUNTRY, country="Frnace", progress=no_progress)
    assert "Frnace" in error.value.message and "France" in error.value.message


def test_text_map_side_by_side_and_difference_share_candidates(ctx):
    handlers = TextMapHandlers(ctx)
    result, payload = handlers.text_map("a sandy beach", "a snowy mountain", COMPARE_DIFFERENCE, 5,
                                        region_mode=REGION_CIRCLE, circle_lat=46.5, circle_lon=8.0,
                                        circle_radius_km=60, progress=no_progress)
    assert [q["query"] for q in payload["queries"]] == ["a sandy beach", "a snowy mountain"]
    assert payload["region"]["key"].startswith("circle:") and payload["random_weights"]
    assert np.array_equal(result.first.surface.lat, result.second.surface.lat)
    banner, map_a, places_a, map_b, places_b, difference, column_b = handlers.show(result, False)
    assert difference["visible"] and "#b2182b" in difference["value"] and not map_a["visible"]
    assert len(places_a) == 5 and places_b["visible"] and column_b["visible"]


def test_missing_weights_are_reported_not_crashed(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))  # nothing there; the HF cache has no CLIP either
    service = GeolocationService(ModelSettings())  # real weights requested
    problem = service.weights_problem()
    if problem is None:
        pytest.skip("the real CLIP weights are installed on this machine")
    assert "python -m geoapp weights download" in problem and "open_clip_model.safetensors" in problem
    with pytest.raises(ModelUnavailableError, match="weights download"):
        service.locate(LocateForm(files=("/nonexistent.jpg",), model="geoclip"))
    assert service.status().problem == problem


def test_missing_clip_weights_fall_back_to_satworld(monkeypatch, tmp_path):
    from geoapp.families.satworld import CAVEAT as SATWORLD_NOTICE

    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))
    service = GeolocationService(ModelSettings())
    if service.weights_problem() is None:
        pytest.skip("the real CLIP weights are installed on this machine")
    assert service.default_model() == "satworld" and service.weights_problem("satworld") is None
    photo = shared_path("im2gps3k-dev", IM2GPS_PHOTO)
    results = service.locate(LocateForm(files=(str(photo),), model="satworld", top_k=3))
    prediction = results[0].prediction
    assert prediction.ok and len(prediction.candidates) == 3
    assert SATWORLD_NOTICE in prediction.warnings and not prediction.model["random_weights"]
    assert prediction.model["model"] == "satworld"


def test_translocator_runs_end_to_end_in_the_app_with_random_weights():
    import torch

    # The random model's values depend on the RNG state; fixed here so the test does not depend on
    # which tests ran before (an unlucky random model can give an all-zero Grad-CAM after the ReLU).
    torch.manual_seed(0)
    service = GeolocationService(ModelSettings(backbone_weights="random", device="cpu"))
    assert service.weights_problem("translocator") is None
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    located = service.locate(LocateForm(files=(photo,), model="translocator", top_k=3))[0]
    record = located.prediction.to_dict()
    assert located.prediction.ok and len(located.prediction.candidates) == 3 and record["random_weights"]
    assert located.prediction.segmentation is not None and located.prediction.scene is not None
    cam = service.gradcam(located, 1)
    assert np.isfinite(cam.heatmap).all() and cam.heatmap.max() > cam.heatmap.min()


@pytest.mark.parametrize("model", ["translocator", "ensemble"])
def test_locate_tab_shows_segmentation_scene_and_both_gradcams(ctx, model):
    """TransLocator and the ensemble in the Locate tab: segmentation view, scene, candidates, Grad-CAM."""
    import torch

    from geoapp.families.translocator.locator import TransLocatorGeolocator
    from geoapp.families.translocator.segmentation import load_segmenter
    from geoapp.families.translocator.network import TransLocatorConfig

    if "translocator" not in ctx.service._locators:
        torch.manual_seed(0)
        ctx.service.adopt("translocator", TransLocatorGeolocator.load(
            backbone_weights="random", config=TransLocatorConfig.tiny(img_size=64, patch_size=16),
            segmenter=load_segmenter("tiny-test", weights="random", device="cpu"), device="cpu"))
    assert ctx.service.weights_problem(model) is None
    handlers = LocateHandlers(ctx)
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    session, payload = handlers.locate([photo], 3, False, model, progress=no_progress)
    record = payload["results"][0]
    assert payload["random_weights"] and record["model"]["model"] == model and len(record["candidates"]) == 3
    assert record["scene"]["label365"] and record["segmentation"]["legend"]
    banner, _, _, map_html, _, _, _, rank, evidence, evidence_view, _ = handlers.show(session, 0, False)
    assert "RANDOM WEIGHTS" in banner and "geoapp-pin" in map_html and rank["value"] == 1
    assert evidence["visible"] is True and "data:image/png;base64," in evidence_view  # the segmentation map
    assert ("Scene" in evidence_view and "Segmentation" in evidence_view
            and "RANDOM SEGMENTER WEIGHTS" in evidence_view and "fusion" in evidence_view)
    crop, overlay, caption, others = handlers.gradcam(session, 0, 1, progress=no_progress)
    assert overlay is not None and "RANDOM WEIGHTS" in caption
    # TransLocator explains both branches; the ensemble explains the GeoCLIP re-ranking (photo only).
    assert others["visible"] == (model == "translocator")


def test_locate_tab_shows_the_map_tile_search_path_and_tiles(ctx):
    """Map tiles in the Locate tab: the search path drawn on the map, the best tiles beside the photo, Grad-CAM."""
    from geoapp.families import LoadOptions, registry

    spec = registry.get("maptiles")
    if "maptiles" not in ctx.service._locators:
        ctx.service.adopt("maptiles", spec.load(LoadOptions(device="cpu", backbone_weights="random",
                                                            extras=dict(spec.test_options))))
    handlers = LocateHandlers(ctx)
    photo = str(shared_path("im2gps3k-dev", IM2GPS_PHOTO))
    session, payload = handlers.locate([photo], 3, False, "maptiles", progress=no_progress)
    record = payload["results"][0]
    assert record["model"]["model"] == "maptiles" and record["search_path"]["levels"]
    banner, _, _, map_html, _, _, _, rank, evidence, evidence_view, _ = handlers.show(session, 0, False)
    assert "Map-tile search path" in map_html and "geoapp-pin" in map_html
    assert evidence["visible"] is True and "Best map tiles" in evidence_view and "data:image/png;base64," in evidence_view
    crop, overlay, caption, _ = handlers.gradcam(session, 0, 1, progress=no_progress)
    assert overlay is not None


def test_exif_time_zone_is_applied_only_when_ticked_and_an_uploaded_area_is_excluded(ctx, tmp_path):
    from PIL import Image

    handlers = LocateHandlers(ctx)
    photo = tmp_path / "offset.jpg"
    with Image.open(shared_path(*GPS_PHOTO)) as source:
        image = source.convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: "2008:10:22 12:00:00", 0x9011: "+02:00"})  # DateTimeOriginal, its offset
    image.save(photo, exif=exif)
    tz = "tz:offset=+02:00,time=2008-10-22T12:00:00"

    _, payload = handlers.locate([str(photo)], 3, False, "geoclip", clues="drive:right", progress=no_progress)
    fusion = payload["results"][0]["fusion"]
    assert fusion["proposed_clues"] == [tz] and [c["name"] for c in fusion["clues"]] == ["drive:right"]

    area = tmp_path / "area.geojson"
    area.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-10, 35], [30, 35], [30, 60], [-10, 60], [-10, 35]]]}))
    _, payload = handlers.locate([str(photo)], 3, False, "geoclip", clues="drive:right", exif_clues=True,
                                 exclude_area=str(area), progress=no_progress)
    fusion = payload["results"][0]["fusion"]
    clues = {c["name"]: c for c in fusion["clues"]}
    assert set(clues) == {"drive:right", f"exclude:{area}", tz} and fusion["proposed_clues"] == []
    assert clues[tz]["source"] == "EXIF OffsetTimeOriginal of offset.jpg (accepted by the analyst)"
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(gr.Error, match="bad.geojson"):
        user_errors(handlers.locate)([str(photo)], exclude_area=str(bad), progress=no_progress)
