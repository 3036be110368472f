"""The int8 gate runner's data: a labelled dataset split into calibration and scored images, built-in data per
family, and the command the gate records."""

from __future__ import annotations

import argparse

import pytest
import torch

from tests.conftest import shared_path
from training import runtime_gate


@pytest.fixture(scope="module")
def tiny_geoclip(tmp_path_factory):
    from geoapp import Geolocator
    from geoapp.galleries.gallery import Gallery

    gallery = tmp_path_factory.mktemp("gate") / "gallery.csv"
    gallery.write_text("LAT,LON\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in Gallery.default().coords[::100]))
    torch.manual_seed(0)
    return Geolocator.load("geoclip", device="cpu", backbone="tiny-test", backbone_weights="random",
                           gallery=str(gallery), refine_km=0)


def test_dataset_gate_calibrates_on_images_it_does_not_score(tiny_geoclip):
    folder = shared_path("im2gps3k-dev")
    data = runtime_gate.dataset_data(tiny_geoclip, str(folder / "ground_truth.csv"), str(folder), "auto", None, None)
    assert len(data.calibration.pixels) == 30  # a quarter of the 120 photos, at most CALIBRATION
    assert data.images + len(data.calibration.pixels) == 120  # the 120 dev photos: each used once
    assert "not scored" in data.calibration.description


def test_dataset_gate_scores_a_tower(tiny_geoclip):
    folder = shared_path("im2gps3k-dev")
    data = runtime_gate.dataset_data(tiny_geoclip, str(folder / "ground_truth.csv"), str(folder), "auto", 6, None)
    scores = data.evaluate(tiny_geoclip.tower)
    assert data.images == 6 and set(scores) == {"1", "25", "200", "750", "2500"}
    assert all(0.0 <= v <= 100.0 for v in scores.values())
    assert tiny_geoclip.tower.runtime == "torch"  # the family's own tower is back after scoring


def test_family_without_built_in_data_names_the_dataset_command(tiny_geoclip):
    args = argparse.Namespace(dataset=None)
    with pytest.raises(ValueError, match="--dataset im2gps3k_places365.csv --images IM2GPS3K_FOLDER"):
        runtime_gate.gate_data("geoclip", tiny_geoclip, args)


def test_the_recorded_command_runs_the_same_gate():
    args = runtime_gate.build_parser().parse_args(["--model", "geoclip", "--runtime", "onnx", "--dataset", "gt.csv",
                                                   "--images", "photos"])
    assert runtime_gate.command_line(args) == ("python -m geoapp runtime gate --model geoclip --precision int8 "
                                               "--runtime onnx --dataset gt.csv --images photos")
