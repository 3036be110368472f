"""The case service: the one API the CLI and the UI use to create and change cases.

Every change is one database transaction that also appends an audit event (who, what,
when).  Files are written to the content-addressed store *before* the transaction that
refers to them commits (see :mod:`geoapp.cases.blobs`).  Evidence hashes are checked on
``open_case`` and before every analysis; a missing or modified file is reported, never
silently used.

Objects returned (``Case``, ``Evidence`` ...) are detached snapshots: read their
attributes, do not modify them.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from .blobs import BlobStore
from .db import Database
from .errors import (CaseError, CaseInputError, CaseNotFoundError, DuplicateEvidenceError, EvidenceIntegrityError)
from .models import STATUSES, VERDICTS, Analysis, Case, Claim, Event, Evidence, Note, Verdict, new_id, utcnow
from .records import CaseSummary, IntegrityProblem, OpenedCase, default_actor, display_name, jsonable as _jsonable
from .records import clean_text as _text
from .settings import CaseSettings, get_case_settings

SURFACE_POINTS = 2000  # most probable points kept per analysis (the full surface is ~100K points)
MAX_GRADCAM_BYTES = 50 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ID_PREFIX_RE = re.compile(r"^[0-9a-f]{4,32}$")
__all__ = ["CaseStore", "CaseSummary", "IntegrityProblem", "OpenedCase", "default_actor", "display_name"]


class CaseStore:
    """Cases in a database plus their files in a content-addressed folder."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    @classmethod
    def open(cls, settings: CaseSettings | None = None, *, database_url: str | None = None,
             store_dir: str | os.PathLike | None = None) -> "CaseStore":
        """Open (creating or migrating as needed) the store named by settings / the environment."""
        settings = settings or get_case_settings()
        return cls(Database(database_url or settings.database_url), BlobStore(store_dir or settings.store_dir))

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> "CaseStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with self.db.write() as session:
                yield session
        except OperationalError as error:
            raise CaseError(f"The case database could not be written: {_short(error)}") from error

    @staticmethod
    def _lock_case(session: Session, case_id: str) -> Case:
        # FOR UPDATE on PostgreSQL serialises writers of one case; SQLite's BEGIN IMMEDIATE already did.
        case = session.get(Case, case_id, with_for_update=True)
        if case is None:
            raise CaseNotFoundError(f"No case with id {case_id}")
        return case

    @staticmethod
    def _log(session: Session, case: Case, actor: str, action: str, entity_type: str, entity_id: str | None,
             details: dict[str, Any], now=None, touch: bool = True) -> None:
        now = now or utcnow()
        session.add(Event(case_id=case.id, at=now, actor=actor, action=action, entity_type=entity_type,
                          entity_id=entity_id, details=details, imported=False))
        if touch:
            case.updated_at = now

    @staticmethod
    def _actor(actor: str | None) -> str:
        return _text(actor if actor is not None else default_actor(), "actor", 200, required=True, multiline=False)

    def resolve_case_id(self, text: str) -> str:
        """A full case id from an id or a unique prefix of at least 4 characters."""
        return self._resolve(Case, text, "case")

    def _resolve(self, model: type, text: str, what: str, case_id: str | None = None) -> str:
        key = (text or "").strip().lower()
        if not _ID_PREFIX_RE.match(key):
            raise CaseNotFoundError(f"No {what} with id {text!r} (ids are hexadecimal, at least 4 characters)")
        with self.db.read() as session:
            query = sa.select(model.id).where(model.id.startswith(key, autoescape=True))
            if case_id is not None:
                query = query.where(model.case_id == case_id)
            found = session.scalars(query.limit(2)).all()
        if not found:
            raise CaseNotFoundError(f"No {what} with id {text}")
        if len(found) > 1:
            raise CaseNotFoundError(f"The id prefix {text} matches several {what}s; give more characters")
        return found[0]

    def resolve_evidence_id(self, case_id: str, text: str) -> str:
        return self._resolve(Evidence, text, "evidence", case_id)

    # ------------------------------------------------------------------ cases
    def create_case(self, title: str, description: str = "", *, actor: str | None = None) -> Case:
        """A new open case."""
        title = _text(title, "title", 300, required=True, multiline=False)
        description = _text(description, "description", 20_000)
        actor = self._actor(actor)
        now = utcnow()
        case_id = new_id()
        case = Case(id=case_id, origin_id=case_id, title=title, description=description, status="open",
                    created_at=now, updated_at=now, created_by=actor)
        with self._write() as session:
            session.add(case)
            self._log(session, case, actor, "case.create", "case", case_id, {"title": title}, now)
        return case

    def set_status(self, case_id: str, status: str, *, actor: str | None = None) -> Case:
        if status not in STATUSES:
            raise CaseInputError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}")
        actor = self._actor(actor)
        with self._write() as session:
            case = self._lock_case(session, case_id)
            old, case.status = case.status, status
            self._log(session, case, actor, "case.status", "case", case.id, {"from": old, "to": status})
        return case

    def list_cases(self, status: str | None = None) -> list[CaseSummary]:
        """All cases, most recently changed first."""
        with self.db.read() as session:
            ev = sa.select(sa.func.count(Evidence.id)).where(Evidence.case_id == Case.id).scalar_subquery()
            an = sa.select(sa.func.count(Analysis.id)).where(Analysis.case_id == Case.id).scalar_subquery()
            latest = (sa.select(Verdict.verdict).where(Verdict.case_id == Case.id)
                      .order_by(Verdict.created_at.desc()).limit(1).scalar_subquery())
            query = sa.select(Case, ev, an, latest).order_by(Case.updated_at.desc())
            if status:
                query = query.where(Case.status == status)
            return [CaseSummary(c.id, c.title, c.status, c.created_at, c.updated_at, int(e), int(a), v)
                    for c, e, a, v in session.execute(query).all()]

    def get_case(self, case_id: str) -> Case:
        """The case with all its records loaded (no integrity check: see :meth:`open_case`)."""
        with self.db.read() as session:
            case = session.scalars(
                sa.select(Case).where(Case.id == case_id).options(
                    selectinload(Case.evidence), selectinload(Case.claims), selectinload(Case.analyses),
                    selectinload(Case.notes), selectinload(Case.verdicts),
                    selectinload(Case.clue_records))).one_or_none()
            if case is None:
                raise CaseNotFoundError(f"No case with id {case_id}")
            return case

    def events(self, case_id: str) -> list[Event]:
        """The audit trail of a case, oldest first."""
        with self.db.read() as session:
            return list(session.scalars(sa.select(Event).where(Event.case_id == case_id).order_by(Event.id)))

    def check_integrity(self, case: Case) -> list[IntegrityProblem]:
        """Re-hash every stored file of the case."""
        problems = []
        for item in case.evidence:
            kind = self.blobs.problem(item.sha256)
            if kind:
                problems.append(IntegrityProblem(kind, "evidence", item.sha256, item.original_name, item.id))
        names = {e.id: e.original_name for e in case.evidence}
        for analysis in case.analyses:
            if analysis.gradcam_sha256:
                kind = self.blobs.problem(analysis.gradcam_sha256)
                if kind:
                    problems.append(IntegrityProblem(kind, "gradcam", analysis.gradcam_sha256,
                                                     f"Grad-CAM of {names.get(analysis.evidence_id, '?')}",
                                                     analysis.evidence_id, analysis.id))
        return problems

    def open_case(self, case_id: str, *, actor: str | None = None) -> OpenedCase:
        """The case, its audit trail, and the integrity problems found (each one also logged)."""
        case = self.get_case(case_id)
        problems = self.check_integrity(case)
        if problems:
            who = self._actor(actor)
            try:
                with self._write() as session:
                    locked = self._lock_case(session, case_id)
                    for p in problems:
                        self._log(session, locked, who, "integrity.problem", p.what, p.analysis_id or p.evidence_id,
                                  p.to_dict(), touch=False)
            except CaseError:
                pass  # a read-only database must not hide the problems themselves: they are returned below
        return OpenedCase(case, problems, self.events(case_id))

    def log_export(self, case_id: str, fmt: str, sha256: str, *, actor: str | None = None,
                   file: str | None = None) -> None:
        """Record in the audit trail that the case was exported (what format, which content hash)."""
        actor = self._actor(actor)
        with self._write() as session:
            case = self._lock_case(session, case_id)
            self._log(session, case, actor, "case.export", "case", case_id,
                      {"format": fmt, "sha256": sha256, **({"file": file} if file else {})}, touch=False)

    # ------------------------------------------------------------------ evidence
    def add_evidence(self, case_id: str, data: bytes, name: str, *, actor: str | None = None) -> Evidence:
        """Add an image (its bytes and original file name) to a case.

        The name is display metadata only; the file is stored under its SHA-256.  Raises
        :class:`CaseInputError` for an unreadable image, :class:`DuplicateEvidenceError`
        when the same file is already in the case, :class:`StoreWriteError` when the
        store cannot be written (then nothing was added).
        """
        from geoapp.imaging import ImageLoadError, load_image

        actor = self._actor(actor)
        shown = display_name(name)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CaseInputError("evidence data must be bytes")
        data = bytes(data)
        self.get_case_row(case_id)  # fail early, before writing any file
        try:
            loaded = load_image(data, name=shown)
        except ImageLoadError as error:
            raise CaseInputError(str(error)) from error
        sha = self.blobs.put(data, what=f"evidence {shown}")
        width, height = loaded.original_size
        now = utcnow()
        evidence = Evidence(id=new_id(), case_id=case_id, sha256=sha, original_name=shown,
                            format=(loaded.format or None), file_size=len(data), width=int(width),
                            height=int(height), exif=_jsonable(loaded.exif.to_dict()), added_at=now, added_by=actor)
        try:
            with self._write() as session:
                case = self._lock_case(session, case_id)
                existing = session.scalar(sa.select(Evidence.id).where(Evidence.case_id == case_id,
                                                                       Evidence.sha256 == sha))
                if existing:
                    raise DuplicateEvidenceError(f"{shown} is already in this case as evidence {existing}", existing)
                session.add(evidence)
                self._log(session, case, actor, "evidence.add", "evidence", evidence.id,
                          {"sha256": sha, "name": shown, "size": len(data)}, now)
        except IntegrityError as error:  # a concurrent writer added the same file (PostgreSQL)
            existing = self._find_evidence(case_id, sha)
            if existing:
                raise DuplicateEvidenceError(f"{shown} is already in this case as evidence {existing}",
                                             existing) from error
            raise CaseError(f"Could not add {shown}: {_short(error)}") from error
        return evidence

    def add_evidence_file(self, case_id: str, path: str | os.PathLike, *, actor: str | None = None) -> Evidence:
        """Read a file (size-capped) and add it; see :meth:`add_evidence`."""
        from geoapp.imaging import MAX_FILE_BYTES

        path = Path(path)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise CaseInputError(f"{path.name}: not a regular file")
            if size > MAX_FILE_BYTES:
                raise CaseInputError(f"{path.name}: {size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise CaseInputError(f"{path}: no such file") from error
        except OSError as error:
            raise CaseInputError(f"{path}: cannot read it ({error.strerror})") from error
        return self.add_evidence(case_id, data, path.name, actor=actor)

    def _find_evidence(self, case_id: str, sha: str) -> str | None:
        with self.db.read() as session:
            return session.scalar(sa.select(Evidence.id).where(Evidence.case_id == case_id, Evidence.sha256 == sha))

    def get_case_row(self, case_id: str) -> Case:
        with self.db.read() as session:
            case = session.get(Case, case_id)
        if case is None:
            raise CaseNotFoundError(f"No case with id {case_id}")
        return case

    def get_evidence(self, case_id: str, evidence_id: str) -> Evidence:
        with self.db.read() as session:
            evidence = session.get(Evidence, evidence_id)
        if evidence is None or evidence.case_id != case_id:
            raise CaseNotFoundError(f"No evidence {evidence_id} in case {case_id}")
        return evidence

    def evidence_bytes(self, evidence: Evidence) -> bytes:
        """The verified original file.  Raises :class:`EvidenceIntegrityError`."""
        return self.blobs.read(evidence.sha256, what=f"Evidence {evidence.original_name}")

    # ------------------------------------------------------------------ claims and notes
    def add_claim(self, case_id: str, place: str, *, radius_km: float | None = None, claimed_time: str | None = None,
                  source: str = "", actor: str | None = None) -> Claim:
        """Record a claim: place (name, country, LAT,LON or circle:...), optional time and source."""
        from .claims import normalise_claimed_time, resolve_place  # geography loads on first use only

        actor = self._actor(actor)
        resolved = resolve_place(place, radius_km)
        when = normalise_claimed_time(claimed_time)
        source = _text(source, "source", 10_000)
        now = utcnow()
        claim = Claim(id=new_id(), case_id=case_id, kind=resolved.kind, place_text=_text(place, "place", 500),
                      label=resolved.label[:300], lat=resolved.lat, lon=resolved.lon, radius_km=resolved.radius_km,
                      country_code=resolved.country_code, region_key=resolved.region_key, claimed_time=when,
                      source=source, created_at=now, created_by=actor)
        with self._write() as session:
            case = self._lock_case(session, case_id)
            session.add(claim)
            self._log(session, case, actor, "claim.add", "claim", claim.id,
                      {"label": claim.label, "region": claim.region_key, "time": when}, now)
        return claim

    def add_note(self, case_id: str, text: str, *, actor: str | None = None) -> Note:
        actor = self._actor(actor)
        text = _text(text, "note", 100_000, required=True)
        now = utcnow()
        note = Note(id=new_id(), case_id=case_id, text=text, created_at=now, created_by=actor)
        with self._write() as session:
            case = self._lock_case(session, case_id)
            session.add(note)
            self._log(session, case, actor, "note.add", "note", note.id, {"chars": len(text)}, now)
        return note

    # ------------------------------------------------------------------ analyses
    def run_analysis(self, case_id: str, evidence_id: str, locator: Any, *, top_k: int = 5, region: Any = None,
                     tencrop: bool = False, merge_km: float | None = None,
                     gradcam: bytes | str | os.PathLike | None = None, explain: bool = False,
                     actor: str | None = None) -> Analysis:
        """Verify the evidence file, predict with ``locator`` (a Geolocator) and record the result.

        ``gradcam``: a PNG (bytes or path) to store with the analysis; or ``explain=True`` to
        compute the Grad-CAM of the top candidate here (:mod:`geoapp.api`).  Refuses
        (:class:`EvidenceIntegrityError`) when the evidence file is missing or modified.
        """
        evidence = self.get_evidence(case_id, evidence_id)
        data = self.evidence_bytes(evidence)
        started = utcnow()
        prediction = locator.predict(data, top_k=top_k, region=region, tencrop=tencrop, merge_km=merge_km)
        if explain and gradcam is None and prediction.ok and prediction.candidates:
            gradcam = gradcam_png(locator, data, prediction.candidates[0].lat, prediction.candidates[0].lon)
        return self.record_analysis(case_id, evidence_id, prediction, gradcam=gradcam, actor=actor, started_at=started)

    def record_analysis(self, case_id: str, evidence_id: str, prediction: Any, *,
                        gradcam: bytes | str | os.PathLike | None = None, actor: str | None = None,
                        started_at=None) -> Analysis:
        """Record a :class:`~geoapp.results.prediction.Prediction` made on this evidence file (e.g. by the UI)."""
        from geoapp.version import __version__

        from .claims import claim_region
        from .figures import region_mass

        actor = self._actor(actor)
        evidence = self.get_evidence(case_id, evidence_id)
        if not prediction.ok:
            raise CaseInputError(f"The prediction failed: {prediction.error}")
        if (prediction.image or {}).get("sha256") != evidence.sha256:
            raise EvidenceIntegrityError(f"This prediction was made on another file than evidence "
                                         f"{evidence.original_name} (hashes differ); not recorded")
        problem = self.blobs.problem(evidence.sha256)
        if problem:
            raise EvidenceIntegrityError(f"Evidence {evidence.original_name} is {problem} in the case store; "
                                         "not recording an analysis of it")
        gradcam_sha = self._store_gradcam(gradcam, evidence.original_name) if gradcam is not None else None
        surface = prediction.surface
        claim_mass: dict[str, float] = {}
        summary: dict[str, Any] = {"points": 0, "returned": 0, "mass_kept": 0.0, "lat": [], "lon": [], "probability": []}
        if surface is not None and len(surface):
            for claim in self.get_case(case_id).claims:
                if claim.region_key not in claim_mass:
                    claim_mass[claim.region_key] = region_mass(claim_region(claim.region_key), surface.lat,
                                                               surface.lon, surface.probability)
            summary = surface.to_dict(SURFACE_POINTS)
            summary["mass_kept"] = float(np.sum(summary["probability"]))
        model = dict(prediction.model)
        now = utcnow()
        analysis = Analysis(
            id=new_id(), case_id=case_id, evidence_id=evidence_id, evidence_sha256=evidence.sha256,
            model=str(model.get("model", "")), backbone=str(model.get("backbone", "")),
            backbone_weights=str(model.get("backbone_weights", ""))[:300],
            weights_sha256=model.get("heads_sha256"), random_weights=bool(model.get("random_weights")),
            model_identity=_jsonable(model), app_version=__version__, parameters=_jsonable(prediction.parameters),
            candidates=_jsonable([c.to_dict() for c in prediction.candidates]),
            mass_within_km=_jsonable({str(k): v for k, v in prediction.mass_within_km.items()}),
            surface=_jsonable(summary), claim_mass=claim_mass, warnings=list(prediction.warnings),
            gradcam_sha256=gradcam_sha, started_at=started_at or now, finished_at=now, created_by=actor)
        with self._write() as session:
            case = self._lock_case(session, case_id)
            session.add(analysis)
            top = analysis.candidates[0] if analysis.candidates else {}
            self._log(session, case, actor, "analysis.add", "analysis", analysis.id,
                      {"evidence_sha256": evidence.sha256, "model": analysis.model, "backbone": analysis.backbone,
                       "backbone_weights": analysis.backbone_weights, "weights_sha256": analysis.weights_sha256,
                       "parameters": analysis.parameters, "top": top.get("place")}, now)
        return analysis

    def _store_gradcam(self, gradcam: bytes | str | os.PathLike, name: str) -> str:
        if isinstance(gradcam, (str, os.PathLike)):
            path = Path(gradcam)
            try:
                if path.stat().st_size > MAX_GRADCAM_BYTES:
                    raise CaseInputError(f"Grad-CAM image {path.name} is larger than {MAX_GRADCAM_BYTES} bytes")
                gradcam = path.read_bytes()
            except OSError as error:
                raise CaseInputError(f"Cannot read the Grad-CAM image {path}: {error.strerror}") from error
        data = bytes(gradcam)
        if not data.startswith(PNG_SIGNATURE) or len(data) > MAX_GRADCAM_BYTES:
            raise CaseInputError("The Grad-CAM image must be a PNG file (under 50 MB)")
        return self.blobs.put(data, what=f"the Grad-CAM image of {name}")

    # ------------------------------------------------------------------ verdicts
    def compute_verdict_evidence(self, case_id: str, *, claim_id: str | None = None,
                                 analysis_id: str | None = None) -> dict[str, Any]:
        """The figures a verdict would store now (for previewing in the UI)."""
        from .figures import verdict_figures

        case = self.get_case(case_id)
        claim, analysis = _pick(case, claim_id, analysis_id)
        return verdict_figures(claim, list(case.analyses), list(case.evidence), analysis, list(case.clues))

    def set_verdict(self, case_id: str, verdict: str, rationale: str, *, claim_id: str | None = None,
                    analysis_id: str | None = None, actor: str | None = None) -> Verdict:
        """Record a verdict with its computed figures (newest claim and analysis unless given)."""
        from .figures import verdict_figures

        if verdict not in VERDICTS:
            raise CaseInputError(f"Unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}")
        rationale = _text(rationale, "rationale", 20_000, required=True)
        actor = self._actor(actor)
        case = self.get_case(case_id)
        claim, analysis = _pick(case, claim_id, analysis_id)
        figures = _jsonable(verdict_figures(claim, list(case.analyses), list(case.evidence), analysis,
                                            list(case.clues)))
        summary = figures["summary"]
        now = utcnow()
        record = Verdict(id=new_id(), case_id=case_id, claim_id=claim.id if claim else None,
                         analysis_id=analysis.id if analysis else None, verdict=verdict, rationale=rationale,
                         distance_km=summary["distance_km"], mass_in_claim=summary["mass_in_claim"],
                         claim_rank=summary["claim_rank"], exif_distance_km=summary["exif_distance_km"],
                         figures=figures, created_at=now, created_by=actor)
        with self._write() as session:
            locked = self._lock_case(session, case_id)
            session.add(record)
            if locked.status == "open":
                locked.status = "decided"
            self._log(session, locked, actor, "verdict.set", "verdict", record.id,
                      {"verdict": verdict, "summary": summary}, now)
        return record


def gradcam_png(locator: Any, image: bytes, lat: float, lon: float) -> bytes:
    """Grad-CAM (analysed crop, then one overlay per branch) for the candidate at (lat, lon), as PNG."""
    import io

    from geoapp.families.base import cams_side_by_side

    buffer = io.BytesIO()
    cams_side_by_side(locator.explain(image, lat, lon)).save(buffer, format="PNG")
    return buffer.getvalue()


def _pick(case: Case, claim_id: str | None, analysis_id: str | None) -> tuple[Claim | None, Analysis | None]:
    claims = {c.id: c for c in case.claims}
    analyses = {a.id: a for a in case.analyses}
    claim = _by_id_or_prefix(claims, claim_id, "claim") if claim_id else (case.claims[-1] if case.claims else None)
    analysis = (_by_id_or_prefix(analyses, analysis_id, "analysis") if analysis_id
                else (case.analyses[-1] if case.analyses else None))
    return claim, analysis


def _by_id_or_prefix(items: dict[str, Any], key: str, what: str) -> Any:
    key = key.strip().lower()
    matches = [v for k, v in items.items() if k.startswith(key)] if len(key) >= 4 else []
    if len(matches) != 1:
        raise CaseNotFoundError(f"No {what} {key} in this case" if not matches else f"Ambiguous {what} id {key}")
    return matches[0]


def _short(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
