"""The trainer: level order (finest -> coarsest, each from the previous), resume, and a tiny cross-view run
that must beat a random tile and the most common training location (the CI version of the table)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.maptiles.train import TrainConfig, level_order, stages, train

from ...conftest import shared_path


def test_levels_train_finest_first_each_from_the_previous():
    assert level_order((1, 3, 5)) == [(5, None), (3, 5), (1, 3)]
    assert level_order((4, 6, 8, 10)) == [(10, None), (8, 10), (6, 8), (4, 6)]
    assert stages(TrainConfig(zooms=(1, 3, 5))) == ["pretrain", "level-5", "level-3", "level-1"]
    assert stages(TrainConfig(zooms=(4, 6), pretrain_steps=0)) == ["level-6", "level-4"]
    # The paper's preset starts from CLIP: no pretraining stage, levels only.
    assert stages(TrainConfig(preset="clip-vit-b32", zooms=(4, 6, 8))) == ["level-8", "level-6", "level-4"]


def test_the_paper_preset_needs_the_clip_weights_and_says_how(tmp_path, monkeypatch):
    from geoapp.models.weights import WeightsMissingError

    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsMissingError, match="vit-b-32"):
        train(TrainConfig(preset="clip-vit-b32", zooms=(4, 6)), tmp_path / "out", gallery=np.zeros((10, 2)))


@pytest.fixture(scope="module")
def tiny_run(offline_pyramid, tmp_path_factory):
    rng = np.random.default_rng(0)
    gallery = np.column_stack([rng.uniform(-60, 70, 3000), rng.uniform(-180, 180, 3000)]).astype(np.float32)
    config = TrainConfig(zooms=(1, 3), gallery_points=2000, land_points=600, test_size=200, pretrain_steps=250,
                         epochs=3, save_every=100, eval_k=(4, 16))
    out = tmp_path_factory.mktemp("maptiles-run")
    return out, train(config, out, gallery=gallery), config, gallery


def test_tiny_cross_view_run_beats_random_and_most_common(tiny_run):
    out, manifest, _, _ = tiny_run
    rows = manifest["metrics"]["rows"]
    ours = rows["beam k=16"]
    random_tile = next(v for k, v in rows.items() if k.startswith("random tile"))
    common = rows["most common training location"]
    assert ours["geoguessr_score"] > random_tile["geoguessr_score"]
    assert ours["geoguessr_score"] > common["geoguessr_score"]
    assert ours["median_km"] < random_tile["median_km"]
    assert manifest["stage_order"] == ["pretrain", "level-3", "level-1"]
    assert [h["stage"] for h in manifest["history"]] == manifest["stage_order"]
    assert (out / "model.pt").is_file() and json.loads((out / "manifest.json").read_text())["sha256"]


def test_finished_run_resumes_without_training_and_loads_in_the_app(tiny_run):
    photo_path = str(shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg"))
    out, manifest, config, gallery = tiny_run
    again = train(config, out, gallery=gallery)  # everything done: straight to evaluation
    assert again["history"] == manifest["history"]
    from geoapp.families import LoadOptions, registry

    family = registry.get("maptiles").load(LoadOptions(device="cpu", checkpoint=out / "model.pt"))
    result = family.predict(photo_path, top_k=3, beam_k=4)
    assert result.ok and not result.random_weights and family.spec.caveat in result.warnings


def test_trains_on_ground_level_photos_with_gps(offline_pyramid, tmp_path):
    """The paper's setting: real photos with GPS (the Im2GPS3k sample in ../shared) against map tiles."""
    csv = shared_path("im2gps3k-dev", "ground_truth.csv")
    config = TrainConfig(zooms=(1, 3), photos=str(csv), pretrain_steps=30, epochs=1, batch_size=16, save_every=1000,
                         eval_k=(4,), holdout=0.2)
    manifest = train(config, tmp_path / "photos-run")
    assert manifest["train_locations"] >= 80 and manifest["test_locations"] >= 20
    assert manifest["stage_order"] == ["pretrain", "level-3", "level-1"]
    from geoapp.families.maptiles.model import read_checkpoint

    meta = read_checkpoint(tmp_path / "photos-run" / "model.pt")["meta"]
    assert "ground-level photos of ground_truth.csv" in str(meta)  # not labelled as the cross-view demo
