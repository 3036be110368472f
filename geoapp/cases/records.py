"""Plain values the service hands out or checks: text limits, JSON cleanliness, result records."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from geoapp.results.textsafe import unicode_text

from .errors import CaseInputError
from .models import Case, Event

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NONCHARACTER_RE = re.compile("[\ufffe\uffff]")
_ESCAPED_BYTE_RE = re.compile("[\udc80-\udcff]")  # bytes of a non-UTF-8 file name (surrogateescape)


def default_actor() -> str:
    """``$GEOAPP_ACTOR``, else the OS user name (for the CLI)."""
    explicit = os.environ.get("GEOAPP_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def clean_text(value: Any, what: str, max_len: int, required: bool = False, multiline: bool = True) -> str:
    """User text, checked: no NUL/control characters (PostgreSQL rejects NUL), length-limited."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise CaseInputError(f"{what} must be text")
    text = value.replace("\x00", "")
    # A name read from a non-UTF-8 file system keeps its odd bytes as %NN; other lone surrogates and
    # U+FFFE/U+FFFF cannot be stored as UTF-8 or written to XML, so they become U+FFFD.
    text = _ESCAPED_BYTE_RE.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", text)
    text = _NONCHARACTER_RE.sub("\ufffd", unicode_text(text))
    if not multiline:
        text = " ".join(text.split())
    text = _CONTROL_RE.sub("", text).strip()
    if required and not text:
        raise CaseInputError(f"{what} must not be empty")
    if len(text) > max_len:
        raise CaseInputError(f"{what} is longer than {max_len} characters")
    return text


def display_name(name: str | None) -> str:
    """A file name for display only: last path component, no control characters."""
    text = clean_text(name or "", "file name", 10_000, multiline=False)
    text = PurePosixPath(text.replace("\\", "/")).name or "unnamed"
    return text[:500]


@dataclass
class IntegrityProblem:
    """A stored file that is missing or no longer matches its hash."""

    kind: str  # "missing" | "modified"
    what: str  # "evidence" | "gradcam"
    sha256: str
    name: str
    evidence_id: str | None = None
    analysis_id: str | None = None

    @property
    def message(self) -> str:
        state = "is missing from the case store" if self.kind == "missing" else "has been modified (hash mismatch)"
        return f"{self.what} {self.name} (sha256 {self.sha256[:12]}…) {state}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "what": self.what, "sha256": self.sha256, "name": self.name,
                "evidence_id": self.evidence_id, "analysis_id": self.analysis_id, "message": self.message}


@dataclass
class OpenedCase:
    """A case with everything loaded, plus the integrity problems found while opening it."""

    case: Case
    problems: list[IntegrityProblem] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class CaseSummary:
    """One line of ``list_cases``."""

    id: str
    title: str
    status: str
    created_at: Any
    updated_at: Any
    evidence: int
    analyses: int
    verdict: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(), "evidence": self.evidence, "analyses": self.analyses,
                "verdict": self.verdict}


def jsonable(value: Any) -> Any:
    """numpy scalars -> Python, NaN/inf -> None, tuples -> lists (JSON columns must be plain)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
