"""The Cases tab's service layer: the case store plus the shared geolocation service.

No Gradio here (like :mod:`geoapp.ui.service`): the tab turns widget values into the typed
forms below and calls :class:`CaseWorkbench`; tests call the same methods directly.

Analyses go through :meth:`GeolocationService.locate`, the exact path of the Locate tab
(weights check, region check, model lock, random-weights flags), on a verified copy of each
evidence file; the prediction is then recorded with :meth:`CaseStore.record_analysis`, which
checks once more that it was made on that very file.
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoapp.cases.errors import CaseError, CaseInputError, DuplicateCaseError, DuplicateEvidenceError
from geoapp.cases.records import default_actor, display_name
from geoapp.cases.settings import CaseSettings, get_case_settings
from geoapp.results.prediction import Candidate, Prediction, ProbabilitySurface
from geoapp.ui.forms import FormError, LocateForm, RegionForm
from geoapp.ui.service import GeolocationService, Progress

EXPORT_FORMATS = ("html", "geojson", "kml", "csv", "bundle")
EXPORT_TTL_S = 24 * 3600  # exported files are served for download, then removed


def _no_progress(_fraction: float, _message: str) -> None:
    return None


def actor_name(username: str | None) -> str:
    """Who the audit trail records: the logged-in user when the app has --auth, else the server's user."""
    return username.strip() if username and username.strip() else default_actor()


# ---------------------------------------------------------------------------- forms
@dataclass(frozen=True)
class ClaimForm:
    """A claimed place (name, country, ``LAT, LON`` or ``circle:LAT,LON,KM``), time and source."""

    place: str
    radius_km: float | None = None  # around a named place or LAT,LON; the store's default when None
    claimed_time: str | None = None
    source: str = ""

    @classmethod
    def from_values(cls, place: str | None, radius_km: object, claimed_time: str | None,
                    source: str | None) -> "ClaimForm":
        text = (place or "").strip()
        if not text:
            raise FormError("Type the claimed place: a place name (Kharkiv), a country (Ukraine), "
                            "'latitude, longitude' or circle:LAT,LON,KM.")
        radius = None
        if radius_km not in (None, ""):
            try:
                radius = float(radius_km)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise FormError(f"The claim radius must be a number of km, not {radius_km!r}") from None
        return cls(place=text, radius_km=radius, claimed_time=(claimed_time or "").strip() or None,
                   source=(source or "").strip())


@dataclass(frozen=True)
class AnalysisRequest:
    """Which evidence to analyse and with which Locate settings."""

    evidence_ids: tuple[str, ...] = ()  # empty: every evidence file of the case
    top_k: object = 5  # validated by LocateForm, exactly as in the Locate tab
    tencrop: bool = False
    model: str = "auto"
    region: RegionForm = field(default_factory=RegionForm)
    gradcam: bool = False  # also store the Grad-CAM of candidate #1 (slow on CPU)


# ---------------------------------------------------------------------------- results
@dataclass
class EvidenceOutcome:
    added: list = field(default_factory=list)  # geoapp.cases.models.Evidence
    skipped: list[str] = field(default_factory=list)  # one readable reason per file not added


@dataclass
class AnalysisOutcome:
    analyses: list = field(default_factory=list)  # geoapp.cases.models.Analysis
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFile:
    path: Path
    format: str
    sha256: str
    size: int


@dataclass(frozen=True)
class StoredPlace:
    """The place name saved with a candidate (enough for tables and map popups)."""

    label: str
    country_code: str = ""

    def to_dict(self) -> dict:
        return {"label": self.label, "country_code": self.country_code}


def stored_prediction(analysis) -> Prediction:
    """A stored analysis as a :class:`Prediction` (candidates, kept surface, model flags) for the map."""
    candidates = [Candidate(rank=int(c["rank"]), lat=float(c["lat"]), lon=float(c["lon"]),
                            probability=float(c["probability"]),
                            distance_to_top_km=float(c.get("distance_to_top_km") or 0.0),
                            merged_points=int(c.get("merged_points") or 1),
                            place=StoredPlace(c.get("place") or "", c.get("country_code") or ""))
                  for c in analysis.candidates or []]
    surface_data = analysis.surface or {}
    surface = None
    if surface_data.get("probability"):
        surface = ProbabilitySurface(np.asarray(surface_data["lat"], dtype=np.float64),
                                     np.asarray(surface_data["lon"], dtype=np.float64),
                                     np.asarray(surface_data["probability"], dtype=np.float64))
    from geoapp.cases.figures import analysis_caveats

    model = dict(analysis.model_identity or {})
    model["random_weights"] = bool(analysis.random_weights)
    caveats = analysis_caveats(analysis)
    model["caveat"] = caveats[0] if caveats else None
    return Prediction(source=analysis.evidence_id, candidates=candidates,
                      mass_within_km={int(k): float(v) for k, v in (analysis.mass_within_km or {}).items()},
                      surface=surface, model=model, parameters=dict(analysis.parameters or {}),
                      warnings=list(analysis.warnings or []))


# ---------------------------------------------------------------------------- the workbench
class CaseWorkbench:
    """What the Cases tab can do; the store is opened on first use (from the case settings)."""

    def __init__(self, geolocation: GeolocationService, settings: CaseSettings | None = None, store=None,
                 export_dir: str | Path | None = None) -> None:
        self.geolocation = geolocation
        self.settings = settings
        self._store = store
        self._lock = threading.Lock()
        self._export_dir = Path(export_dir) if export_dir else None

    # ------------------------------------------------------------------ plumbing
    @property
    def store(self):
        """The :class:`~geoapp.cases.CaseStore` (GEOAPP_DATABASE_URL / GEOAPP_CASE_STORE / GEOAPP_DATA_DIR)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from geoapp.cases import CaseStore

                    settings = self.settings or get_case_settings()
                    try:
                        self._store = CaseStore.open(settings)
                    except CaseError as error:
                        raise CaseError(f"The case store could not be opened: {error}. Set GEOAPP_DATABASE_URL "
                                        "(database) and GEOAPP_CASE_STORE (evidence folder) and restart.") from error
                    self.settings = settings
        return self._store

    def location(self) -> str:
        """Where cases are kept (password hidden), for the tab's footer."""
        from sqlalchemy.engine import make_url

        settings = self.settings or get_case_settings()
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        return f"database `{url}` · evidence folder `{settings.store_dir}`"

    def _case_id(self, case_id: str | None) -> str:
        if not case_id:
            raise FormError("Open a case first (or create one).")
        return self.store.resolve_case_id(case_id)

    # ------------------------------------------------------------------ cases
    def list_cases(self):
        return self.store.list_cases()

    def create_case(self, title: str | None, description: str | None, actor: str):
        if not (title or "").strip():
            raise FormError("Give the case a title (e.g. 'Flooded street, claimed Kharkiv 2024-03').")
        return self.store.create_case(title or "", description or "", actor=actor)

    def open_case(self, case_id: str | None, actor: str):
        """The case with its audit trail; every evidence file is re-hashed (problems are returned and logged)."""
        return self.store.open_case(self._case_id(case_id), actor=actor)

    def get_case(self, case_id: str):
        return self.store.get_case(self._case_id(case_id))

    def events(self, case_id: str):
        return self.store.events(case_id)

    def import_bundle(self, path: str | None, as_new: bool, actor: str):
        from geoapp.cases.bundle import import_bundle

        if not path:
            raise FormError("Drop a case bundle (.zip, exported from geoapp) first.")
        try:
            return import_bundle(self.store, path, actor=actor, as_new=bool(as_new))
        except DuplicateCaseError as error:
            raise FormError(f"This case is already in the store (case {error.existing_id[:8]}). Tick "
                            "'Import as a separate copy' to keep a second copy.") from error

    # ------------------------------------------------------------------ evidence, claims, notes
    def add_evidence(self, case_id: str | None, paths: Sequence[str], actor: str) -> EvidenceOutcome:
        """Add each file on its own (each one is added completely or not at all); a video adds its keyframes."""
        case_id = self._case_id(case_id)
        if not paths:
            raise FormError("Drop one or more photos into the evidence box first.")
        from geoapp.cases.videos import add_video_file
        from geoapp.imaging.video import is_video_path

        outcome = EvidenceOutcome()
        for path in paths:
            try:
                if is_video_path(str(path)):  # one evidence item, its keyframes derived evidence (as `case add`)
                    outcome.added.append(add_video_file(self.store, case_id, path, actor=actor).video)
                else:
                    outcome.added.append(self.store.add_evidence_file(case_id, path, actor=actor))
            except DuplicateEvidenceError as error:
                outcome.skipped.append(f"{display_name(Path(path).name)} is already evidence in this case "
                                       f"({error.existing_id[:8]}).")
            except CaseInputError as error:
                outcome.skipped.append(str(error))
        if not outcome.added:
            raise FormError("No evidence added: " + " ".join(outcome.skipped))
        return outcome

    def add_claim(self, case_id: str | None, form: ClaimForm, actor: str):
        return self.store.add_claim(self._case_id(case_id), form.place, radius_km=form.radius_km,
                                    claimed_time=form.claimed_time, source=form.source, actor=actor)

    def add_note(self, case_id: str | None, text: str | None, actor: str):
        if not (text or "").strip():
            raise FormError("Type the note first.")
        return self.store.add_note(self._case_id(case_id), text or "", actor=actor)

    # ------------------------------------------------------------------ clues (evidence fusion)
    def add_clue(self, case_id: str | None, text: str | None, source: str | None, actor: str):
        """Record a clue (CLI ``--clue`` syntax); it weighs on every analysis of the case from now on."""
        from geoapp.cases.clues import add_clue

        if not (text or "").strip():
            raise FormError("Type the clue first, e.g. sun:time=2024-06-21T10:00:00Z,ratio=1.2,ratio_sd=0.05 "
                            "or drive:left.")
        return add_clue(self.store, self._case_id(case_id), text or "", source=(source or "").strip() or "analyst",
                        actor=actor)

    def remove_clue(self, case_id: str | None, clue_id: str | None, actor: str):
        """Switch a clue off (the audit trail keeps it)."""
        from geoapp.cases.clues import remove_clue

        if not (clue_id or "").strip():
            raise FormError("Type the id of the clue to remove (its first characters, from the Clues table).")
        return remove_clue(self.store, self._case_id(case_id), clue_id or "", actor=actor)

    # ------------------------------------------------------------------ analyses
    def analyse(self, case_id: str | None, request: AnalysisRequest, actor: str,
                progress: Progress = _no_progress) -> AnalysisOutcome:
        """Run the Locate pipeline on verified copies of the evidence and record each result.

        Every chosen file is verified first: one missing or altered file stops the whole run
        before the model starts, so nothing is recorded from a half-checked batch.
        """
        from geoapp.cases.videos import analysable

        case = self.get_case(case_id)
        if not case.evidence:
            raise FormError("This case has no evidence yet: drop photos into the evidence box first.")
        chosen = analysable(list(case.evidence), tuple(request.evidence_ids))  # a video: its keyframes
        if not chosen:
            raise FormError("The chosen evidence is no longer in this case; reopen it.")
        with tempfile.TemporaryDirectory(prefix="geoapp-case-analysis-") as folder:
            paths = []
            for index, evidence in enumerate(chosen):
                data = self.store.evidence_bytes(evidence)  # EvidenceIntegrityError when missing/altered
                target = Path(folder) / str(index) / evidence.original_name  # the model sees the original name
                target.parent.mkdir()
                target.write_bytes(data)
                paths.append(str(target))
            form = LocateForm.from_values(paths, request.top_k, request.tencrop, request.model, request.region, None)
            located = self.geolocation.locate(form, progress)
            outcome = AnalysisOutcome()
            results = []
            for evidence, item in zip(chosen, located):
                if not item.prediction.ok:
                    outcome.failed.append(f"{evidence.original_name}: {item.prediction.error}")
                    continue
                # Grad-CAMs are computed before anything is recorded: a failure there leaves no partial batch.
                results.append((evidence, item, self._gradcam_png(item) if request.gradcam else None))
            for evidence, item, gradcam in results:
                outcome.analyses.append(self.store.record_analysis(case.id, evidence.id, item.prediction,
                                                                   gradcam=gradcam, actor=actor))
        if not outcome.analyses:
            raise FormError("No analysis recorded: " + " ".join(outcome.failed))
        return outcome

    def _gradcam_png(self, located) -> bytes | None:
        if not located.prediction.candidates:
            return None
        from geoapp.families.base import cams_side_by_side

        buffer = io.BytesIO()
        cams_side_by_side(self.geolocation.explain(located, 1)).save(buffer, format="PNG")
        return buffer.getvalue()

    # ------------------------------------------------------------------ verdicts
    def verdict_figures(self, case_id: str | None, claim_id: str | None = None, analysis_id: str | None = None) -> dict:
        """The figures a verdict would store now (shown before the analyst decides)."""
        return self.store.compute_verdict_evidence(self._case_id(case_id), claim_id=claim_id or None,
                                                   analysis_id=analysis_id or None)

    def set_verdict(self, case_id: str | None, verdict: str | None, rationale: str | None, actor: str,
                    claim_id: str | None = None, analysis_id: str | None = None):
        if not verdict:
            raise FormError("Choose supported, contradicted or inconclusive.")
        if not (rationale or "").strip():
            raise FormError("Write the rationale: why the evidence supports, contradicts or does not settle the claim.")
        return self.store.set_verdict(self._case_id(case_id), verdict, rationale or "", claim_id=claim_id or None,
                                      analysis_id=analysis_id or None, actor=actor)

    # ------------------------------------------------------------------ exports
    def export(self, case_id: str | None, fmt: str, actor: str) -> ExportFile:
        """Write the export to a download folder (audited by the store); old downloads are removed."""
        from geoapp.cases.exports import SUFFIXES, export_case

        if fmt not in EXPORT_FORMATS:
            raise FormError(f"Unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
        case = self.store.get_case_row(self._case_id(case_id))
        folder = self._downloads()
        target = Path(tempfile.mkdtemp(dir=folder)) / f"case-{case.id[:8]}-{_slug(case.title)}{SUFFIXES[fmt]}"
        result = export_case(self.store, case.id, fmt, target, actor=actor)
        return ExportFile(result.path or target, fmt, result.sha256, result.size)

    def _downloads(self) -> Path:
        # Under the system temp folder: Gradio serves files from there without extra allowed_paths.
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="geoapp-case-exports-"))
        self._export_dir.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - EXPORT_TTL_S
        for old in self._export_dir.glob("*/*"):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
                    old.parent.rmdir()
            except OSError:
                pass  # in use or already gone: the next export tries again
        return self._export_dir


def _slug(title: str) -> str:
    text = "".join(ch if ch.isalnum() else "-" for ch in title.lower())
    return "-".join(part for part in text.split("-") if part)[:40] or "case"
