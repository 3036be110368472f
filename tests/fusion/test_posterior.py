import numpy as np
import pytest

from geoapp.fusion import Kernel, PhotoMap, fuse, parse_clues
from geoapp.fusion.areas import cells_to_geometry, mass_above
from geoapp.fusion.grid import Grid

from .conftest import synthetic_prediction


def test_conflicting_clues_are_named_and_the_map_is_never_empty():
    post = fuse([], parse_clues(["drive:left", "region:CH", "coast:max_km=50"]))
    assert np.isfinite(post.mass).all() and post.mass.sum() == pytest.approx(1.0)
    assert any(set(c.names) == {"drive:left", "region:CH"} for c in post.conflicts)
    assert post.dropped == ["region:CH"]
    assert "drive:left x region:CH" in post.warnings[0]


def test_a_clue_against_the_photo_is_reported_not_hidden(paris_prediction):
    post = fuse([paris_prediction], parse_clues(["drive:left"]))
    assert any(c.names == ("photo map", "drive:left") for c in post.conflicts)
    assert np.isfinite(post.mass).all() and post.mass.sum() == pytest.approx(1.0)
    agreeing = fuse([paris_prediction], parse_clues(["drive:right"]))
    assert not agreeing.conflicts


def test_layers_each_clue_and_its_share_of_the_globe(paris_prediction):
    post = fuse([paris_prediction], parse_clues(["drive:right", "tz:offset=+02:00,time=2024-06-21T12:00:00"]))
    names = [layer.name for layer in post.layers]
    assert names == ["photo map", "drive:right", "tz:offset=+02:00,time=2024-06-21T12:00:00"]
    shares = {layer.name: layer.share_of_globe(post.grid) for layer in post.layers[1:]}
    assert 0.0 < shares["tz:offset=+02:00,time=2024-06-21T12:00:00"] < 0.2 < shares["drive:right"] < 0.35
    feature = post.layer_feature(post.layers[2])
    assert feature["properties"]["kind"] == "clue_layer" and feature["geometry"]["coordinates"]


def test_credible_area_holds_its_mass_and_is_the_smallest_such_set():
    rng = np.random.default_rng(5)
    grid = Grid.base().subset(np.arange(40))
    mass = rng.random(40) ** 4
    mass /= mass.sum()
    density = mass / grid.area_km2
    above = mass_above(density, mass)
    for level in (0.5, 0.8, 0.9):
        chosen = above < level
        assert mass[chosen].sum() >= level
        # Any set holding the level that omits a chosen cell (except the last one taken) is larger.
        by_density = np.argsort(-density)
        smallest = grid.area_km2[chosen].sum()
        for _ in range(300):
            pick = rng.random(40) < 0.6
            if mass[pick].sum() >= level:
                assert grid.area_km2[pick].sum() >= smallest - grid.area_km2[by_density[chosen.sum() - 1]]


def test_areas_report_km2_parts_and_calibration_state(paris_prediction):
    post = fuse([paris_prediction], [])
    area = post.area(0.9)
    assert area.mass >= 0.9 and area.parts >= 1 and area.area_km2 > 0
    assert not area.calibrated and area.calibration.startswith("not calibrated")
    feature = area.to_feature()
    assert feature["properties"]["area_km2"] == pytest.approx(area.area_km2, rel=1e-6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        post.area(1.5)


def test_parts_join_across_the_antimeridian():
    grid = Grid.base()
    west = grid.locate(np.array([10.0]), np.array([-179.9]))
    east = grid.locate(np.array([10.0]), np.array([179.9]))
    far = grid.locate(np.array([10.0]), np.array([0.0]))
    assert cells_to_geometry(grid, np.concatenate([west, east]))[1] == 1
    assert cells_to_geometry(grid, np.concatenate([west, east, far]))[1] == 2


def test_fusion_refines_near_the_mass_and_stays_small():
    prediction = synthetic_prediction("x.jpg", -33.9, 151.2, 0.05, seed=4)
    post = fuse(photos=[PhotoMap.from_prediction(prediction, kernel=Kernel(5.0, 0.01))])
    assert len(post.grid) < 120_000
    finest = post.grid.level.max()
    sydney = post.grid.locate(np.array([-33.9]), np.array([151.2]))[0]
    assert post.grid.level[sydney] == finest >= 5
    assert post.area(0.5).area_km2 < 20_000
