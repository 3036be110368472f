"""The clue contract: a likelihood factor in [0, 1] on every grid cell, with a name and where it came from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from geoapp.fusion.grid import Grid


class ClueError(ValueError):
    """A clue that cannot be used (unparsable, impossible, too large); the message names the clue."""

    def __init__(self, clue: str, problem: str) -> None:
        super().__init__(f"clue {clue!r}: {problem}")
        self.clue = clue
        self.problem = problem


@dataclass(frozen=True)
class Clue(ABC):
    """One piece of the analyst's evidence about where a photo was taken.

    ``factor(grid)`` is the likelihood of the evidence in each cell, scaled to at most 1. A *hard* clue is
    yes/no: its factor is the share of the cell where it holds (0 = excluded); a soft one (sun and shadows)
    weighs places by how well they explain a measurement.
    """

    text: str  # the clue as written (``--clue`` syntax); also its name on maps and in tables
    source: str = field(default="analyst", compare=False)  # who gave it: analyst, EXIF (proposed) ...

    kind = "clue"
    hard = True

    @abstractmethod
    def factor(self, grid: Grid) -> np.ndarray:
        """Likelihood per cell in [0, 1]."""

    @abstractmethod
    def describe(self) -> str:
        """What the clue says, in words."""

    def parameters(self) -> dict:
        return {}

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "source": self.source, "hard": self.hard,
                "description": self.describe(), "parameters": self.parameters()}

    def checked_factor(self, grid: Grid) -> np.ndarray:
        """``factor`` with its range enforced; a clue that leaves no place on Earth is an error naming it."""
        values = np.nan_to_num(np.asarray(self.factor(grid), np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        values = np.clip(values, 0.0, 1.0)
        if not (values > 0).any():
            raise ClueError(self.text, f"no place on Earth fits it ({self.describe()})")
        return values


def parse_options(text: str, body: str, allowed: dict[str, str], flags: tuple[str, ...] = ()) -> dict[str, str]:
    """``key=value,key=value`` (and bare ``flags``) -> dict; unknown keys name the valid ones."""
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        if "=" not in part:
            if part in flags:
                options[part] = "1"
                continue
            raise ClueError(text, f"{part!r} is not key=value; valid keys: {', '.join(allowed)}")
        key, value = (s.strip() for s in part.split("=", 1))
        if key not in allowed:
            raise ClueError(text, f"unknown key {key!r}; valid keys: {', '.join(f'{k} ({v})' for k, v in allowed.items())}")
        if key in options:
            raise ClueError(text, f"{key} given twice")
        options[key] = value
    return options


def number(text: str, options: dict[str, str], key: str, default: float | None = None, *,
           low: float | None = None, high: float | None = None) -> float | None:
    """A finite float option within [low, high] (``default`` when absent)."""
    if key not in options:
        return default
    try:
        value = float(options[key])
    except ValueError:
        raise ClueError(text, f"{key}={options[key]!r} is not a number") from None
    if not np.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else \
            (f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise ClueError(text, f"{key}={options[key]} is impossible: it must be {bounds}")
    return value
