"""Fine refinement: lattices, coarse-to-fine search, regions, and the ceiling it can never lower."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoapp.geo.distance import haversine_km
from geoapp.geo.refine import RefineSpec, disc_offsets, offset_points, refine_places
from geoapp.geo.regions import parse_region


def test_stages_end_at_the_spacing_and_cover_the_previous_cell():
    spec = RefineSpec(radius_km=15, step_km=0.5)
    stages = spec.stages()
    assert stages[0][0] == 15 and stages[-1][1] == pytest.approx(0.5)
    for (_, coarse), (radius, fine) in zip(stages, stages[1:]):
        assert fine == pytest.approx(coarse / 3)
        assert len(disc_offsets(radius, fine)) == 9  # the 3×3 lattice tiling the coarse point's cell
    assert spec.points_per_place() == sum(len(disc_offsets(r, s)) for r, s in stages)
    assert RefineSpec(radius_km=0).stages() == [] and not RefineSpec(radius_km=0).enabled


@pytest.mark.parametrize("bad", [dict(radius_km=-1), dict(radius_km=float("nan")), dict(step_km=0),
                                 dict(radius_km=1, step_km=2), dict(top_n=0), dict(radius_km=500)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        RefineSpec(**bad)


def test_offsets_are_true_distances_even_at_the_pole_and_antimeridian():
    offsets = disc_offsets(5, 1)
    assert tuple(offsets[0]) == (0, 0)
    for lat, lon in [(0, 0), (47.5, 8.5), (89.99, 10), (-60, 179.999)]:
        points = offset_points(lat, lon, offsets)
        assert np.all(np.abs(points[:, 0]) <= 90) and np.all(np.abs(points[:, 1]) <= 180)
        distance = haversine_km(lat, lon, points[:, 0], points[:, 1])
        np.testing.assert_allclose(distance, np.hypot(offsets[:, 0], offsets[:, 1]), atol=1e-6)


def _closeness(truths):
    return lambda grids: [-haversine_km(t[0], t[1], g[:, 0], g[:, 1]) for t, g in zip(truths, grids)]


def test_a_perfect_scorer_ends_within_half_a_cell_of_the_truth():
    rng = np.random.default_rng(1)
    spec = RefineSpec(radius_km=15, step_km=0.5)
    seeds = rng.uniform([-60, -180], [60, 180], size=(200, 2))
    # truths anywhere within 13 km of their seed (inside the first lattice's reach)
    bearing, dist = rng.uniform(0, 2 * math.pi, 200), rng.uniform(0, 13, 200)
    truths = np.array([offset_points(s[0], s[1], [[d * math.sin(b), d * math.cos(b)]])[0]
                       for s, b, d in zip(seeds, bearing, dist)])
    refined = refine_places([s[None] for s in seeds], _closeness(truths), spec)
    error = np.array([haversine_km(t[0], t[1], r.points[0, 0], r.points[0, 1]) for t, r in zip(truths, refined)])
    assert error.max() <= 0.5 / math.sqrt(2) + 0.01  # the last lattice's half diagonal
    assert all(r.points_scored == spec.points_per_place() for r in refined)


def test_refinement_never_lowers_the_probability_weighted_ceiling():
    """Each place's best achievable error only shrinks, so any probability weighting of it does too."""
    rng = np.random.default_rng(2)
    spec = RefineSpec(radius_km=10, step_km=0.5)
    for _ in range(20):
        truth = rng.uniform([-50, -170], [50, 170])
        places = truth + rng.normal(0, 0.3, size=(8, 2))  # places up to ~100 km away
        probs = rng.dirichlet(np.ones(8))
        before = haversine_km(truth[0], truth[1], places[:, 0], places[:, 1])
        refined = refine_places([places], _closeness([truth]), spec)[0]
        after = haversine_km(truth[0], truth[1], refined.points[:, 0], refined.points[:, 1])
        assert np.all(after <= before + 1e-9)
        assert float(probs @ after) <= float(probs @ before) + 1e-9
        reach = sum(radius for radius, _ in spec.stages())  # later 3×3 stages may step past the first disc
        assert np.all(refined.moved_km <= reach + 1e-6)


def test_refinement_stays_inside_the_region():
    """A scorer pulling towards a point outside the region never drags a place out of it."""
    region = parse_region("CH")
    inside = region.contains
    places = np.array([[47.56, 7.59], [46.2, 6.15], [47.7, 8.6], [46.0, 8.95]])  # Basel, Geneva, Schaffhausen, Lugano
    assert inside(places[:, 0], places[:, 1]).all()
    lure = np.array([[47.9, 7.0]] * 1)  # in France/Germany, just outside
    refined = refine_places([places], _closeness(lure), RefineSpec(radius_km=25, step_km=0.5),
                            inside=lambda p: inside(p[:, 0], p[:, 1]))[0]
    assert inside(refined.points[:, 0], refined.points[:, 1]).all()
    assert refined.moved_km.max() > 1  # it did move, towards the border
