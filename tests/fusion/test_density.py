import numpy as np
import pytest

from geoapp.fusion import Kernel, PhotoMap, PointMass, Tempering, fuse
from geoapp.fusion.density import EARTH_AREA_KM2, density_at, fit_kernel, grid_mass
from geoapp.fusion.grid import Grid
from geoapp.geo.distance import destination_point

from .conftest import synthetic_prediction


@pytest.mark.parametrize("sigma", [3.0, 40.0, 800.0])
def test_the_grid_density_keeps_every_points_mass(sigma):
    grid = Grid.base().refine(np.arange(10312) % 3 == 0)
    points = PointMass.normalised([10.0, 10.2, -60.0, 89.9], [20.0, 20.1, 179.9, 0.0], [0.5, 0.2, 0.2, 0.1])
    mass = grid_mass(grid, points, Kernel(sigma, 0.0))
    assert mass.sum() == pytest.approx(1.0, abs=1e-9)
    near_first = grid.locate(np.array([-60.0]), np.array([179.9]))
    assert mass[near_first] > 0
    with_floor = grid_mass(grid, points, Kernel(sigma, 0.25))
    assert with_floor.sum() == pytest.approx(1.0, abs=1e-9)
    assert with_floor.min() >= 0.25 * grid.area_km2.min() / EARTH_AREA_KM2 * (1 - 1e-9)


def _fine_near(lat, lon, km, level):
    """The base grid refined to ``level`` within ``km`` of a point."""
    from geoapp.geo.distance import haversine_km

    grid = Grid.base()
    for _ in range(level):
        grid = grid.refine(haversine_km(grid.lat, grid.lon, lat, lon) < km + grid.radius_km)
    return grid


def test_the_kernel_spreads_mass_like_its_width():
    """A fine grid around one point: the mass within 1 sigma of a 2-D Gaussian is 1 - exp(-1/2)."""
    grid = _fine_near(0.0, 0.0, 1000.0, 4)
    points = PointMass.normalised([0.0], [0.0], [1.0])
    mass = grid_mass(grid, points, Kernel(200.0, 0.0))
    from geoapp.geo.distance import haversine_km

    within = mass[haversine_km(grid.lat, grid.lon, 0.0, 0.0) <= 200.0].sum()
    assert within == pytest.approx(1 - np.exp(-0.5), abs=0.02)


def test_kernel_fit_recovers_the_width_of_the_errors():
    rng = np.random.default_rng(3)
    samples = []
    for _ in range(150):
        lat, lon = rng.uniform(-50, 50), rng.uniform(-170, 170)
        points = PointMass.normalised([lat], [lon], [1.0])
        bearing, distance = rng.uniform(0, 360), 120.0 * np.sqrt(-2 * np.log(rng.uniform()))
        t_lat, t_lon = destination_point(lat, lon, bearing, distance)
        samples.append((points, float(t_lat), float(t_lon)))
    kernel, table = fit_kernel(samples, fitted_on="synthetic")
    assert 90.0 <= kernel.sigma_km <= 160.0 and kernel.floor <= 0.001
    assert kernel.fitted and kernel.n == 150
    assert np.isfinite(table["mean_log_density_km2"])


def test_duplicate_photos_count_once_and_different_photos_multiply():
    a = synthetic_prediction("a.jpg", 48.0, 2.0, 1.0, seed=1)
    b = synthetic_prediction("b.jpg", 48.5, 3.0, 1.0, seed=2)
    kernel = Kernel(60.0, 0.01)
    photo = lambda p: PhotoMap.from_prediction(p, kernel=kernel)  # noqa: E731
    one = fuse(photos=[photo(a)], finest_km=60)
    twice = fuse(photos=[photo(a), photo(a)], tempering=Tempering.from_hashes(["ffff0000ffff0000"] * 2), finest_km=60)
    assert twice.tempering.weights == (0.5, 0.5)
    assert len(twice.grid) == len(one.grid)
    np.testing.assert_allclose(twice.mass, one.mass, rtol=1e-9, atol=1e-15)
    # A recompressed copy (pHash 3 bits apart) is the same picture too; an unrelated photo counts fully.
    near = Tempering.from_hashes(["ffff0000ffff0000", "ffff0000ffff0007", "0123456789abcdef"])
    assert near.weights == pytest.approx((0.5, 0.5, 1.0))
    both = fuse(photos=[photo(a), photo(b)], tempering=Tempering.independent(2), finest_km=60)
    grid = both.grid
    product = grid_mass(grid, photo(a).points, kernel) * grid_mass(grid, photo(b).points, kernel) / grid.area_km2
    np.testing.assert_allclose(both.mass, product / product.sum(), rtol=1e-6, atol=1e-14)
    # Without hashes, identical files (same SHA-256) count once.
    same_file = fuse([a, synthetic_prediction("copy.jpg", 48.0, 2.0, 1.0, seed=1, sha256="a.jpg")])
    assert same_file.tempering.weights == (0.5, 0.5)


def test_density_at_matches_the_grid_density_on_a_fine_grid():
    points = PointMass.normalised([45.0, 46.0], [7.0, 8.0], [0.7, 0.3])
    kernel = Kernel(30.0, 0.05)
    grid = _fine_near(45.5, 7.5, 300.0, 4)
    from geoapp.geo.distance import haversine_km

    # Within 3 sigma of the points (the kernel is cut at 4 sigma).
    near = np.flatnonzero((haversine_km(grid.lat, grid.lon, 45.0, 7.0) < 90) & (grid.level == 4))
    mass = grid_mass(grid, points, kernel)
    exact = density_at(points, grid.lat[near], grid.lon[near], kernel)
    np.testing.assert_allclose(mass[near] / grid.area_km2[near], exact, rtol=0.05)
