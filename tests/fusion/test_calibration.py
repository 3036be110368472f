import json
import math

import numpy as np
import pytest

from geoapp.fusion import Calibration, Kernel, PhotoMap, find_calibration, fuse
from geoapp.fusion.areas import rank_mass
from geoapp.fusion.calibration import (
    TruthRank,
    conformal_index,
    conformal_threshold,
    coverage,
    load_all,
    score_photo,
    tie_shares,
)



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
    assert area.calibrated and "calibrated on 99 images of this kind: synthetic" in area.calibration
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
    assert near.ahead < 0.5 < far.ahead <= 1.0
    assert 0 < near.own < 0.05 and far.ahead + far.own <= 1.0 + 1e-9
    assert 0 < areas["plain 0.9"] < areas["cal"] == pytest.approx(510_065_622, rel=1e-6)


def test_the_conformal_index_is_exact_where_floats_are_not():
    assert 25 * 0.28 > 7  # the float product whose ceiling would take one score too many
    assert conformal_index(24, 0.28) == 7
    assert [conformal_index(99, level) for level in (0.5, 0.8, 0.9, 0.95)] == [50, 80, 90, 95]
    assert conformal_index(19, 0.95) == 19 and conformal_index(18, 0.95) == 19  # 19 > 18: the whole globe


# Synthetic maps of three tiers of equal-density cells: one peak cell holding 0.4, 20 cells holding 0.4 and a
# floor of 200 cells holding 0.2, the truth in each tier with probability 0.45 / 0.40 / 0.15 (an exchangeable
# stream of images). Without a tie-break key every truth in a tier has the same mass ahead (0, 0.4 or 0.8):
# the tied scores of SatWorld's uniform floor and coarse cells, in their simplest form.
TIERS = ((1, 0.4, 0.45), (20, 0.4, 0.40), (200, 0.2, 0.15))


def tiered_ranks(count: int, seed: int, keyed: bool) -> list[TruthRank]:
    rng = np.random.default_rng(seed)
    mass = np.concatenate([np.full(cells, share / cells) for cells, share, _ in TIERS])
    density = mass / 1000.0  # equal cell areas: equal densities within a tier
    tier_of_cell = np.repeat(np.arange(len(TIERS)), [cells for cells, _, _ in TIERS])
    starts = np.cumsum([0] + [cells for cells, _, _ in TIERS])
    out = []
    for _ in range(count):
        tier = rng.choice(len(TIERS), p=[p for _, _, p in TIERS])
        cell = starts[tier] + rng.integers(TIERS[tier][0])
        key = rng.random(len(mass)) if keyed else None  # e.g. the distance to the nearest predicted point
        ahead, own = rank_mass(density, mass, key)
        assert tier_of_cell[cell] == tier
        out.append(TruthRank(float(ahead[cell]), float(own[cell])))
    return out


def _coverages(calibration: list[TruthRank], check: list[TruthRank]) -> dict[float, tuple[float, float, float]]:
    """Per level: (randomised coverage, coverage of the area as drawn, 3 binomial standard errors)."""
    cal_scores = np.array([r.score(u) for r, u in zip(calibration, tie_shares(0, len(calibration)))])
    check_scores = np.array([r.score(u) for r, u in zip(check, tie_shares(1, len(check)))])
    out = {}
    for level in (0.5, 0.8, 0.9, 0.95):
        q = conformal_threshold(cal_scores, level)
        sd = math.sqrt(level * (1 - level) * (1 / len(calibration) + 1 / len(check)))
        out[level] = (float(np.mean(check_scores <= q)), float(np.mean([r.in_area(q) for r in check])), 3 * sd)
    return out


def test_randomised_tie_breaking_gives_nominal_coverage_on_tied_scores():
    """Smoothed conformal: the share u of the truth's own group makes tied scores continuous."""
    calibration, check = tiered_ranks(1000, seed=1, keyed=False), tiered_ranks(3000, seed=2, keyed=False)
    assert len({r.ahead for r in calibration}) == 3  # the scores really are tied
    for level, (randomised, drawn, err) in _coverages(calibration, check).items():
        assert abs(randomised - level) <= err, (level, randomised)
        assert drawn >= randomised  # the drawn area takes the straddling group whole: never less
    # Without the shares the threshold lands on a tie and takes the whole tier: 85 % coverage at "50 %".
    tied = np.array([r.ahead for r in calibration])
    assert np.mean([r.ahead <= conformal_threshold(tied, 0.5) for r in check]) > 0.8


def test_with_a_tie_break_key_the_drawn_area_is_nominal_too():
    """Ordering equal-density cells (nearest first) leaves groups of one cell: the drawn area is near exact."""
    calibration, check = tiered_ranks(1000, seed=3, keyed=True), tiered_ranks(3000, seed=4, keyed=True)
    assert max(r.own for r in check) <= 0.4 + 1e-9 and np.median([r.own for r in check]) <= 0.02
    for level, (randomised, drawn, err) in _coverages(calibration, check).items():
        assert abs(randomised - level) <= err, (level, randomised)
        assert abs(drawn - level) <= err, (level, drawn)


def test_rank_mass_orders_equal_densities_by_the_key_and_groups_exact_ties():
    density = np.array([3.0, 1.0, 1.0, 1.0, 2.0])
    mass = np.array([0.3, 0.1, 0.2, 0.1, 0.3])
    ahead, own = rank_mass(density, mass, np.array([0.0, 5.0, 1.0, 5.0, 0.0]))
    np.testing.assert_allclose(ahead, [0.0, 0.8, 0.6, 0.8, 0.3])
    np.testing.assert_allclose(own, [0.3, 0.2, 0.2, 0.2, 0.3])  # cells 1 and 3 tie in both keys: one group
    ahead, own = rank_mass(density, mass)
    np.testing.assert_allclose(ahead, [0.0, 0.6, 0.6, 0.6, 0.3])
    np.testing.assert_allclose(own, [0.3, 0.4, 0.4, 0.4, 0.3])


def test_tie_shares_are_reproducible_from_the_recorded_seed_and_stored(tmp_path):
    np.testing.assert_array_equal(tie_shares(7, 50), tie_shares(7, 50))
    assert not np.array_equal(tie_shares(7, 50), tie_shares(8, 50))
    cal = Calibration(family="toy", weights_sha256="abc", name="half", data="synthetic renders, random half",
                      scores=(0.1, 0.5, 0.9), kernel=Kernel(100.0, 0.01), tie_seed=7,
                      note="on other regions the 90 % area held the truth 85 % of the time")
    saved = json.loads(cal.save(tmp_path).read_text())
    assert saved["ties"]["seed"] == 7 and saved["note"].startswith("on other regions")
    loaded = Calibration.from_dict(saved)
    assert loaded == cal
    assert loaded.label() == ("calibrated on 3 images of this kind: synthetic renders, random half; "
                              "on other regions the 90 % area held the truth 85 % of the time")
    del saved["ties"], saved["note"]  # a calibration written before the shares: still read, marked unrandomised
    assert Calibration.from_dict(saved).tie_seed is None
    saved["ties"] = {"rule": "x", "seed": "seven"}
    with pytest.raises(ValueError, match="ties"):
        Calibration.from_dict(saved)
