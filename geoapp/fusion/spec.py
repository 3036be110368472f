"""Clue syntax: ``KIND:ARGUMENTS`` as on the command line (the UI builds the same objects).

- ``sun:time=2024-06-21T10:00:00Z,ratio=1.20,ratio_sd=0.05`` (+ ``azimuth=``, ``azimuth_sd=``, ``time2=``,
  ``ratio2=``, ``ratio2_sd=``, ``offset=``; or ``horizon=above|below``)
- ``tz:offset=+02:00,time=2024-06-21T12:00:00``
- ``drive:left`` / ``drive:right``
- ``elevation:min=2000`` / ``elevation:max=200`` (+ ``tol=``)
- ``coast:max_km=20``
- ``exclude:FILE.geojson``
- ``region:FR`` (any ``--region`` form: country, continent, circle:..., bbox:..., GeoJSON file)
"""

from __future__ import annotations

from geoapp.fusion.clues import KINDS, Clue, ClueError

MAX_CLUE_CHARS = 2000


def parse_clue(text: str, source: str = "analyst") -> Clue:
    """One clue from its text; a :class:`ClueError` naming it when it cannot be used."""
    if not isinstance(text, str) or not text.strip():
        raise ClueError(str(text), "empty clue; write KIND:ARGUMENTS, e.g. drive:left")
    text = text.strip()
    if len(text) > MAX_CLUE_CHARS:
        raise ClueError(text[:40] + "...", f"{len(text)} characters; at most {MAX_CLUE_CHARS}")
    kind, sep, body = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise ClueError(text, f"unknown kind {kind!r}; write KIND:ARGUMENTS with KIND one of {', '.join(KINDS)}")
    return KINDS[kind].parse(text, body, source=source)


def parse_clues(texts: list[str] | tuple[str, ...], source: str = "analyst") -> list[Clue]:
    return [parse_clue(t, source) for t in texts]
