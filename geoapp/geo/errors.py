"""Exception types shared by the ``geoapp.geo`` modules.

They live in their own module so that ``countries`` and ``regions`` can both
raise them without importing each other.  All of them derive from
``ValueError`` so callers that only know "bad user input" can catch that.
"""

from __future__ import annotations


class RegionError(ValueError):
    """A region specification is invalid or unusable (e.g. contains no land)."""


class UnknownRegionError(RegionError):
    """A country / continent name or code could not be resolved.

    ``suggestions`` holds the close matches that are also listed in the message.
    """

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.suggestions: list[str] = list(suggestions or [])
