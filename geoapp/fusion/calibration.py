"""Split-conformal calibration of credible areas, stored per model identity.

Score of a solved image: the posterior mass of the cells strictly denser than the cell holding the true
location (``areas.mass_above`` at the truth): small when the model is sure and right. With n calibration
scores sorted, the calibrated area at level L is every cell whose ``mass_above`` is at most
``q_L = score[k]`` with ``k = ceil((n + 1) L)`` (1-based; when k > n the area is the whole globe). For a new
image exchangeable with the calibration images, the truth lies in that area with probability at least L
(finite-sample guarantee of split conformal prediction; Vovk et al. 2005, Lei et al. 2018).

A calibration belongs to one model identity (family key + weights digest) and one kind of images (the
solved set it came from, named in ``data``); it also stores the kernel fitted for that model on a
disjoint half of the solved set. Shipped calibrations live in ``assets/calibrations/``; ``python -m geoapp
calibrate`` writes the analyst's own into ``<data dir>/calibrations/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoapp.fileio import atomic_write
from geoapp.fusion.areas import LEVELS, mass_above
from geoapp.fusion.density import Kernel

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "assets" / "calibrations"
FORMAT = "geoapp.calibration.v1"


def user_dir() -> Path:
    from geoapp.settings import user_data_dir

    return user_data_dir() / "calibrations"


def conformal_threshold(scores: np.ndarray, level: float) -> float:
    """``q`` such that P(score <= q) >= level for an exchangeable new score (1.0 = everything)."""
    scores = np.sort(np.asarray(scores, np.float64))
    k = math.ceil((len(scores) + 1) * level)
    return 1.0 if k > len(scores) else float(scores[k - 1])


def truth_score(density: np.ndarray, mass: np.ndarray, cell: int) -> float:
    """Mass of the cells strictly denser than the truth's cell."""
    return float(mass[density > density[cell]].sum())


@dataclass(frozen=True)
class Calibration:
    family: str
    weights_sha256: str | None
    name: str
    data: str  # what the solved images were ("SatWorld validation split: 500 Blue Marble crops")
    scores: tuple[float, ...]
    kernel: Kernel
    created: str = ""

    @property
    def n(self) -> int:
        return len(self.scores)

    def threshold(self, level: float) -> float:
        return conformal_threshold(np.asarray(self.scores), level)

    def matches(self, model: dict) -> bool:
        family = model.get("family") or model.get("model")
        digest = model.get("heads_sha256") or model.get("weights_sha256")
        return family == self.family and (self.weights_sha256 is None or digest == self.weights_sha256)

    def label(self) -> str:
        return f"calibrated on {self.n} solved images ({self.data})"

    def to_dict(self) -> dict:
        return {"format": FORMAT, "family": self.family, "weights_sha256": self.weights_sha256, "name": self.name,
                "data": self.data, "n": self.n, "created": self.created, "kernel": self.kernel.to_dict(),
                "thresholds": {f"{level:g}": self.threshold(level) for level in LEVELS},
                "scores": [round(s, 8) for s in self.scores]}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        if data.get("format") != FORMAT:
            raise ValueError(f"not a geoapp calibration (format {data.get('format')!r}, expected {FORMAT})")
        scores = tuple(sorted(float(s) for s in data["scores"]))
        if not scores or not all(0.0 <= s <= 1.0 + 1e-9 for s in scores):
            raise ValueError("calibration scores must be probabilities")
        return cls(family=str(data["family"]), weights_sha256=data.get("weights_sha256"), name=str(data["name"]),
                   data=str(data.get("data", "")), scores=scores, kernel=Kernel(**data["kernel"]),
                   created=str(data.get("created", "")))

    def save(self, folder: Path | None = None) -> Path:
        path = (folder or user_dir()) / f"{_safe(self.family)}-{_safe(self.name)}.json"
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
        return path


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80]


def load_all(folders: tuple[Path, ...] | None = None) -> list[Calibration]:
    """Every readable calibration in the user's folder, then the shipped ones (damaged files skipped)."""
    found = []
    for folder in folders if folders is not None else (user_dir(), SHIPPED_DIR):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                found.append(Calibration.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return found


def find_calibration(model: dict, name: str | None = None,
                     folders: tuple[Path, ...] | None = None) -> Calibration | None:
    """The calibration of this model identity (named ``name`` if given; the user's own first)."""
    for calibration in load_all(folders):
        if calibration.matches(model) and (name is None or calibration.name == name):
            return calibration
    return None


def coverage(scores: np.ndarray, thresholds: dict[float, float]) -> dict[float, float]:
    """Share of held-out scores inside each calibrated area."""
    scores = np.asarray(scores)
    return {level: float(np.mean(scores <= q)) for level, q in thresholds.items()}


__all__ = ["Calibration", "conformal_threshold", "coverage", "find_calibration", "load_all", "mass_above",
           "truth_score", "user_dir"]


def score_photo(photo, lat: float, lon: float, thresholds: dict[str, tuple[str, float]] | None = None
                ) -> tuple[float, dict[str, float]]:
    """The conformity score of one solved image, and the area (km^2) of each requested set.

    ``thresholds``: name -> ("calibrated", q) for ``mass_above <= q`` or ("plain", level) for ``mass_above < level``.
    """
    from geoapp.fusion.posterior import fuse

    posterior = fuse(photos=[photo])
    grid, mass = posterior.grid, posterior.mass
    density = mass / grid.area_km2
    cell = int(grid.locate(np.array([lat]), np.array([lon]))[0])
    above = mass_above(density, mass)
    areas = {}
    for name, (kind, value) in (thresholds or {}).items():
        chosen = above <= value if kind == "calibrated" else above < value
        areas[name] = float(grid.area_km2[chosen].sum())
    return float(above[cell]), areas
