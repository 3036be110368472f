"""The fused map: photo densities (tempered) x clue factors on an adaptive grid, with layers and conflicts.

``fuse(predictions, clues, tempering=...)`` builds the grid coarse (about 220 km cells) and refines, level
by level, every cell holding more than ``REFINE_MASS`` of the current posterior (the uniform floor spread over
the globe never does; a photo's core or a narrow band of clues does) until cells are about a third of the
finest kernel width (or ``finest_km``), within ``max_cells``; then the final map is computed once more on it.

The map is never empty or NaN: photo maps have a uniform floor, a clue that fits nowhere is refused when
it is parsed, and when the clues together leave no place, the clue pairs whose product is empty are named,
later clues are set aside until a place remains, and the map says so (``conflicts``, ``dropped``).
A clue that leaves the photo map almost no mass (< 0.1 %) is reported as a conflict with the photo too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoapp.fusion.areas import LEVELS, NOT_CALIBRATED, CredibleArea, build_area, mass_above
from geoapp.fusion.clues.base import Clue
from geoapp.fusion.density import DEFAULT_KERNEL, Kernel, PointMass, centre_density, grid_mass, nearest_point_km
from geoapp.fusion.grid import Grid, level_for_km
from geoapp.fusion.tempering import Tempering

DEFAULT_MAX_CELLS = 120_000
CLUES_ONLY_KM = 25.0  # finest cells of a map made of clues alone
REFINE_MASS = 2e-5  # a cell holding more of the posterior than this is split (most refined first, within the budget)
PHOTO_CONFLICT_MASS = 1e-3


@dataclass(frozen=True)
class PhotoMap:
    """One photo's contribution: its points, kernel, model identity and (if any) calibration."""

    source: str
    points: PointMass
    kernel: Kernel
    model: dict
    calibration: object | None = None  # geoapp.fusion.calibration.Calibration
    digest: str | None = None  # the image's SHA-256 (identical files count once)

    @classmethod
    def from_prediction(cls, prediction, kernel: Kernel | None = None, calibration=None) -> "PhotoMap":
        kernel = kernel or (calibration.kernel if calibration is not None else DEFAULT_KERNEL)
        return cls(prediction.source, PointMass.from_prediction(prediction), kernel, dict(prediction.model), calibration,
                   (getattr(prediction, "image", None) or {}).get("sha256"))


@dataclass
class Layer:
    """One map layer: a photo's density or a clue's factor on every cell."""

    name: str
    kind: str  # "photo" or the clue's kind
    values: np.ndarray = field(repr=False)  # photo: probability per cell; clue: factor in [0, 1]
    hard: bool = False
    source: str = ""
    description: str = ""

    def share_of_globe(self, grid: Grid) -> float:
        """The share of the Earth's surface a clue leaves (area-weighted mean factor)."""
        if self.kind == "photo":
            return 1.0
        return float((self.values * grid.area_km2).sum() / grid.area_km2.sum())

    def to_dict(self, grid: Grid) -> dict:
        return {"name": self.name, "kind": self.kind, "hard": self.hard, "source": self.source,
                "description": self.description, "share_of_globe": round(self.share_of_globe(grid), 6)}


@dataclass(frozen=True)
class Conflict:
    names: tuple[str, ...]
    detail: str

    def to_dict(self) -> dict:
        return {"names": list(self.names), "detail": self.detail}


@dataclass
class Posterior:
    """The fused map on its grid, with every layer, and its credible areas."""

    grid: Grid
    mass: np.ndarray = field(repr=False)
    layers: list[Layer]
    photos: list[PhotoMap]
    clues: list[Clue]
    tempering: Tempering | None = None
    conflicts: list[Conflict] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _tiebreak: np.ndarray | None = field(default=None, repr=False)

    @property
    def density_km2(self) -> np.ndarray:
        return self.mass / self.grid.area_km2

    @property
    def source(self) -> str:
        if not self.photos:
            return "clues only"
        return " + ".join(p.source for p in self.photos)

    @property
    def clue_texts(self) -> list[str]:
        return [c.text for c in self.clues if c.text not in self.dropped]

    def calibration_state(self) -> tuple[object | None, str]:
        """(calibration, why not) for areas of this map: one photo, a calibrated model, hard clues only."""
        if len(self.photos) != 1:
            return None, f"{NOT_CALIBRATED} ({'several photos fused' if self.photos else 'no photo'})"
        calibration = self.photos[0].calibration
        if calibration is None:
            return None, f"{NOT_CALIBRATED} (no calibration for {self.photos[0].model.get('family', 'this model')})"
        soft = [c.text for c in self.clues if not c.hard and c.text not in self.dropped]
        if soft:
            return None, f"{NOT_CALIBRATED} (soft clue {soft[0]} changes the map's shape)"
        return calibration, calibration.label()

    @property
    def tiebreak(self) -> np.ndarray | None:
        """Per cell: km to the nearest photo point (orders cells of equal density; None for clues alone)."""
        if self._tiebreak is None and self.photos:
            self._tiebreak = nearest_point_km(self.grid, [p.points for p in self.photos])
        return self._tiebreak

    def area(self, level: float) -> CredibleArea:
        """The credible area at ``level``: calibrated when the map allows it, else the plain HPD area."""
        if not 0.0 < level < 1.0:
            raise ValueError(f"credible level {level} must be between 0 and 1 (e.g. 0.9)")
        calibration, label = self.calibration_state()
        if calibration is not None:
            # Calibrated photo area, intersected with the hard clues: true hard clues never exclude the truth.
            photo = self.layers[0].values
            chosen = mass_above(photo / self.grid.area_km2, photo, self.tiebreak) <= calibration.threshold(level)
            for layer in self.layers[1:]:
                if layer.name not in self.dropped:
                    chosen &= layer.values > 0
        else:
            chosen = mass_above(self.density_km2, self.mass, self.tiebreak) < level
        return build_area(self.grid, self.mass, chosen, source=self.source, level=level,
                          calibrated=calibration is not None, calibration=label, clues=self.clue_texts)

    def areas(self, levels: tuple[float, ...] = LEVELS) -> list[CredibleArea]:
        return [self.area(level) for level in levels]

    def layer_feature(self, layer: Layer, threshold: float = 0.5) -> dict:
        """A clue's layer as GeoJSON: where its factor is at least ``threshold`` of its peak."""
        from geoapp.fusion.areas import cells_to_geometry

        peak = layer.values.max() if layer.values.size else 0.0
        index = np.flatnonzero(layer.values >= threshold * peak) if peak > 0 else np.zeros(0, np.int64)
        geometry, parts = cells_to_geometry(self.grid, index)
        return {"type": "Feature", "geometry": geometry,
                "properties": {**layer.to_dict(self.grid), "kind": "clue_layer", "clue_kind": layer.kind, "parts": parts,
                               "area_km2": round(float(self.grid.area_km2[index].sum()), 1)}}

    def to_dict(self, levels: tuple[float, ...] = LEVELS) -> dict:
        return {"source": self.source, "grid": self.grid.to_dict(),
                "layers": [layer.to_dict(self.grid) for layer in self.layers],
                "photos": [{"source": p.source, "kernel": p.kernel.to_dict(), "model": p.model.get("family"),
                            "calibration": p.calibration.label() if p.calibration is not None else NOT_CALIBRATED}
                           for p in self.photos],
                "clues": [c.to_dict() for c in self.clues],
                "tempering": self.tempering.to_dict() if self.tempering else None,
                "conflicts": [c.to_dict() for c in self.conflicts], "dropped": list(self.dropped),
                "warnings": list(self.warnings), "areas": [a.to_dict() for a in self.areas(levels)]}


def _photo_log_density(grid: Grid, photos: list[PhotoMap], weights: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    masses = [grid_mass(grid, p.points, p.kernel) for p in photos]
    log = np.zeros(len(grid))
    for w, m in zip(weights, masses):
        log += w * np.log(np.maximum(m, 1e-300) / grid.area_km2)
    return log, masses


def _normalise(log_density: np.ndarray, area: np.ndarray) -> np.ndarray:
    finite = np.isfinite(log_density)
    out = np.zeros(len(area))
    if finite.any():
        out[finite] = np.exp(log_density[finite] - log_density[finite].max()) * area[finite]
        out /= out.sum()
    return out


@dataclass
class _CellValues:
    """What refinement needs per cell, computed once per cell: photo density at the centre, clue factors."""

    photo: list[np.ndarray]  # per photo: kernel density at the cell centre (per km^2)
    factors: list[np.ndarray]  # per clue

    @classmethod
    def of(cls, grid: Grid, photos: list[PhotoMap], clues: list[Clue], check: bool = False) -> "_CellValues":
        photo = [centre_density(grid, p.points, p.kernel) for p in photos]
        factors = [c.checked_factor(grid) if check else np.clip(c.factor(grid), 0.0, 1.0) for c in clues]
        return cls(photo, factors)

    def take(self, index: np.ndarray) -> "_CellValues":
        return _CellValues([v[index] for v in self.photo], [v[index] for v in self.factors])

    @staticmethod
    def concat(a: "_CellValues", b: "_CellValues") -> "_CellValues":
        return _CellValues([np.concatenate(x) for x in zip(a.photo, b.photo)],
                           [np.concatenate(x) for x in zip(a.factors, b.factors)])

    def log_posterior(self, grid: Grid, photos: list[PhotoMap], weights) -> np.ndarray:
        """Approximate log density: a cell's density is at least the mass of the points inside it / its area
        (so a kernel narrower than a coarse cell still marks that cell for refinement)."""
        total = np.zeros(len(grid))
        for w, p, dens in zip(weights, photos, self.photo):
            home = np.bincount(grid.locate(p.points.lat, p.points.lon), weights=p.points.weight, minlength=len(grid))
            value = np.maximum(dens, (1.0 - p.kernel.floor) * home / grid.area_km2) + p.kernel.floor / grid.area_km2.sum()
            with np.errstate(divide="ignore"):
                total += w * np.log(value)
        with np.errstate(divide="ignore"):
            for f in self.factors:
                total += np.log(f)
        return total


def _conflicts(grid: Grid, clues: list[Clue], factors: list[np.ndarray]) -> tuple[list[Conflict], list[int]]:
    """Pairs of clues with an empty product, and the clues kept (in order) so that some place remains."""
    area = grid.area_km2
    found = []
    for i in range(len(clues)):
        for j in range(i + 1, len(clues)):
            if not ((factors[i] * factors[j] * area) > 0).any():
                found.append(Conflict((clues[i].text, clues[j].text), "no place on Earth satisfies both"))
    kept: list[int] = []
    current = np.ones(len(grid))
    for i, f in enumerate(factors):
        if ((current * f) > 0).any():
            kept.append(i)
            current = current * f
    if not found:
        dropped = [clues[i].text for i in range(len(clues)) if i not in kept]
        found.append(Conflict(tuple(c.text for c in clues), "no place satisfies all of them together "
                                                            f"(each pair leaves some); set aside: {', '.join(dropped)}"))
    return found, kept


def fuse(predictions=(), clues: list[Clue] | tuple[Clue, ...] = (), tempering: Tempering | None = None, *,
         photos: list[PhotoMap] | None = None, calibrations: list | None = None,
         max_cells: int = DEFAULT_MAX_CELLS, finest_km: float | None = None) -> Posterior:
    """Fuse photo predictions (``geoapp.results.prediction.Prediction``) and clues into one posterior map.

    ``tempering``: how much each photo counts (default: identical files once, see ``geoapp.fusion.tempering``);
    ``calibrations``: one per prediction (or None), also giving each photo's fitted kernel.
    """
    if photos is None:
        ok = [p for p in predictions if getattr(p, "ok", True)]
        calibrations = calibrations or [None] * len(ok)
        photos = [PhotoMap.from_prediction(p, calibration=c) for p, c in zip(ok, calibrations)]
    clues = list(clues)
    if not photos and not clues:
        raise ValueError("nothing to fuse: give at least one photo prediction or one clue")
    if tempering is None:
        tempering = Tempering.from_digests([p.digest for p in photos]) if photos else None
    weights = tempering.weights if tempering is not None else ()
    if len(weights) != len(photos):
        raise ValueError(f"tempering has {len(weights)} weights for {len(photos)} photos")
    finest = finest_km or (min(p.kernel.sigma_km for p in photos) / 3.0 if photos else CLUES_ONLY_KM)
    target = level_for_km(finest)
    grid = Grid.base()
    values = _CellValues.of(grid, photos, clues, check=True)
    for _ in range(target):
        mass = _normalise(values.log_posterior(grid, photos, weights), grid.area_km2)
        if not mass.any():
            break  # conflicting clues: resolved on the final grid below
        inside = (mass > REFINE_MASS) & (grid.level < target)
        room = (max_cells - len(grid)) // 3
        if room <= 0 or not inside.any():
            break
        chosen = np.flatnonzero(inside)
        if len(chosen) > room:
            chosen = chosen[np.argsort(-mass[chosen], kind="stable")[:room]]
        keep = np.ones(len(grid), bool)
        keep[chosen] = False
        children = grid.children(chosen)
        values = _CellValues.concat(values.take(keep), _CellValues.of(children, photos, clues))
        grid = Grid.concat([grid.subset(keep), children])
    factors = values.factors
    log, masses = _photo_log_density(grid, photos, weights) if photos else (np.zeros(len(grid)), [])
    total = log.copy()
    with np.errstate(divide="ignore"):
        for f in factors:
            total += np.log(f)
    mass = _normalise(total, grid.area_km2)
    conflicts: list[Conflict] = []
    dropped: list[str] = []
    warnings: list[str] = []
    if not mass.any():
        conflicts, kept = _conflicts(grid, clues, factors)
        dropped = [clues[i].text for i in range(len(clues)) if i not in kept]
        total = log.copy()
        with np.errstate(divide="ignore"):
            for i in kept:
                total = total + np.log(factors[i])
        mass = _normalise(total, grid.area_km2)
        warnings.append("the clues leave no place on Earth together: " + "; ".join(
            f"{' x '.join(c.names)}: {c.detail}" for c in conflicts) + f". Map shown without: {', '.join(dropped)}")
    for photo, photo_mass in zip(photos, masses):
        # The photo's own evidence, without the uniform "model is wrong" floor.
        evidence = np.maximum(photo_mass - photo.kernel.floor * grid.area_km2 / grid.area_km2.sum(), 0.0)
        evidence /= max(evidence.sum(), 1e-300)
        for clue, f in zip(clues, factors):
            kept_mass = float((evidence * f).sum())
            if kept_mass < PHOTO_CONFLICT_MASS and clue.text not in dropped:
                name = "photo map" if len(photos) == 1 else f"photo map of {photo.source}"
                conflicts.append(Conflict((name, clue.text),
                                          f"the clue leaves only {kept_mass:.2%} of the photo map's probability"))
    layers = []
    if photos:
        combined = masses[0] if len(photos) == 1 else _normalise(log, grid.area_km2)
        layers.append(Layer("photo map" if len(photos) == 1 else "photo maps (fused)", "photo", combined,
                            source=" + ".join(p.source for p in photos),
                            description=f"kernel {', '.join(f'{p.kernel.sigma_km:g} km' for p in photos)}"))
    for clue, f in zip(clues, factors):
        layers.append(Layer(clue.text, clue.kind, f, hard=clue.hard, source=clue.source, description=clue.describe()))
    return Posterior(grid=grid, mass=mass, layers=layers, photos=list(photos), clues=clues, tempering=tempering,
                     conflicts=conflicts, dropped=dropped, warnings=warnings)
