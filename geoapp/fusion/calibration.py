"""Split-conformal calibration of credible areas, stored per model identity.

Score of a solved image: where its true location stands in the map's order of cells (densest first; equal
densities nearest the predicted points first, ``areas.rank_mass``): the mass of the cells ahead of the
truth's cell plus a uniform random share ``u`` of the truth's own cell (group of tied cells). Small when the
model is sure and right. The share is the randomised tie-breaking of smoothed conformal prediction: without
it, every truth in one tied group (the uniform floor far from every point, the densest cell, a coarse cell)
gets the same score, the quantile lands on the tie and the area jumps by the whole group (SatWorld's 95 %
area was nearly the whole globe and held the truth 98.7 % of the time). With it the scores are continuous and
``u`` comes from a seeded generator recorded in the calibration (``tie_shares``), so a rerun is identical.

With n calibration scores sorted, the calibrated area at level L is every cell whose mass ahead is at most
``q_L = score[k]``, ``k = ceil((n + 1) L)`` (1-based; when k > n the area is the whole globe). For a new
image exchangeable with the calibration images, the truth lies in that area with probability at least L
(split conformal prediction; Vovk et al. 2005, Lei et al. 2018); the area drawn takes the cell that straddles
``q`` whole, which adds at most that cell's probability (the randomised area would take it with probability
``(q - ahead) / own``; ``training.fusion.coverage`` reports both).

A calibration belongs to one model identity (family key + weights digest) and one kind of images (the
solved set it came from, named in ``data``); it also stores the kernel fitted for that model on a
disjoint half of the solved set. Shipped calibrations live in ``assets/calibrations/``; ``python -m geoapp
calibrate`` writes the analyst's own into ``<data dir>/calibrations/``.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoapp.fileio import atomic_write
from geoapp.fusion.areas import LEVELS, mass_above, rank_mass
from geoapp.fusion.density import Kernel

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "assets" / "calibrations"
FORMAT = "geoapp.calibration.v1"


def user_dir() -> Path:
    from geoapp.settings import user_data_dir

    return user_data_dir() / "calibrations"


def conformal_index(n: int, level: float) -> int:
    """1-based rank ``ceil((n + 1) level)`` of the threshold among n sorted scores (n + 1 or more: everything).

    Computed on the decimal the level was written as: in floats 25 x 0.28 = 7.000000000000001, whose ceiling
    would take one score too many.
    """
    return math.ceil((n + 1) * Fraction(repr(float(level))))


def conformal_threshold(scores: np.ndarray, level: float) -> float:
    """``q`` such that P(score <= q) >= level for an exchangeable new score (1.0 = everything)."""
    scores = np.sort(np.asarray(scores, np.float64))
    k = conformal_index(len(scores), level)
    return 1.0 if k > len(scores) else float(scores[k - 1])


TIE_STREAM = 24  # keeps the shares' random stream apart from the split's, which uses the same seed


def tie_shares(seed: int, count: int) -> np.ndarray:
    """The uniform shares ``u`` of the randomised tie-breaking, one per solved image, from a recorded seed."""
    return np.random.default_rng([seed, TIE_STREAM]).random(count)


@dataclass(frozen=True)
class TruthRank:
    """Where the truth's cell stands in a map: the mass of the cells ahead of it and of its own tied group."""

    ahead: float
    own: float

    def score(self, u: float) -> float:
        """Conformity score with the share ``u`` in [0, 1) of the truth's own group (randomised tie-breaking)."""
        return min(1.0, self.ahead + u * self.own)

    def in_area(self, q: float) -> bool:
        """Whether the calibrated area drawn at threshold ``q`` (cells with mass ahead <= q) holds the truth."""
        return self.ahead <= q


@dataclass(frozen=True)
class Calibration:
    family: str
    weights_sha256: str | None
    name: str
    data: str  # what the solved images were ("SatWorld validation split: 500 Blue Marble crops")
    scores: tuple[float, ...]
    kernel: Kernel
    created: str = ""
    tie_seed: int | None = None  # seed of the randomised tie-breaking shares (None: older, unrandomised scores)
    note: str = ""  # what its coverage check found, shown with it ("on other regions coverage moved ...")

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
        """Shown with every calibrated area: how many images of which kind, and what the check found."""
        text = f"calibrated on {self.n} images of this kind: {self.data}" if self.data else \
            f"calibrated on {self.n} solved images"
        return f"{text}; {self.note}" if self.note else text

    def to_dict(self) -> dict:
        return {"format": FORMAT, "family": self.family, "weights_sha256": self.weights_sha256, "name": self.name,
                "data": self.data, "n": self.n, "created": self.created, "kernel": self.kernel.to_dict(),
                "thresholds": {f"{level:g}": self.threshold(level) for level in LEVELS},
                **({"ties": {"rule": "randomised share of the truth's own cell", "seed": self.tie_seed}}
                   if self.tie_seed is not None else {}),
                **({"note": self.note} if self.note else {}),
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
                   created=str(data.get("created", "")), tie_seed=_tie_seed(data.get("ties")),
                   note=str(data.get("note", "")))

    def save(self, folder: Path | None = None) -> Path:
        path = (folder or user_dir()) / f"{_safe(self.family)}-{_safe(self.name)}.json"
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
        return path


def _tie_seed(ties) -> int | None:
    if ties is None:
        return None
    if not isinstance(ties, dict) or not isinstance(ties.get("seed"), int):
        raise ValueError("calibration 'ties' must be {'rule': ..., 'seed': integer}")
    return ties["seed"]


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


__all__ = ["Calibration", "TruthRank", "conformal_index", "conformal_threshold", "coverage", "find_calibration",
           "load_all", "mass_above", "tie_shares", "user_dir"]


def score_photo(photo, lat: float, lon: float, thresholds: dict[str, tuple[str, float]] | None = None
                ) -> tuple[TruthRank, dict[str, float]]:
    """Where one solved image's truth stands in its map, and the area (km^2) of each requested set.

    ``thresholds``: name -> ("calibrated", q) for ``mass ahead <= q`` or ("plain", level) for ``mass ahead < level``.
    """
    from geoapp.fusion.posterior import fuse

    posterior = fuse(photos=[photo])
    grid, mass = posterior.grid, posterior.mass
    density = mass / grid.area_km2
    cell = int(grid.locate(np.array([lat]), np.array([lon]))[0])
    ahead, own = rank_mass(density, mass, posterior.tiebreak)
    areas = {}
    for name, (kind, value) in (thresholds or {}).items():
        chosen = ahead <= value if kind == "calibrated" else ahead < value
        areas[name] = float(grid.area_km2[chosen].sum())
    return TruthRank(float(ahead[cell]), float(own[cell])), areas
