"""Time zone: the places whose legal time was UTC+offset at the photo's local date and time.

``tz:offset=+02:00,time=2024-06-21T12:00:00`` (local time, or a date). Zones come from the offline
boundaries of ``timezonefinder`` (oceans included, as Etc/GMT zones); each zone's offset on that date,
daylight saving included, from the IANA database (``zoneinfo``). A zone matches when its offset at that
local time equals the one given (either side of a clock change when the local time is ambiguous).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from geoapp.fusion import rasters
from geoapp.fusion.clues.base import Clue, ClueError, parse_options
from geoapp.fusion.clues.timeparse import parse_offset, parse_time
from geoapp.fusion.grid import Grid

KEYS = {"offset": "UTC offset, e.g. +02:00", "time": "local date-time or date (for daylight saving)"}


@dataclass(frozen=True)
class TimeZoneClue(Clue):
    offset: timedelta = timedelta(0)
    local_time: datetime | None = None

    kind = "tz"

    @classmethod
    def parse(cls, text: str, body: str, source: str = "analyst") -> "TimeZoneClue":
        o = parse_options(text, body, KEYS)
        if "offset" not in o or "time" not in o:
            raise ClueError(text, "needs offset=+HH:MM and time=LOCAL-DATE-TIME (the date decides daylight saving)")
        offset = parse_offset(text, o["offset"])
        local = parse_time(text, o["time"])
        if local.tzinfo is not None:
            if local.utcoffset() != offset:
                raise ClueError(text, f"time {o['time']} carries another offset than offset={o['offset']}")
            local = local.replace(tzinfo=None)
        clue = cls(text=text, source=source, offset=offset, local_time=local)
        if not clue.zones:
            raise ClueError(text, f"no time zone had UTC{_format(offset)} on {local:%Y-%m-%d %H:%M} (local time)")
        return clue

    @cached_property
    def zones(self) -> tuple[str, ...]:
        """Names of the zones whose offset at that local time was the one given."""
        found = []
        for name in rasters.timezone_names():
            try:
                zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            if any(self.local_time.replace(tzinfo=zone, fold=fold).utcoffset() == self.offset for fold in (0, 1)):
                found.append(name)
        return tuple(found)

    def _wanted(self) -> np.ndarray:
        names = rasters.timezone_names()
        wanted = np.zeros(len(names) + 1, bool)
        wanted[[names.index(z) + 1 for z in self.zones]] = True
        return wanted[rasters.timezone_ids()]

    def factor(self, grid: Grid) -> np.ndarray:
        return rasters.share(grid, ("tz",) + self.zones, self._wanted)

    def describe(self) -> str:
        return (f"local time UTC{_format(self.offset)} on {self.local_time:%Y-%m-%d %H:%M}: "
                f"{len(self.zones)} zones ({', '.join(self.zones[:4])}{' ...' if len(self.zones) > 4 else ''})")

    def parameters(self) -> dict:
        return {"offset": _format(self.offset), "local_time": self.local_time.isoformat(), "zones": list(self.zones)}


def _format(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def proposed_from_exif(capture_time: str | None) -> "TimeZoneClue | None":
    """The tz clue an EXIF capture time with an offset proposes (shown; applied only when accepted)."""
    if not capture_time:
        return None
    try:
        moment = datetime.fromisoformat(capture_time)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    text = f"tz:offset={_format(moment.utcoffset())},time={moment.replace(tzinfo=None).isoformat()}"
    try:
        return TimeZoneClue.parse(text, text.split(":", 1)[1], source="EXIF OffsetTimeOriginal (proposed)")
    except ClueError:
        return None
