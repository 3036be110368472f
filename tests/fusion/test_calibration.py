import json

import numpy as np
import pytest

from geoapp.fusion import Calibration, Kernel, PhotoMap, find_calibration, fuse
from geoapp.fusion.calibration import conformal_threshold, coverage, load_all, score_photo

from .conftest import synthetic_prediction


def test_split_conformal_coverage_holds_on_an_exchangeable_set():
    """Scores of a model that is overconfident: plain 90 % areas miss; calibrated ones hold >= 90 %."""
    rng = np.random.default_rng(11)
    scores = rng.beta(5, 1, 4000)  # the truth usually sits in the low-density tail
    calibration, held_out = scores[:1000], scores[1000:]
    for level in (0.5, 0.8, 0.9, 0.95):
        q = conformal_threshold(calibration, level)
        covered = coverage(held_out, {level: q})[level]
        assert covered >= level - 0.02  # finite-sample guarantee in expectation; this seed's draw
        assert abs(covered - level) < 0.03
        assert np.mean(held_out < level) < level - 0.1  # the plain area under-covers


def test_too_few_scores_for_a_level_give_the_whole_globe():
    assert conformal_threshold(np.array([0.1, 0.2, 0.3]), 0.9) == 1.0
    assert conformal_threshold(np.linspace(0, 1, 99), 0.5) == pytest.approx(np.sort(np.linspace(0, 1, 99))[49])


def test_calibration_round_trip_and_lookup_by_model_identity(tmp_path):
    cal = Calibration(family="toy", weights_sha256="abc", name="validation", data="synthetic", scores=(0.1, 0.5, 0.9),
                      kernel=Kernel(100.0, 0.01, fitted_on="synthetic", n=3))
    path = cal.save(tmp_path)
    loaded = Calibration.from_dict(json.loads(path.read_text()))
    assert loaded == cal
    assert find_calibration({"family": "toy", "heads_sha256": "abc"}, folders=(tmp_path,)) == cal
    assert find_calibration({"family": "toy", "heads_sha256": "other"}, folders=(tmp_path,)) is None
    (tmp_path / "broken.json").write_text("{")
    assert load_all((tmp_path,)) == [cal]


def test_calibrated_area_uses_the_threshold_and_says_so(paris_prediction):
    scores = tuple(np.linspace(0.0, 0.99, 99))
    cal = Calibration(family="toy", weights_sha256="abc", name="v", data="synthetic", scores=scores,
                      kernel=Kernel(40.0, 0.01))
    post = fuse([paris_prediction], calibrations=[cal])
    area = post.area(0.9)
    assert area.calibrated and "calibrated on 99 solved images" in area.calibration
    assert area.mass >= cal.threshold(0.9) - 1e-9
    plain = fuse([paris_prediction]).area(0.9)
    assert not plain.calibrated
    with_soft = fuse([paris_prediction], [__import__("geoapp.fusion", fromlist=["parse_clue"]).parse_clue(
        "sun:time=2024-06-21T10:00:00Z,ratio=1,ratio_sd=0.2")], calibrations=[cal]).area(0.9)
    assert not with_soft.calibrated and "soft clue" in with_soft.calibration


def test_score_is_the_mass_denser_than_the_truth(paris_prediction):
    photo = PhotoMap.from_prediction(paris_prediction, kernel=Kernel(40.0, 0.01))
    near, areas = score_photo(photo, 48.85, 2.35, {"plain 0.9": ("plain", 0.9), "cal": ("calibrated", 1.0)})
    far, _ = score_photo(photo, -30.0, 120.0)
    assert near < 0.5 < far <= 1.0
    assert 0 < areas["plain 0.9"] < areas["cal"] == pytest.approx(510_065_622, rel=1e-6)
