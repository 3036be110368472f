"""Geolocator end to end: real GeoCLIP heads and gallery, tiny random backbone (fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from geoapp import Geolocator
from geoapp.families.retrieval.locator import GeoCLIPLocator
from geoapp.galleries.gallery import Gallery
from geoapp.geo.countries import get_country_index
from geoapp.geo.distance import CoordinateError, haversine_km
from geoapp.geo.refine import RefineSpec
from geoapp.geo.regions import RegionError, UnknownRegionError
from geoapp.imaging import ImageLoadError
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

from .conftest import shared_path


@pytest.fixture(scope="module")
def photo():
    return shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")


def _checks(prediction, top_k):
    assert prediction.ok and 1 <= len(prediction.candidates) <= top_k
    probs = [c.probability for c in prediction.candidates]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert prediction.random_weights and RANDOM_WEIGHTS_WARNING in prediction.warnings
    assert all(c.place_label for c in prediction.candidates)
    assert prediction.candidates[0].distance_to_top_km == 0
    assert 0 <= prediction.mass_within_km[25] <= prediction.mass_within_km[200] <= prediction.mass_within_km[750] <= 1
    json.dumps(prediction.to_dict(include_surface=True))


def test_predict_world(tiny_locator, photo):
    prediction = tiny_locator.predict(photo, top_k=5)
    _checks(prediction, 5)
    assert len(prediction.surface) == 100_000
    assert prediction.surface.probability.sum() == pytest.approx(1, abs=1e-9)
    # distinct places: no two candidates within the merge radius
    cands = prediction.candidates
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            assert haversine_km(cands[i].lat, cands[i].lon, cands[j].lat, cands[j].lon) > 25


def test_path_bytes_and_pil_inputs_agree(tiny_locator, photo):
    by_path = tiny_locator.predict(photo, top_k=3)
    by_bytes = tiny_locator.predict(photo.read_bytes(), top_k=3)
    with Image.open(photo) as im:
        by_pil = tiny_locator.predict(im.copy(), top_k=3)
    assert [c.probability for c in by_path.candidates] == pytest.approx([c.probability for c in by_bytes.candidates])
    assert by_pil.candidates[0].lat == pytest.approx(by_path.candidates[0].lat, abs=1)  # PIL path decodes at full size


@pytest.mark.parametrize("region", ["FR", "france", "FRA"])
def test_country_region_candidates_inside_country(tiny_locator, photo, region):
    prediction = tiny_locator.predict(photo, top_k=10, region=region)
    _checks(prediction, 10)
    lat = np.array([c.lat for c in prediction.candidates])
    lon = np.array([c.lon for c in prediction.candidates])
    assert set(get_country_index().lookup(lat, lon)) == {"FR"}
    assert prediction.parameters["extra_region_points"] > 0
    # the whole probability surface lives inside the region too
    surface_codes = get_country_index().lookup(prediction.surface.lat, prediction.surface.lon)
    assert set(surface_codes) == {"FR"}


def test_circle_region(tiny_locator, photo):
    prediction = tiny_locator.predict(photo, top_k=5, region="circle:48.85,2.35,30")
    _checks(prediction, 5)
    for c in prediction.candidates:
        assert haversine_km(48.85, 2.35, c.lat, c.lon) <= 30.0 + 1e-6
    assert prediction.parameters["merge_km"] < 25  # finer merging inside a small region


def test_bbox_region_including_antimeridian(tiny_locator, photo):
    prediction = tiny_locator.predict(photo, top_k=5, region="bbox:40,-5,52,10")
    for c in prediction.candidates:
        assert 40 <= c.lat <= 52 and -5 <= c.lon <= 10
    fiji = tiny_locator.predict(photo, top_k=5, region="bbox:-21,177,-12,-178")
    for c in fiji.candidates:
        assert -21 <= c.lat <= -12 and (c.lon >= 177 or c.lon <= -178)


def test_region_errors(tiny_locator, photo):
    with pytest.raises(UnknownRegionError, match="France"):
        tiny_locator.predict(photo, region="Frnace")
    with pytest.raises(RegionError, match="no land"):
        tiny_locator.predict(photo, region="circle:0,-140,100")
    with pytest.raises(RegionError):
        tiny_locator.predict(photo, region="circle:95,0,10")


def test_tencrop_averages_logits_of_ten_crops(tiny_locator, photo):
    from geoapp.models.preprocess import ten_crop_tensor

    prediction = tiny_locator.predict(photo, top_k=5, tencrop=True)
    assert prediction.parameters["tencrop"] is True
    loaded = tiny_locator.load_image(photo, tencrop=True)
    crops = ten_crop_tensor(loaded.image, tiny_locator.model.backbone.spec.preprocess)
    assert crops.shape == (10, 3, 224, 224)
    candidates = tiny_locator.candidate_set()
    with torch.inference_mode():
        logits = tiny_locator.model.logits(tiny_locator.image_embeddings(crops), candidates.embeddings)
    expected = logits.mean(0).double().softmax(-1).numpy()
    np.testing.assert_allclose(prediction.surface.probability, expected, rtol=1e-5, atol=1e-12)
    single = tiny_locator.predict(photo, top_k=5)
    assert not np.allclose(single.surface.probability, prediction.surface.probability)


def test_batch_records_every_input(tiny_locator, photo, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    inputs = [str(photo), str(empty), str(tmp_path / "missing.jpg"), str(text), photo.read_bytes()]
    results = tiny_locator.predict_batch(inputs, top_k=3, batch_size=2)
    assert len(results) == 5
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert "empty" in results[1].error and "notes.jpg" in results[3].error
    assert results[0].candidates[0].probability == pytest.approx(results[4].candidates[0].probability)
    with pytest.raises(ImageLoadError):
        tiny_locator.predict(str(empty))


def test_batch_equals_single(tiny_locator):
    photos = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[:3]
    batch = tiny_locator.predict_batch(photos, top_k=3, batch_size=3)
    for path, result in zip(photos, batch):
        single = tiny_locator.predict(path, top_k=3)
        assert [c.probability for c in result.candidates] == pytest.approx([c.probability for c in single.candidates], rel=1e-4)


def test_probabilities_match_reference_pipeline(tiny_locator, photo, tmp_path):
    """Cached-gallery probabilities equal the reference GeoCLIP computation on the same CLIP features."""
    geoclip = pytest.importorskip("geoclip")
    subset = Gallery("subset", tiny_locator.gallery.coords[::20].copy(), "test")
    locator = GeoCLIPLocator(tiny_locator.model, tiny_locator.identity, subset, torch.device("cpu"), tmp_path,
                             spec=tiny_locator.spec)
    ours = locator.predict(photo, top_k=5).surface.probability

    reference = geoclip.GeoCLIP(from_pretrained=True, clip_pretrained=False).eval()
    loaded = locator.load_image(photo)
    from geoapp.models.preprocess import centre_crop_tensor

    pixels = centre_crop_tensor(loaded.image, locator.model.backbone.spec.preprocess)
    with torch.no_grad():
        clip_features = locator.model.backbone.encode_image(pixels)
        image = torch.nn.functional.normalize(reference.image_encoder.mlp(clip_features), dim=1)
        gps = torch.nn.functional.normalize(reference.location_encoder(torch.from_numpy(subset.coords)), dim=1)
        expected = (reference.logit_scale.exp() * image @ gps.T).softmax(-1)[0].double().numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-9)


def test_encode_locations_contract(tiny_locator):
    out = tiny_locator.encode_locations([[48.85, 2.35], [-90, 180]])
    assert out.dtype == torch.float32 and out.shape == (2, 512) and out.device.type == "cpu"
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))  # raw, not normalised
    with pytest.raises(CoordinateError):
        tiny_locator.encode_locations([[91, 0]])
    with pytest.raises(ValueError):
        tiny_locator.encode_locations([1, 2, 3])


def test_custom_gallery_and_cache_reuse(tmp_path, photo, tiny_locator):
    csv = tmp_path / "mine.csv"
    csv.write_text("LAT,LON\n48.85,2.35\n40.71,-74.0\n35.68,139.69\n-33.87,151.21\n")
    calls = []
    original = GeoCLIPLocator._normalised_embeddings

    def counting(self, coords):
        calls.append(len(coords))
        return original(self, coords)

    first = GeoCLIPLocator(tiny_locator.model, tiny_locator.identity, Gallery.from_csv(csv), torch.device("cpu"), tmp_path / "c",
                            spec=tiny_locator.spec)
    second = GeoCLIPLocator(tiny_locator.model, tiny_locator.identity, Gallery.from_csv(csv), torch.device("cpu"), tmp_path / "c",
                            spec=tiny_locator.spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GeoCLIPLocator, "_normalised_embeddings", counting)
        a = first.predict(photo, top_k=4, merge_km=0, refine_km=0)  # refinement encodes new points by design
        b = second.predict(photo, top_k=4, merge_km=0, refine_km=0)
    assert calls == [4]  # the second geolocator read the embeddings from disk
    assert len(a.candidates) == 4 and [c.probability for c in a.candidates] == [c.probability for c in b.candidates]


def test_unknown_model_and_backbone():
    with pytest.raises(ValueError, match="geoclip"):
        Geolocator.load(model="nope")
    with pytest.raises(ValueError, match="ViT-L-14"):
        Geolocator.load(backbone="nope")


# A known answer for refinement: an "image" whose embedding is the location embedding of TARGET (so its
# score over the map peaks at TARGET), and a gallery with no point there: the nearest is 6 km north.
TARGET = (47.3769, 8.5417)  # Zurich
NEAR = (47.3769 + 6 / 111.2, 8.5417)
FAR = [(48.8566, 2.3522), (40.7128, -74.006), (35.6762, 139.6503), (-33.8688, 151.2093), (-22.9068, -43.1729),
       (55.7558, 37.6173), (1.3521, 103.8198), (30.0444, 31.2357)]


@pytest.fixture
def target_locator(tiny_locator, tmp_path, monkeypatch):
    """The tiny model over a 9-point gallery, seeing every photo as a perfect picture of TARGET."""
    csv = tmp_path / "gallery.csv"
    csv.write_text("LAT,LON\n" + "".join(f"{a},{b}\n" for a, b in [NEAR, *FAR]))
    locator = GeoCLIPLocator(tiny_locator.model, tiny_locator.identity, Gallery.from_csv(csv), torch.device("cpu"),
                             tmp_path / "cache", spec=tiny_locator.spec)
    target = tiny_locator.encode_locations([TARGET])
    monkeypatch.setattr(locator, "image_embeddings", lambda pixels: target.repeat(len(pixels), 1))
    return locator


def test_refinement_moves_top_places_off_the_gallery_and_records_it(target_locator, photo):
    plain = target_locator.predict(photo, top_k=5, refine_km=0)
    refined = target_locator.predict(photo, top_k=5, refine_km=15)
    gallery = {(float(a), float(b)) for a, b in target_locator.gallery.coords}
    assert all((c.lat, c.lon) in gallery for c in plain.candidates)
    assert (plain.top.lat, plain.top.lon) == pytest.approx(NEAR)
    assert "refinement" not in plain.parameters and "refine" not in plain.timings_ms
    info = refined.parameters["refinement"]
    assert info["radius_km"] == 15 and info["top_n"] == 5 and len(info["moved_km"]) == 5
    assert info["points_scored"] == 5 * 55 and refined.timings_ms["refine"] > 0
    # the top place moves from the gallery point 6 km away to the score's peak, within the last lattice step
    assert haversine_km(plain.top.lat, plain.top.lon, *TARGET) == pytest.approx(6.0, abs=0.05)
    assert haversine_km(refined.top.lat, refined.top.lon, *TARGET) <= 0.5
    assert info["moved_km"][0] >= 5.5
    # the evidence says where each shown place started and where it went, and draws the moves
    assert not plain.evidence
    (evidence,) = [e for e in refined.evidence if e.key == "refinement"]
    moves = evidence.to_dict()["moves"]
    assert [m["rank"] for m in moves] == [c.rank for c in refined.candidates]
    assert (moves[0]["gallery_lat"], moves[0]["gallery_lon"]) == pytest.approx(NEAR)
    assert all((m["gallery_lat"], m["gallery_lon"]) in {(round(a, 6), round(b, 6)) for a, b in gallery} for m in moves)
    lines = [f for layer in evidence.map_layers() for f in layer.features]
    assert all(f["geometry"]["type"] == "LineString" for f in lines)
    assert len(lines) == sum(m["lat"] != m["gallery_lat"] or m["lon"] != m["gallery_lon"] for m in moves) >= 1
    assert "gallery answer" in evidence.html() and json.dumps(refined.to_dict())
    # probabilities are the gallery's: places move, mass does not
    assert [c.probability for c in refined.candidates] == pytest.approx([c.probability for c in plain.candidates])
    reach = sum(radius for radius, _ in RefineSpec(radius_km=15, step_km=0.5).stages())
    assert all(m["moved_km"] <= reach + 1e-3 for m in moves)
    # each place scores at least as well as the gallery answer it came from
    embedding = target_locator.image_embeddings(torch.zeros(1, 3, 8, 8))
    starts = [[m["gallery_lat"], m["gallery_lon"]] for m in moves]
    ends = [[m["lat"], m["lon"]] for m in moves]
    before = target_locator.location_logits(embedding, starts)[0]
    after = target_locator.location_logits(embedding, ends)[0]
    assert bool((after >= before - 1e-3).all())


def test_refinement_is_off_by_default_for_geoclip(tiny_locator, photo):
    """Refinement is on by default only where it measurably helps (benchmarks/RESULTS.md, "Fine refinement"):
    not measurable for GeoCLIP here (no real CLIP weights), so off."""
    prediction = tiny_locator.predict(photo, top_k=3)
    assert "refinement" not in prediction.parameters and "refine" not in prediction.timings_ms


def test_refinement_stays_inside_the_region_and_tencrop_works(tiny_locator, photo):
    prediction = tiny_locator.predict(photo, top_k=8, region="CH", tencrop=True, refine_km=15, refine_top=16)
    assert prediction.parameters["refinement"]["top_n"] == 16
    lat, lon = np.array([[c.lat, c.lon] for c in prediction.candidates]).T
    assert set(get_country_index().lookup(lat, lon)) == {"CH"}
    with pytest.raises(ValueError, match="radius"):
        tiny_locator.predict(photo, refine_km=-3)
