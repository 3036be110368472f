"""A prediction's scored points -> a probability density on the grid (a spherical kernel per point).

Kernel: von Mises-Fisher on the sphere with concentration ``kappa = (R / sigma_km)^2`` (for small widths a
2-D Gaussian of standard deviation ``sigma_km`` per axis), mixed with a uniform floor of weight ``floor``:

    f(x) = (1 - floor) * sum_p w_p vMF(x; p, kappa) + floor / (area of the Earth)

The floor stands for "the model is wrong and the photo is anywhere": no place ever has zero density, so a
clue never meets an empty map and calibration can rank every truth. ``sigma_km`` and ``floor`` are fitted per
family on held-out images by maximum likelihood of the true locations (``fit_kernel``, run by
``python -m geoapp calibrate``); families not fitted on this machine use ``DEFAULT_KERNEL`` and say so.

On the grid, each point's kernel is integrated as (density at the cell centre) x (exact cell area) and then
renormalised per point, so every point keeps exactly its probability whatever the cell sizes (mass
conservation); a point whose kernel misses every cell centre (a cell much larger than sigma) puts its mass in
the cell that holds it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from geoapp.fusion.grid import EARTH_AREA_KM2, Grid, level_for_km, point_cells
from geoapp.geo.distance import EARTH_RADIUS_KM, latlon_to_unit_xyz

KERNEL_REACH = 4.0  # kernel evaluated out to 4 sigma (the rest holds exp(-8) = 0.03 % of its mass)
MAX_POINTS = 5000  # the most probable points holding 99.9 % of the mass, at most this many


@dataclass(frozen=True)
class Kernel:
    """The kernel a family's points are spread with, and where its numbers come from."""

    sigma_km: float
    floor: float  # weight of the uniform "anywhere on Earth" component
    fitted_on: str = ""  # "" = not fitted: the default
    n: int = 0  # held-out images the fit used

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_on)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_KERNEL = Kernel(sigma_km=50.0, floor=0.01)


@dataclass(frozen=True)
class PointMass:
    """Weighted points (lat, lon degrees; weights sum to 1)."""

    lat: np.ndarray
    lon: np.ndarray
    weight: np.ndarray

    @classmethod
    def from_prediction(cls, prediction, max_points: int = MAX_POINTS, mass: float = 0.999) -> "PointMass":
        """The prediction's surface (every scored point), else its candidates; the tail beyond ``mass`` dropped."""
        surface = getattr(prediction, "surface", None)
        if surface is not None and len(surface):
            top = surface.top(max_points=max_points, mass=mass)
            lat, lon, w = top.lat, top.lon, top.probability
        else:
            cands = list(getattr(prediction, "candidates", []) or [])
            if not cands:
                raise ValueError(f"{getattr(prediction, 'source', 'prediction')}: no scored points to build a map from")
            lat = np.array([c.lat for c in cands])
            lon = np.array([c.lon for c in cands])
            w = np.array([c.probability for c in cands])
        return cls.normalised(lat, lon, w)

    @classmethod
    def normalised(cls, lat, lon, weight) -> "PointMass":
        lat, lon, w = (np.asarray(v, np.float64).ravel() for v in (lat, lon, weight))
        ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(w) & (w > 0)
        if not ok.any():
            raise ValueError("no point with a positive, finite probability")
        w = w[ok] / w[ok].sum()
        return cls(lat[ok], lon[ok], w)

    def binned(self, km: float) -> "PointMass":
        """Points folded into cells about ``km`` tall (their centres), to bound the work for wide kernels."""
        level = level_for_km(km)
        row, col = point_cells(self.lat, self.lon, level)
        keys, inverse = np.unique(row * (1 << 32) + col, return_inverse=True)
        weight = np.bincount(inverse, weights=self.weight)
        lat = np.bincount(inverse, weights=self.weight * self.lat) / weight
        # Longitudes averaged as unit vectors so a cell across the antimeridian does not average to 0.
        ang = np.radians(self.lon)
        lon = np.degrees(np.arctan2(np.bincount(inverse, weights=self.weight * np.sin(ang)),
                                    np.bincount(inverse, weights=self.weight * np.cos(ang))))
        return PointMass(lat, lon, weight)


def kappa(sigma_km: float) -> float:
    return (EARTH_RADIUS_KM / sigma_km) ** 2


def vmf_density_km2(cos_angle: np.ndarray, sigma_km: float) -> np.ndarray:
    """vMF density per km^2 at angular separation ``acos(cos_angle)`` (normalised over the sphere)."""
    k = kappa(sigma_km)
    norm = k / (2.0 * math.pi * EARTH_RADIUS_KM ** 2 * -math.expm1(-2.0 * k))
    return norm * np.exp(k * (np.clip(cos_angle, -1.0, 1.0) - 1.0))


def density_at(points: PointMass, lat: np.ndarray, lon: np.ndarray, kernel: Kernel) -> np.ndarray:
    """The continuous density (per km^2) at query points (for fitting and for tests)."""
    q = latlon_to_unit_xyz(np.atleast_1d(lat), np.atleast_1d(lon))
    p = latlon_to_unit_xyz(points.lat, points.lon)
    out = np.empty(q.shape[0])
    for start in range(0, q.shape[0], 256):
        cos = q[start:start + 256] @ p.T
        out[start:start + 256] = vmf_density_km2(cos, kernel.sigma_km) @ points.weight
    return (1.0 - kernel.floor) * out + kernel.floor / EARTH_AREA_KM2


def grid_mass(grid: Grid, points: PointMass, kernel: Kernel) -> np.ndarray:
    """Probability of each cell (sums to 1): the kernel-spread points plus the uniform floor."""
    pts = points.binned(kernel.sigma_km / 3.0)
    home = grid.locate(pts.lat, pts.lon)
    reach = min(math.pi, KERNEL_REACH * kernel.sigma_km / EARTH_RADIUS_KM)
    chord = 2.0 * math.sin(reach / 2.0)
    p_xyz = latlon_to_unit_xyz(pts.lat, pts.lon)
    pairs = cKDTree(grid.xyz).sparse_distance_matrix(cKDTree(p_xyz), chord, output_type="coo_matrix")
    cells, idx = pairs.row, pairs.col
    cos = 1.0 - pairs.data ** 2 / 2.0
    values = vmf_density_km2(cos, kernel.sigma_km) * grid.area_km2[cells]
    # The home cell always takes part (a cell wider than the kernel may have its centre out of reach).
    cells = np.concatenate([cells, home])
    idx = np.concatenate([idx, np.arange(len(home))])
    values = np.concatenate([values, np.zeros(len(home))])
    matrix = sparse.coo_matrix((values, (cells, idx)), shape=(len(grid), len(home))).tocsc()
    column = np.asarray(matrix.sum(axis=0)).ravel()
    empty = column <= 0
    scale = np.where(empty, 0.0, pts.weight / np.where(empty, 1.0, column))
    mass = matrix @ scale
    np.add.at(mass, home[empty], pts.weight[empty])
    return (1.0 - kernel.floor) * mass + kernel.floor * grid.area_km2 / EARTH_AREA_KM2


def centre_density(grid: Grid, points: PointMass, kernel: Kernel) -> np.ndarray:
    """Kernel density (per km^2, without the floor) at each cell centre: cell-local, so it can be computed
    for new cells alone while the grid is refined."""
    pts = points.binned(kernel.sigma_km / 3.0)
    reach = min(math.pi, KERNEL_REACH * kernel.sigma_km / EARTH_RADIUS_KM)
    pairs = cKDTree(grid.xyz).sparse_distance_matrix(
        cKDTree(latlon_to_unit_xyz(pts.lat, pts.lon)), 2.0 * math.sin(reach / 2.0), output_type="coo_matrix")
    values = vmf_density_km2(1.0 - pairs.data ** 2 / 2.0, kernel.sigma_km) * pts.weight[pairs.col]
    return (1.0 - kernel.floor) * np.bincount(pairs.row, weights=values, minlength=len(grid))


def nearest_point_km(grid: Grid, points: list[PointMass]) -> np.ndarray | None:
    """Great-circle distance (km) from each cell centre to the nearest of the points (None without points).

    Breaks ties between cells of equal density (``areas.rank_mass``): beyond the kernel's reach every cell has
    the floor's density, and the nearer ones are those an untruncated kernel would rank first.
    """
    if not points:
        return None
    xyz = np.concatenate([latlon_to_unit_xyz(p.lat, p.lon) for p in points])
    chord, _ = cKDTree(xyz).query(grid.xyz)
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


SIGMA_GRID_KM = tuple(float(v) for v in np.geomspace(2.0, 4000.0, 34))
FLOOR_GRID = (1e-4, 1e-3, 0.01, 0.03, 0.1, 0.2, 0.4)


def fit_kernel(samples: list[tuple[PointMass, float, float]], fitted_on: str,
               sigmas: tuple[float, ...] = SIGMA_GRID_KM, floors: tuple[float, ...] = FLOOR_GRID) -> tuple[Kernel, dict]:
    """Maximum-likelihood (sigma, floor) over a grid: mean log density of the true locations.

    ``samples``: (the image's points, true lat, true lon). Returns the kernel and the log-likelihood table.
    """
    if not samples:
        raise ValueError("no held-out images to fit the kernel on")
    # Kernel part per image and sigma, computed once; the floor mixes in afterwards.
    part = np.empty((len(samples), len(sigmas)))
    for i, (points, lat, lon) in enumerate(samples):
        q = latlon_to_unit_xyz(np.array([lat]), np.array([lon]))
        cos = (latlon_to_unit_xyz(points.lat, points.lon) @ q.T).ravel()
        for j, sigma in enumerate(sigmas):
            part[i, j] = vmf_density_km2(cos, sigma) @ points.weight
    table = {}
    best = (-np.inf, sigmas[0], floors[0])
    for floor in floors:
        ll = np.log((1.0 - floor) * part + floor / EARTH_AREA_KM2).mean(axis=0)
        for sigma, value in zip(sigmas, ll):
            table[f"{sigma:.4g}|{floor:g}"] = float(value)
            if value > best[0]:
                best = (float(value), sigma, floor)
    kernel = Kernel(sigma_km=round(best[1], 3), floor=best[2], fitted_on=fitted_on, n=len(samples))
    return kernel, {"mean_log_density_km2": best[0], "grid": table}
