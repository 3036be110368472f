from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from geoapp.fusion import ClueError, parse_clue
from geoapp.fusion.solar import SunAt


def test_sun_position_matches_pvlib_spa_on_random_times_and_places():
    import pvlib

    rng = np.random.default_rng(7)
    for _ in range(25):
        when = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=float(rng.uniform(0, 40 * 365.25 * 86400)))
        lat = rng.uniform(-89, 89, 8)
        lon = rng.uniform(-180, 180, 8)
        ours, azimuth = SunAt.at(when).position(lat, lon)
        for i in range(8):
            ref = pvlib.solarposition.get_solarposition(pd.DatetimeIndex([when]), lat[i], lon[i], method="nrel_numpy",
                                                        delta_t=None)
            assert ours[i] == pytest.approx(ref["apparent_elevation"].iloc[0], abs=0.01)
            if ref["apparent_elevation"].iloc[0] < 89:
                diff = (azimuth[i] - ref["azimuth"].iloc[0] + 180) % 360 - 180
                assert abs(diff) < 0.05


def test_shadow_band_agrees_with_shadowfinder():
    from shadowfinder.shadowfinder import ShadowFinder

    when = datetime(2024, 6, 21, 10, 0, 0)
    finder = ShadowFinder(object_height=10.0, shadow_length=12.0, date_time=when, time_format="utc")
    lats, lons = np.meshgrid(np.arange(-60, 85, 0.5), np.arange(-180, 180, 0.5), indexing="ij")
    finder.lats, finder.lons, finder.timezones = lats, lons, np.array([])  # UTC: no zones needed
    finder.find_shadows()
    theirs = np.abs(finder.location_likelihoods) < 0.1  # within 10 % of the shadow length
    # Ours at ratio_sd = 5 % of the ratio: 2 sd = the same 10 % band.
    clue = parse_clue("sun:time=2024-06-21T10:00:00Z,ratio=1.2,ratio_sd=0.06")
    ours = clue.factor_at(lats.ravel(), lons.ravel()).reshape(lats.shape) > np.exp(-0.5 * 2.0 ** 2)
    assert theirs.sum() > 1000
    agreement = (ours == theirs).mean()
    assert agreement > 0.995, agreement
    # Where they differ, it is at the band's edge (suncalc's simpler ephemeris vs SPA).
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.95


def test_two_shadows_narrow_the_band_and_a_bearing_picks_a_side():
    one = parse_clue("sun:time=2024-06-21T10:00:00Z,ratio=1.2,ratio_sd=0.05")
    two = parse_clue("sun:time=2024-06-21T10:00:00Z,ratio=1.2,ratio_sd=0.05,time2=2024-06-21T12:00:00Z,ratio2=0.6")
    lats, lons = np.meshgrid(np.arange(-60, 80, 1.0), np.arange(-180, 180, 1.0), indexing="ij")
    f1 = one.factor_at(lats.ravel(), lons.ravel())
    f2 = two.factor_at(lats.ravel(), lons.ravel())
    assert (f2 > 0.1).sum() < 0.5 * (f1 > 0.1).sum()
    north = parse_clue("sun:time=2024-06-21T10:00:00Z,ratio=1.2,ratio_sd=0.05,azimuth=300,azimuth_sd=15")
    fn = north.factor_at(lats.ravel(), lons.ravel())
    assert (fn > 0.1).sum() < (f1 > 0.1).sum()


def test_sun_above_and_below_the_horizon_split_the_globe():
    up = parse_clue("sun:time=2024-03-20T12:00:00Z,horizon=above")
    down = parse_clue("sun:time=2024-03-20T12:00:00Z,horizon=below")
    lat, lon = np.array([0.0, 0.0]), np.array([0.0, 180.0])
    assert up.factor_at(lat, lon).tolist() == [1.0, 0.0]
    assert down.factor_at(lat, lon).tolist() == [0.0, 1.0]


def test_a_shadow_pair_the_sun_never_gives_is_refused():
    from geoapp.fusion.grid import Grid

    # At 12:00 UTC the shadow is ten times the object, two hours later the sun stands overhead: no place does both.
    clue = parse_clue("sun:time=2024-06-21T12:00:00Z,ratio=10,ratio_sd=0.1,time2=2024-06-21T14:00:00Z,ratio2=0.01,"
                      "ratio2_sd=0.01")
    with pytest.raises(ClueError, match="no place on Earth fits it"):
        clue.checked_factor(Grid.base(2))
