"""Clues (evidence fusion) as case evidence: add, edit and remove through the store, one transaction and
one audit event each; and the case's fused map per analysis (its photo map times the current clues) with
the credible areas the verdict and the report state.

Rows are append-only (``CaseClue``): an edit adds a row that replaces the old one, a removal adds an
inactive one, so the audit trail keeps every version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoapp.fusion import ClueError, find_calibration, fuse, parse_clue
from geoapp.fusion.density import DEFAULT_KERNEL, PointMass
from geoapp.fusion.posterior import PhotoMap

from .errors import CaseInputError, CaseNotFoundError
from .models import Analysis, CaseClue, new_id, utcnow
from .records import clean_text

LEVELS = (0.5, 0.8, 0.9, 0.95)


def _parsed(text: str) -> tuple[str, str]:
    text = clean_text(text, "clue", 2000, required=True, multiline=False)
    try:
        clue = parse_clue(text)
    except ClueError as error:
        raise CaseInputError(f"Clue {text!r}: {error}") from error
    return clue.text, clue.kind


def add_clue(store, case_id: str, text: str, *, source: str = "analyst", actor: str | None = None,
             replaces: str | None = None, active: bool = True) -> CaseClue:
    """Record a clue (``replaces``: the id of the clue it edits or, with ``active=False``, removes)."""
    actor = store._actor(actor)
    text, kind = _parsed(text)
    source = clean_text(source or "analyst", "clue source", 2000, required=True, multiline=False)
    now = utcnow()
    row = CaseClue(id=new_id(), case_id=case_id, text=text, kind=kind, source=source, active=active,
                   replaces=replaces, created_at=now, created_by=actor)
    action = "clue.add" if replaces is None else ("clue.edit" if active else "clue.remove")
    with store._write() as session:
        case = store._lock_case(session, case_id)
        if replaces is not None:
            old = session.get(CaseClue, replaces)
            if old is None or old.case_id != case_id:
                raise CaseNotFoundError(f"No clue {replaces} in this case")
            if session.query(CaseClue).filter(CaseClue.replaces == replaces).first() is not None:
                raise CaseInputError(f"Clue {replaces} was already edited or removed; change its newest version")
        session.add(row)
        store._log(session, case, actor, action, "clue", row.id,
                   {"text": text, "kind": kind, "source": source, "replaces": replaces}, now)
    return row


def edit_clue(store, case_id: str, clue_id: str, text: str, *, source: str | None = None,
              actor: str | None = None) -> CaseClue:
    old = _current(store, case_id, clue_id)
    return add_clue(store, case_id, text, source=source or old.source, actor=actor, replaces=old.id)


def remove_clue(store, case_id: str, clue_id: str, *, actor: str | None = None) -> CaseClue:
    old = _current(store, case_id, clue_id)
    return add_clue(store, case_id, old.text, source=old.source, actor=actor, replaces=old.id, active=False)


def _current(store, case_id: str, clue_id: str) -> CaseClue:
    key = (clue_id or "").strip().lower()
    found = [c for c in store.get_case(case_id).clues if c.id.startswith(key)] if len(key) >= 4 else []
    if len(found) != 1:
        raise CaseNotFoundError(f"No current clue {clue_id!r} in this case (ids: at least 4 characters, unique)")
    return found[0]


@dataclass
class CaseAreas:
    """One analysis fused with the case's clues: its credible areas and where the claim lies."""

    analysis_id: str
    areas: list  # geoapp.fusion.CredibleArea
    clues: list[str]
    conflicts: list[str]
    claim: str | None  # "the claimed place lies inside the 80 % area (...)"

    def statement(self) -> str:
        text = "; ".join(a.summary() for a in self.areas)
        return text + (f". The claimed place lies {self.claim}." if self.claim else ".")


def latest_claim_point(case):
    """The case's newest claim and its point (None for a country claim or no claim): what areas are read against."""
    claim = case.claims[-1] if case.claims else None
    return claim, ((claim.lat, claim.lon) if claim is not None and claim.lat is not None else None)


def analysis_areas(analysis: Analysis, clues: list[CaseClue], claim_point: tuple[float, float] | None = None,
                   levels: tuple[float, ...] = LEVELS) -> CaseAreas | None:
    """The credible areas of a stored analysis (its kept surface points) times the current clues."""
    surface = analysis.surface or {}
    weights = np.asarray(surface.get("probability") or [], np.float64)
    if not len(weights) or weights.sum() <= 0:
        return None
    points = PointMass(np.asarray(surface["lat"], np.float64), np.asarray(surface["lon"], np.float64),
                       weights / weights.sum())
    model = dict(analysis.model_identity or {})
    calibration = find_calibration(model)
    kernel = calibration.kernel if calibration is not None else DEFAULT_KERNEL
    photo = PhotoMap(analysis.id, points, kernel, model, calibration, analysis.evidence_sha256)
    parsed = [parse_clue(c.text, source=c.source) for c in clues]
    post = fuse(photos=[photo], clues=parsed)
    areas = post.areas(levels)
    claim = None
    if claim_point is not None:
        cell = int(post.grid.locate(np.array([claim_point[0]]), np.array([claim_point[1]]))[0])
        inside = [a for a in areas if cell in set(a.cells.tolist())]
        area = min(inside, key=lambda a: a.level) if inside else max(areas, key=lambda a: a.level)
        word = "inside" if inside else "outside"
        claim = f"{word} the {area.level * 100:g} % area ({area.calibration})"
    return CaseAreas(analysis.id, areas, [c.text for c in parsed],
                     [f"{' x '.join(c.names)}: {c.detail}" for c in post.conflicts], claim)



def report_section(case, escape) -> str:
    """The report's "Clues and credible areas" section (HTML; ``escape`` is the report's escaper)."""
    if not case.clues and not case.analyses:
        return '<p class="muted">No clues recorded.</p>'
    rows = "".join(f"<tr><td><code>{escape(c.id[:12])}</code></td><td>{escape(c.text)}</td><td>{escape(c.kind)}</td>"
                   f"<td>{escape(c.source)}</td><td>{escape(c.created_by)}</td></tr>" for c in case.clues)
    out = [f"<table><tr><th>Clue</th><th>Text</th><th>Kind</th><th>Source</th><th>Added by</th></tr>{rows}</table>"
           if rows else '<p class="muted">No clues recorded: the areas below are the photo maps alone.</p>']
    claim, point = latest_claim_point(case)
    for analysis in case.analyses:
        areas = analysis_areas(analysis, case.clues, point)
        if areas is None:
            continue
        items = "".join(f"<li>{escape(a.summary())}</li>" for a in areas.areas)
        claim_line = (f"<p>The claimed place ({escape(claim.label)}) lies {escape(areas.claim)}.</p>"
                      if areas.claim else "")
        conflicts = "".join(f'<div class="warn">Conflict: {escape(c)}</div>' for c in areas.conflicts)
        out.append(f"<h3>Analysis <code>{escape(analysis.id[:12])}</code> ({escape(analysis.model)}) × clues</h3>"
                   f"<ul>{items}</ul>{claim_line}{conflicts}")
    return "".join(out)
