"""The analyst's clues as likelihood factors on the fusion grid (one module per kind of clue)."""

from geoapp.fusion.clues.base import Clue, ClueError
from geoapp.fusion.clues.ground import CoastClue, DrivingSideClue, ElevationClue
from geoapp.fusion.clues.shapes import ExcludeClue, RegionClue
from geoapp.fusion.clues.sun import SunClue
from geoapp.fusion.clues.timezone import TimeZoneClue, proposed_from_exif

KINDS: dict[str, type[Clue]] = {
    "sun": SunClue, "tz": TimeZoneClue, "drive": DrivingSideClue, "elevation": ElevationClue,
    "coast": CoastClue, "exclude": ExcludeClue, "region": RegionClue,
}

__all__ = ["KINDS", "Clue", "ClueError", "CoastClue", "DrivingSideClue", "ElevationClue", "ExcludeClue",
           "RegionClue", "SunClue", "TimeZoneClue", "proposed_from_exif"]
