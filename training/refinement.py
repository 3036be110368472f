"""Does fine refinement help a family? Its answers with and without refinement, scored on the same images.

``python -m training.evaluate --compare-refinement`` predicts every image once with refinement on. Each
prediction records where its top place was on the gallery before refinement moved it (the "Fine
refinement" evidence), so the answer without refinement and the answer with it come from the same
forward pass and are compared image by image.

The rule for a family's default (issue 22): refinement is on by default only if it measurably improves
accuracy on that family's held-out data: at one threshold at least, more images come inside it than
fall out of it with refinement, and an exact McNemar test on those images gives p < 0.05; and at no
threshold does refinement lose images the same way. No measurement, or no significant change: off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest

from geoapp.geo.metrics import THRESHOLDS_KM

SIGNIFICANCE = 0.05


def gallery_answer(prediction) -> tuple[float, float]:
    """Where the top place of ``prediction`` was before refinement (its own top when nothing was refined)."""
    top = prediction.candidates[0]
    for item in prediction.evidence:
        if getattr(item, "key", "") == "refinement":
            for rank, start, _ in item.moves:
                if rank == top.rank:
                    return float(start[0]), float(start[1])
    return float(top.lat), float(top.lon)


@dataclass
class ThresholdChange:
    """Images inside ``km`` of the truth only with refinement (gained) or only without it (lost)."""

    km: float
    gained: int
    lost: int
    n: int

    @property
    def change_points(self) -> float:
        """Accuracy with refinement minus accuracy without, in percentage points."""
        return 100.0 * (self.gained - self.lost) / self.n if self.n else float("nan")

    @property
    def p_value(self) -> float:
        """Exact two-sided McNemar test: the discordant images split 50/50 if refinement changes nothing."""
        discordant = self.gained + self.lost
        return 1.0 if discordant == 0 else float(binomtest(self.gained, discordant, 0.5).pvalue)

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE


@dataclass
class RefinementComparison:
    """Paired comparison of the answers without refinement (gallery) and with it, over the same images."""

    n: int
    radius_km: float
    thresholds: list[ThresholdChange]
    moved: int  # images whose top answer moved at all
    median_moved_km: float
    mean_error_change_km: float  # with minus without (negative: refinement brought answers closer)
    notes: list[str] = field(default_factory=list)

    @property
    def helps(self) -> bool:
        return (any(t.significant and t.gained > t.lost for t in self.thresholds)
                and not any(t.significant and t.lost > t.gained for t in self.thresholds))

    @property
    def hurts(self) -> bool:
        return any(t.significant and t.lost > t.gained for t in self.thresholds)

    def verdict(self) -> str:
        if self.n == 0:
            return "no image was scored: nothing measured, so refinement stays off by default"
        if self.helps:
            return (f"refinement ({self.radius_km:g} km) measurably helps here: on by default would be justified "
                    "for this model and data")
        if self.hurts:
            return f"refinement ({self.radius_km:g} km) measurably hurts here: keep it off"
        return (f"no measurable difference (McNemar p ≥ {SIGNIFICANCE:g} at every threshold): refinement "
                f"({self.radius_km:g} km) stays off by default")

    def to_dict(self) -> dict:
        return {"n": self.n, "radius_km": self.radius_km, "moved": self.moved,
                "median_moved_km": self.median_moved_km, "mean_error_change_km": self.mean_error_change_km,
                "thresholds": [{"km": t.km, "gained": t.gained, "lost": t.lost,
                                "change_points": t.change_points, "p_value": t.p_value} for t in self.thresholds],
                "helps": self.helps, "hurts": self.hurts, "verdict": self.verdict(), "notes": self.notes}

    def markdown(self) -> str:
        rows = ["| threshold | inside only with refinement | inside only without | change (points) | McNemar p |",
                "|---|---:|---:|---:|---:|"]
        rows += [f"| {t.km:g} km | {t.gained} | {t.lost} | {t.change_points:+.2f} | {t.p_value:.3g} |"
                 for t in self.thresholds]
        moved = (f"{self.moved} of {self.n} top answers moved (median {self.median_moved_km:.2f} km among those); "
                 f"mean error change {self.mean_error_change_km:+.2f} km.")
        return "\n".join([f"Refinement at {self.radius_km:g} km vs the gallery answer, same {self.n} images:", "",
                          *rows, "", moved, f"Verdict: {self.verdict()}.", *self.notes])


def compare(truth: np.ndarray, without: np.ndarray, with_refinement: np.ndarray, radius_km: float,
            thresholds=THRESHOLDS_KM) -> RefinementComparison:
    """Compare answers [N, 2] (lat, lon) without and with refinement against ``truth`` [N, 2].

    Rows where any of the three is NaN (unreadable images) are left out."""
    from geoapp.geo.distance import haversine_km

    truth, without, with_refinement = (np.asarray(a, dtype=np.float64).reshape(-1, 2)
                                       for a in (truth, without, with_refinement))
    ok = np.isfinite(truth).all(1) & np.isfinite(without).all(1) & np.isfinite(with_refinement).all(1)
    truth, without, with_refinement = truth[ok], without[ok], with_refinement[ok]
    before = haversine_km(without[:, 0], without[:, 1], truth[:, 0], truth[:, 1])
    after = haversine_km(with_refinement[:, 0], with_refinement[:, 1], truth[:, 0], truth[:, 1])
    moved_km = haversine_km(without[:, 0], without[:, 1], with_refinement[:, 0], with_refinement[:, 1])
    moved = moved_km > 1e-3
    changes = [ThresholdChange(float(km), int(np.sum((after <= km) & (before > km))),
                               int(np.sum((before <= km) & (after > km))), int(len(truth))) for km in thresholds]
    return RefinementComparison(
        n=int(len(truth)), radius_km=float(radius_km), thresholds=changes, moved=int(moved.sum()),
        median_moved_km=float(np.median(moved_km[moved])) if moved.any() else 0.0,
        mean_error_change_km=float(np.mean(after - before)) if len(truth) else math.nan)
