"""Sun and shadows (chronolocation): where on Earth the sun stood as a shadow says, at the time given.

``sun:time=2024-06-21T10:00:00Z,ratio=1.20,ratio_sd=0.05`` -- a vertical object's shadow is 1.20 times its
height (+- 0.05) at that instant. The sun's elevation at each place gives the ratio it would cast
(1 / tan(elevation)); the likelihood is Gaussian in the ratio, ``exp(-((predicted - ratio) / ratio_sd)^2 / 2)``,
and 0 where the sun is down. Options: ``azimuth=`` the shadow's bearing (degrees east of true north,
from the object's foot to the shadow's tip) with ``azimuth_sd=`` (default 10); ``time2=``, ``ratio2=``
(``ratio2_sd=``, default ``ratio_sd``) for a second shadow of the same place; ``offset=+02:00`` when the
times are local; ``horizon=above|below`` for "the sun is up / down" without a shadow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from geoapp.fusion.clues.base import Clue, ClueError, number, parse_options
from geoapp.fusion.clues.timeparse import utc_time
from geoapp.fusion.grid import Grid
from geoapp.fusion.solar import SunAt

KEYS = {"time": "ISO date-time", "ratio": "shadow length / height", "ratio_sd": "its uncertainty",
        "azimuth": "shadow bearing, degrees from north", "azimuth_sd": "degrees", "time2": "second time",
        "ratio2": "second ratio", "ratio2_sd": "its uncertainty", "offset": "UTC offset of local times",
        "horizon": "above or below"}
MAX_RATIO = 100.0  # a shadow 100x its object: the sun 0.6 degrees up; beyond that, refraction dominates


@dataclass(frozen=True)
class Shadow:
    when: datetime
    ratio: float
    ratio_sd: float


@dataclass(frozen=True)
class SunClue(Clue):
    shadows: tuple[Shadow, ...] = ()
    horizon: str | None = None  # "above" / "below" (only with no shadow ratio)
    when: datetime | None = None
    azimuth: float | None = None
    azimuth_sd: float = 10.0

    kind = "sun"
    hard = False

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "SunClue":
        o = parse_options(text, body, KEYS)
        if "time" not in o:
            raise ClueError(text, "needs time=... (e.g. time=2024-06-21T10:00:00Z)")
        when = utc_time(text, o["time"], o.get("offset"))
        horizon = o.get("horizon")
        if horizon is not None and horizon not in ("above", "below"):
            raise ClueError(text, f"horizon={horizon} must be above or below")
        ratio = number(text, o, "ratio", low=0.0, high=MAX_RATIO)
        if horizon is None and ratio is None:
            raise ClueError(text, "give ratio=SHADOW/HEIGHT (with ratio_sd=) or horizon=above|below")
        if horizon == "below" and ratio is not None:
            raise ClueError(text, "a shadow ratio needs the sun above the horizon, not horizon=below")
        shadows = []
        if ratio is not None:
            sd = number(text, o, "ratio_sd", max(0.02, 0.1 * ratio), low=1e-4, high=MAX_RATIO)
            shadows.append(Shadow(when, ratio, sd))
            if ("time2" in o) != ("ratio2" in o):
                raise ClueError(text, "a second shadow needs both time2= and ratio2=")
            if "time2" in o:
                ratio2 = number(text, o, "ratio2", low=0.0, high=MAX_RATIO)
                shadows.append(Shadow(utc_time(text, o["time2"], o.get("offset")), ratio2,
                                      number(text, o, "ratio2_sd", sd, low=1e-4, high=MAX_RATIO)))
        azimuth = number(text, o, "azimuth", low=0.0, high=360.0)
        if azimuth is not None and ratio is None:
            raise ClueError(text, "azimuth= is the bearing of a shadow: give ratio= too")
        return cls(text=text, source=source, shadows=tuple(shadows), horizon=horizon, when=when, azimuth=azimuth,
                   azimuth_sd=number(text, o, "azimuth_sd", 10.0, low=0.1, high=180.0))

    def factor(self, grid: Grid) -> np.ndarray:
        return self.factor_at(grid.lat, grid.lon)

    def factor_at(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        out = np.ones(np.shape(lat))
        if self.horizon is not None:
            elevation, _ = SunAt.at(self.when).position(lat, lon)
            out *= (elevation > 0) if self.horizon == "above" else (elevation <= 0)
        for index, shadow in enumerate(self.shadows):
            elevation, azimuth = SunAt.at(shadow.when).position(lat, lon)
            up = elevation > 0
            predicted = np.where(up, 1.0 / np.tan(np.radians(np.where(up, elevation, 45.0))), np.inf)
            out *= np.where(up, np.exp(-0.5 * ((predicted - shadow.ratio) / shadow.ratio_sd) ** 2), 0.0)
            if index == 0 and self.azimuth is not None:
                diff = (azimuth + 180.0 - self.azimuth + 180.0) % 360.0 - 180.0
                out *= np.exp(-0.5 * (diff / self.azimuth_sd) ** 2)
        return out

    def describe(self) -> str:
        parts = []
        if self.horizon:
            parts.append(f"sun {self.horizon} the horizon at {self.when:%Y-%m-%d %H:%M} UTC")
        for shadow in self.shadows:
            parts.append(f"shadow {shadow.ratio:g} +- {shadow.ratio_sd:g} x height at {shadow.when:%Y-%m-%d %H:%M} UTC")
        if self.azimuth is not None:
            parts.append(f"shadow bearing {self.azimuth:g} +- {self.azimuth_sd:g} degrees")
        return "; ".join(parts)

    def parameters(self) -> dict:
        return {"shadows": [{"time_utc": s.when.isoformat(), "ratio": s.ratio, "ratio_sd": s.ratio_sd}
                            for s in self.shadows],
                "horizon": self.horizon, "azimuth": self.azimuth, "azimuth_sd": self.azimuth_sd}
