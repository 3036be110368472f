"""Models tab: build a regional model from an uploaded zip of geotagged photos (the real builder, run as a
subprocess), read its held-out metrics, use it; hostile zips are refused before anything runs."""

from __future__ import annotations

import zipfile

import pytest

from geoapp.families import registry
from geoapp.ui import builds
from geoapp.ui.forms import FormError
from tests.training.test_regional import PLACES, write_photo

from ..conftest import shared_path


@pytest.fixture
def variants(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    return tmp_path / "variants"


def photo_zip(tmp_path) -> str:
    import numpy as np

    rng = np.random.default_rng(1)
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted(shared_path("exif-samples", "jpg", "gps").glob("*.jpg")):
        (folder / source.name).write_bytes(source.read_bytes())
    for index in range(24):
        place = index % len(PLACES)
        lat, lon = np.array(PLACES[place]) + rng.normal(0, 0.02, 2)
        write_photo(folder / f"gen_{index:02d}.jpg", float(lat), float(lon), (40 * place, 200 - 30 * place, 90), rng)
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for photo in sorted(folder.iterdir()):
            archive.write(photo, f"collection/{photo.name}")
    return str(path)


@pytest.mark.timeout(600)
def test_build_from_an_uploaded_zip_and_use_it(variants, tmp_path):
    request = builds.BuildRequest(family="regional", countries="IT", method="classifier", name="italy-test",
                                  zip_path=photo_zip(tmp_path), backbone="satworld")
    lines = list(builds.run_build(request, allow_folders=False))
    # The log warns about SatWorld features on ground photos and ends in the app's words, not the command line's.
    warning = next(line for line in lines if "weak on ground-level photos" in line)
    assert "Models tab" in warning and "python -m" not in warning
    assert lines[-1] == "Done: the model regional:italy-test is ready. Choose it in Locate or Cases."
    assert not any("--model" in line or "theirs" in line for line in lines), lines[-10:]
    manifest = builds.built_manifest("italy-test")
    assert manifest["backbone"]["name"] == "satworld" and manifest["validation_images"] > 0
    text = builds.metrics_markdown(manifest)
    assert "regional:italy-test" in text and "most common cell" in text and "nan" not in text
    assert "--model" not in text

    # The Models tab's entry for the new model shows its held-out test metrics.
    from types import SimpleNamespace

    from geoapp.ui.models_tab import family_markdown

    spec = registry.get("regional:italy-test")
    entry = family_markdown(SimpleNamespace(families=[spec], problems={}, loaded={}, active="satworld"))
    country = manifest["metrics"]["country_accuracy"]
    assert f"Held-out test photos ({manifest['heldout_images']}, never used in training): country {country:.1f} %" \
        in entry
    family = registry.get("regional:italy-test").load()
    result = family.predict(str(next(iter(sorted(shared_path("exif-samples", "jpg", "gps").glob("*.jpg"))))))
    assert result.ok and any("reference" in item.key for item in result.evidence)


def test_hostile_or_wrong_requests_are_refused_before_running(variants, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.jpg", b"x")
    request = builds.BuildRequest(family="regional", countries="IT", method="classifier", name="evil", zip_path=str(evil))
    with pytest.raises(FormError, match="unsafe path"):
        list(builds.run_build(request, allow_folders=False))
    assert not (tmp_path / "outside.jpg").exists()
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"plain text")
    with pytest.raises(FormError, match="not a readable .zip"):
        list(builds.run_build(builds.BuildRequest("regional", "IT", "classifier", "x", zip_path=str(not_zip)), False))
    with pytest.raises(FormError, match="only be used when the app listens"):
        list(builds.run_build(builds.BuildRequest("regional", "IT", "classifier", "x", folder=str(tmp_path)), False))
    with pytest.raises(FormError, match="Unknown method"):
        list(builds.run_build(builds.BuildRequest("regional", "IT", "nope", "x", folder=str(tmp_path)), True))
    with pytest.raises(FormError, match="invalid variant name"):
        list(builds.run_build(builds.BuildRequest("regional", "IT", "classifier", "../x", folder=str(tmp_path)), True))
    with pytest.raises(FormError, match="cannot be built"):
        list(builds.run_build(builds.BuildRequest("geoclip", "IT", "classifier", "x", folder=str(tmp_path)), True))
    with pytest.raises(FormError, match="Unknown backbone 'resnet'"):
        list(builds.run_build(builds.BuildRequest("regional", "IT", "classifier", "x", folder=str(tmp_path),
                                                  backbone="resnet"), True))


def test_the_build_form_offers_a_backbone_choice(monkeypatch, tmp_path):
    from geoapp.ui.app import build_app
    from geoapp.ui.config import AppConfig

    monkeypatch.setenv("GEOAPP_DATA_DIR", str(tmp_path))
    demo, _ = build_app(AppConfig(backbone="tiny-test", backbone_weights="random", offline_map=True))
    dropdown = next(c for c in demo.get_config_file()["components"]
                    if c.get("props", {}).get("elem_id") == "geoapp-build-backbone")
    choices = [value for _, value in dropdown["props"]["choices"]]
    assert choices == ["auto", "ViT-L-14", "satworld"] and dropdown["props"]["value"] == "auto"
    assert "weak on ground-level photos" in dict((v, k) for k, v in dropdown["props"]["choices"])["satworld"]


def test_models_entry_shows_a_variants_held_out_test_metrics(variants):
    from types import SimpleNamespace

    from geoapp.families.variants import write_manifest
    from geoapp.ui.models_tab import family_markdown

    write_manifest(variants / "alps", "regional", "alps", "model.pt", label="Regional: alps",
                   extra={"heldout_images": 25, "backbone": {"name": "ViT-L-14"},
                          "metrics": {"country_accuracy": 84.0, "within_km": {"25": 12.0, "200": 64.0, "750": 88.0}},
                          "baseline_most_common_cell": {"country_accuracy": 52.0, "within_km": {"200": 20.0}}})
    entry = family_markdown(SimpleNamespace(families=[registry.get("regional:alps")], problems={}, loaded={},
                                            active="satworld"))
    assert ("Held-out test photos (25, never used in training): country 84.0 %, within 25 km 12.0 %, 200 km 64.0 %, "
            "750 km 88.0 % (most common cell: country 52.0 %, 200 km 20.0 %); features: ViT-L-14") in entry
    assert builds.heldout_summary({"metrics": {}}) is None
