"""Clues about the ground: driving side (country table), elevation band (ETOPO1), distance to the coast."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from geoapp.fusion import rasters
from geoapp.fusion.clues.base import Clue, ClueError, number, parse_options
from geoapp.fusion.grid import Grid

DRIVING_TABLE = Path(__file__).resolve().parents[1] / "data" / "left_hand_traffic.csv"


@lru_cache(maxsize=1)
def left_hand_codes() -> frozenset[str]:
    with DRIVING_TABLE.open(encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return frozenset(row["code"].strip() for row in rows)




@dataclass(frozen=True)
class DrivingSideClue(Clue):
    side: str = "left"

    kind = "drive"

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "DrivingSideClue":
        side = body.strip().lower()
        if side not in ("left", "right"):
            raise ClueError(text, f"driving side {body!r} must be left or right")
        return cls(text=text, source=source, side=side)

    def _wanted(self) -> np.ndarray:
        codes = rasters.country_codes()
        left = np.array([False] + [c in left_hand_codes() for c in codes])
        wanted = left if self.side == "left" else np.concatenate([[False], ~left[1:]])
        return wanted[rasters.country_ids()]

    def factor(self, grid: Grid) -> np.ndarray:
        return rasters.share(grid, ("drive", self.side), self._wanted, ("countries",),
                             lambda: rasters.country_ids() > 0)

    def describe(self) -> str:
        return f"traffic drives on the {self.side} (countries of {DRIVING_TABLE.name})"

    def parameters(self) -> dict:
        return {"side": self.side}


@dataclass(frozen=True)
class ElevationClue(Clue):
    low: float | None = None
    high: float | None = None
    tolerance: float | None = None  # None: 500 m + 40 % of the bound (the raster's error, see ``rasters``)

    kind = "elevation"

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "ElevationClue":
        o = parse_options(text, body, {"min": "metres", "max": "metres", "tol": "metres of slack"})
        low = number(text, o, "min", low=-500.0, high=9000.0)
        high = number(text, o, "max", low=-500.0, high=9000.0)
        if low is None and high is None:
            raise ClueError(text, "give min= and/or max= in metres (e.g. elevation:min=2000)")
        if low is not None and high is not None and low > high:
            raise ClueError(text, f"min={low:g} is above max={high:g}")
        return cls(text=text, source=source, low=low, high=high, tolerance=number(text, o, "tol", low=0.0, high=5000.0))

    def slack(self, bound: float) -> float:
        return self.tolerance if self.tolerance is not None else 500.0 + 0.4 * abs(bound)

    def passes(self, metres: np.ndarray) -> np.ndarray:
        """Pixels where the band may hold: some pixel within one pixel (about 14 km) is within the slack of it
        (the colour-derived raster is noisy and a valley town sits next to its mountains)."""
        from scipy.ndimage import maximum_filter, minimum_filter

        ok = np.ones(metres.shape, bool)
        if self.low is not None:
            ok &= maximum_filter(metres, size=3, mode="wrap") >= self.low - self.slack(self.low)
        if self.high is not None:
            known = np.where(metres == rasters.ELEVATION_UNKNOWN, np.iinfo(np.int16).max, metres)
            ok &= minimum_filter(known, size=3, mode="wrap") <= self.high + self.slack(self.high)
        return ok | (metres == rasters.ELEVATION_UNKNOWN)  # ice sheets: elevation unknown, not judged

    def factor(self, grid: Grid) -> np.ndarray:
        return rasters.share(grid, ("elevation", self.low, self.high, self.tolerance),
                             lambda: self.passes(rasters.elevation_m()), ("land-elevation",),
                             lambda: rasters.elevation_m() != -1)

    def describe(self) -> str:
        band = " and ".join(p for p in (f"above {self.low:g} m" if self.low is not None else "",
                                         f"below {self.high:g} m" if self.high is not None else "") if p)
        return f"ground {band} (ETOPO1 colour relief; slack {self.slack(self.low if self.low is not None else self.high):g} m)"

    def parameters(self) -> dict:
        return {"min_m": self.low, "max_m": self.high, "tolerance_m": self.tolerance}


@dataclass(frozen=True)
class CoastClue(Clue):
    max_km: float = 20.0

    kind = "coast"

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "CoastClue":
        o = parse_options(text, body, {"max_km": "km from the coastline"})
        if "max_km" not in o:
            raise ClueError(text, "needs max_km= (e.g. coast:max_km=20)")
        return cls(text=text, source=source,
                   max_km=number(text, o, "max_km", low=0.0, high=rasters.COAST_MAX_KM))

    def factor(self, grid: Grid) -> np.ndarray:
        # Half a raster pixel of slack: distances run between pixel centres.
        reach = self.max_km + rasters.RES_DEG * 111.2 / 2
        return rasters.share(grid, ("coast", self.max_km), lambda: rasters.coast_distance_km() <= reach)

    def describe(self) -> str:
        return f"within {self.max_km:g} km of the sea coast (GSHHS land mask, either side)"

    def parameters(self) -> dict:
        return {"max_km": self.max_km}
