"""Cases tab: list, open, create and import cases; evidence, claim, clues, analyses, map, notes, verdict, exports.

Every action is one call on :class:`~geoapp.ui.case_service.CaseWorkbench` (one store
transaction, audited with the logged-in user when the app has ``--auth``), then the case is
redrawn from the store (``show``), then the map and the verdict figures (``show_map``, ``preview``):

    action --> CaseSession --show--> tables, choices, notes --show_map--> map, candidates
                                                           --preview--> computed verdict evidence
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from geoapp.cases.errors import CaseError
from geoapp.cases.models import VERDICTS
from geoapp.ui.maps.render import embed_html, placeholder_html
from geoapp.ui import case_views as cv
from geoapp.ui.case_service import AnalysisRequest, CaseWorkbench, ClaimForm, actor_name
from geoapp.ui.common import UiContext, progress_callback, user_errors
from geoapp.ui.forms import MAX_TOP_K, REGION_WORLD, FormError
from geoapp.ui.locate_tab import PHOTO_TYPES, SESSION_TTL_S
from geoapp.ui.region_picker import build_region_picker, region_form
from geoapp.ui.video_tab import VIDEO_TYPES
from geoapp.ui.satellite import (
    build_satellite_controls,
    build_satellite_image,
    wire_claim_view,
)

EXPORT_LABELS = {"html": "HTML report", "geojson": "GeoJSON", "kml": "KML", "csv": "CSV", "bundle": "Bundle (.zip)"}
NO_CASE = "Open a case from the list, or create one."


@dataclass
class CaseSession:
    """The case open in this browser tab (server-side gr.State)."""

    case_id: str | None = None
    problems: list = field(default_factory=list)  # IntegrityProblem found when it was opened
    analysis_id: str | None = None  # shown on the map


def case_errors(handler):
    """Case-store errors are written for analysts too: shown like the other user errors."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except CaseError as error:
            raise FormError(str(error)) from error

    return user_errors(wrapper)


def _actor(request: gr.Request | None) -> str:
    return actor_name(getattr(request, "username", None) if request is not None else None)


def _frame(rows: list[list], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _open(session: CaseSession | None) -> CaseSession:
    if session is None or not session.case_id:
        raise FormError(NO_CASE)
    return session


class CasesHandlers:
    """Event handlers: widget values in, widget values out (tested directly)."""

    def __init__(self, ctx: UiContext, workbench: CaseWorkbench | None = None) -> None:
        self.ctx = ctx
        self.workbench = workbench or CaseWorkbench(ctx.service)

    # ------------------------------------------------------------------ list, create, open, import
    def refresh(self, session: CaseSession | None = None):
        """The case list and picker; on page load a store problem is shown here, not as a popup."""
        current = session.case_id if session is not None else None
        try:
            summaries = self.workbench.list_cases()
        except CaseError as error:
            return (_frame([], cv.CASE_COLUMNS), gr.update(choices=[], value=None),
                    f'<div class="geoapp-error">{cv.escape(error)}</div>')
        return (_frame(cv.case_rows(summaries), cv.CASE_COLUMNS),
                gr.update(choices=cv.case_choices(summaries), value=current),
                f"Cases are kept in: {self.workbench.location()}")

    def create(self, title, description, request: gr.Request = None):
        case = self.workbench.create_case(title, description, _actor(request))
        gr.Info(html.escape(f"Case created: {case.title}"))
        return CaseSession(case.id), "", ""

    def open(self, case_id, session: CaseSession | None = None, request: gr.Request = None):
        """Open (and re-verify) a case; clearing the picker keeps the case that is open."""
        if not case_id and session is not None and session.case_id:
            return session
        opened = self.workbench.open_case(case_id, _actor(request))
        if opened.problems:
            gr.Warning(f"{len(opened.problems)} file(s) of this case are missing or altered: see the red box.",
                       duration=None)
        return CaseSession(opened.case.id, list(opened.problems))

    def import_bundle(self, bundle, as_new, request: gr.Request = None):
        path = bundle if isinstance(bundle, str) or bundle is None else getattr(bundle, "path", None) or str(bundle)
        result = self.workbench.import_bundle(path, bool(as_new), _actor(request))
        gr.Info(html.escape(f"Imported '{result.title}': {result.evidence} evidence file(s), "
                            f"{result.analyses} analyses."))
        return self.open(result.case_id, request=request), None

    # ------------------------------------------------------------------ evidence, claim, analyses, notes
    def add_evidence(self, session, files, request: gr.Request = None):
        session = _open(session)
        items = files if isinstance(files, (list, tuple)) else ([files] if files else [])
        paths = [f if isinstance(f, str) else getattr(f, "path", None) or str(f) for f in items]
        outcome = self.workbench.add_evidence(session.case_id, paths, _actor(request))
        if outcome.skipped:
            gr.Warning(html.escape("Not added: " + " ".join(outcome.skipped)), duration=None)
        return session, None

    def add_claim(self, session, place, radius_km=None, claimed_time=None, source=None, request: gr.Request = None):
        session = _open(session)
        self.workbench.add_claim(session.case_id, ClaimForm.from_values(place, radius_km, claimed_time, source),
                                 _actor(request))
        return session, "", "", ""

    def analyse(self, session, evidence_ids=None, model="auto", top_k=5, tencrop=False, region_mode=REGION_WORLD,
                country=None, continent=None, circle_lat=None, circle_lon=None, circle_radius_km=50.0,
                region_geojson=None, gradcam=False, request: gr.Request = None, progress=gr.Progress()):
        """Analyse the ticked evidence (all when none is ticked) with the Locate settings."""
        session = _open(session)
        region = region_form(region_mode, country, continent, circle_lat, circle_lon, circle_radius_km, region_geojson)
        analysis = AnalysisRequest(tuple(evidence_ids or ()), top_k, bool(tencrop), str(model or "auto"), region,
                                   bool(gradcam))
        outcome = self.workbench.analyse(session.case_id, analysis, _actor(request), progress_callback(progress))
        if outcome.failed:
            gr.Warning(html.escape("Not analysed: " + " ".join(outcome.failed)), duration=None)
        return CaseSession(session.case_id, session.problems, outcome.analyses[-1].id)

    def add_clue(self, session, text, source=None, request: gr.Request = None):
        session = _open(session)
        self.workbench.add_clue(session.case_id, text, source, _actor(request))
        return session, ""

    def remove_clue(self, session, clue_id, request: gr.Request = None):
        session = _open(session)
        self.workbench.remove_clue(session.case_id, clue_id, _actor(request))
        return session, ""

    def add_note(self, session, text, request: gr.Request = None):
        session = _open(session)
        self.workbench.add_note(session.case_id, text, _actor(request))
        return session, ""

    def set_verdict(self, session, claim_id, analysis_id, verdict, rationale, request: gr.Request = None):
        session = _open(session)
        record = self.workbench.set_verdict(session.case_id, verdict, rationale, _actor(request), claim_id, analysis_id)
        gr.Info(f"Verdict recorded: {record.verdict}")
        return session, ""

    def export(self, session, fmt: str, request: gr.Request = None):
        session = _open(session)
        exported = self.workbench.export(session.case_id, fmt, _actor(request))
        return str(exported.path)

    # ------------------------------------------------------------------ drawing
    def show(self, session: CaseSession | None):
        """Everything but the map: header, banner, tables, choices, notes, verdicts, audit trail."""
        if session is None or not session.case_id:
            empty = gr.update(choices=[], value=None)
            return (NO_CASE, "", _frame([], cv.EVIDENCE_COLUMNS), gr.update(choices=[], value=[]),
                    _frame([], cv.CLAIM_COLUMNS), _frame([], cv.ANALYSIS_COLUMNS), empty, "", empty, empty, "",
                    _frame([], cv.EVENT_COLUMNS), _frame([], cv.CLUE_COLUMNS), "")
        case = self.workbench.get_case(session.case_id)
        analyses = cv.analysis_choices(case)
        ids = [value for _, value in analyses]
        chosen = session.analysis_id if session.analysis_id in ids else (ids[0] if ids else None)
        claims = cv.claim_choices(case)
        return (cv.header_markdown(case), cv.banner_html(case, session.problems),
                _frame(cv.evidence_rows(case), cv.EVIDENCE_COLUMNS),
                gr.update(choices=cv.evidence_choices(case), value=[]),
                _frame(cv.claim_rows(case), cv.CLAIM_COLUMNS), _frame(cv.analysis_rows(case), cv.ANALYSIS_COLUMNS),
                gr.update(choices=analyses, value=chosen), cv.notes_markdown(case),
                gr.update(choices=claims, value=claims[0][1] if claims else None),
                gr.update(choices=analyses, value=chosen), cv.verdict_history_markdown(case),
                _frame(cv.event_rows(self.workbench.events(case.id)), cv.EVENT_COLUMNS),
                _frame(cv.clue_rows(case), cv.CLUE_COLUMNS), cv.areas_markdown(case))

    def audit(self, session: CaseSession | None):
        """The audit trail alone (after an export, which changes nothing else)."""
        if session is None or not session.case_id:
            return _frame([], cv.EVENT_COLUMNS)
        return _frame(cv.event_rows(self.workbench.events(session.case_id)), cv.EVENT_COLUMNS)

    def show_map(self, session: CaseSession | None, analysis_id, online_tiles):
        """The case map (claims, EXIF GPS, candidates of the chosen analysis) and its candidate table."""
        options = self.ctx.map_options(online_tiles)
        if session is None or not session.case_id:
            return embed_html(placeholder_html(NO_CASE, options), options.height_px, "Case map"), \
                _frame([], cv.CANDIDATE_COLUMNS)
        case = self.workbench.get_case(session.case_id)
        if analysis_id:
            session.analysis_id = analysis_id  # the choice survives the next redraw
        analysis = next((a for a in case.analyses if a.id == analysis_id), None)
        page = cv.case_map_page(case, analysis.id if analysis else None, options)
        return (embed_html(page, options.height_px, title=f"Map of case {case.title}"),
                _frame(cv.candidate_rows(analysis), cv.CANDIDATE_COLUMNS))

    def preview(self, session: CaseSession | None, claim_id, analysis_id):
        """The computed verdict evidence for the chosen claim and analysis."""
        if session is None or not session.case_id:
            return ""
        case = self.workbench.get_case(session.case_id)
        return cv.figures_markdown(self.workbench.verdict_figures(case.id, claim_id, analysis_id), case)


def _named(handler, name: str):
    """A named closure per export format (the error wrapper logs handler names)."""

    def export(session, request: gr.Request = None):
        return handler(session, name, request)

    export.__name__ = f"export_{name}"
    return export


def build_cases_tab(ctx: UiContext, online_tiles: gr.Checkbox, workbench: CaseWorkbench | None = None,
                    tile_source: gr.Dropdown | None = None) -> CasesHandlers:
    """Lay out the Cases tab (inside a ``gr.Tab``) and wire its events."""
    handlers = CasesHandlers(ctx, workbench)
    session = gr.State(CaseSession(), time_to_live=SESSION_TTL_S)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            picker = gr.Dropdown(label="Open a case", choices=[], value=None, interactive=True, filterable=True,
                                 elem_id="geoapp-case-picker")
            refresh_button = gr.Button("Refresh the list", size="sm")
            with gr.Accordion("New case", open=True):
                title = gr.Textbox(label="Title", max_lines=1, placeholder="Flooded street, claimed Kharkiv 2024-03")
                description = gr.Textbox(label="Description (optional)", lines=2)
                create_button = gr.Button("Create case", variant="primary", elem_id="geoapp-case-create")
            with gr.Accordion("Import a case bundle", open=False):
                bundle = gr.File(label="Case bundle (.zip exported by geoapp)", file_types=[".zip"], height=100)
                as_new = gr.Checkbox(label="Import as a separate copy (when the case is already here)")
                import_button = gr.Button("Import")
            store_info = gr.Markdown(elem_id="geoapp-case-store")
        with gr.Column(scale=3, min_width=480):
            header = gr.Markdown(NO_CASE, elem_id="geoapp-case-header")
            banner = gr.HTML(elem_id="geoapp-case-banner")
            analysis_choice = gr.Dropdown(label="Candidates shown on the map (analysis)", choices=[], interactive=True)
            map_view = gr.HTML(embed_html(placeholder_html(NO_CASE, ctx.map_options(not ctx.config.offline_map)),
                                          title="Case map"), elem_id="geoapp-case-map")
            candidates = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.CANDIDATE_COLUMNS, label="Candidates of that analysis",
                                      interactive=False, wrap=True)
    # Tables take the page's full width: with eight columns in half of it, headers and hashes were cut.
    with gr.Accordion("All cases", open=False):
        case_table = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.CASE_COLUMNS, interactive=False, wrap=True,
                                  column_widths=cv.CASE_COLUMN_WIDTHS, elem_id="geoapp-case-list")
    with gr.Row(equal_height=False):
        with gr.Column():
            evidence_files = gr.File(label="Evidence — drop photos or videos here (a video adds its keyframes)",
                                     file_count="multiple", file_types=PHOTO_TYPES + VIDEO_TYPES, height=120,
                                     elem_id="geoapp-case-evidence")
            evidence_button = gr.Button("Add evidence")
        with gr.Column():
            place = gr.Textbox(label="Claimed place", max_lines=1,
                               placeholder="Kharkiv · Ukraine · country:UA · 49.99, 36.23 · circle:49.99,36.23,30")
            with gr.Row():
                radius = gr.Number(label="Radius (km) around a place or point", value=25, minimum=0.1)
                claimed_time = gr.Textbox(label="Claimed time (optional)", placeholder="2024-03-01 or 2024-03-01T14:30")
            source = gr.Textbox(label="Source of the claim (optional)", placeholder="URL or description", max_lines=2)
            claim_button = gr.Button("Record claim")
    evidence_table = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.EVIDENCE_COLUMNS,
                                  label=f"Evidence (SHA-256 verified on open; the first {cv.SHA_SHOWN} of its 64 hex "
                                        "digits shown, all of them in the exports)",
                                  interactive=False, wrap=True, column_widths=cv.EVIDENCE_COLUMN_WIDTHS,
                                  elem_id="geoapp-case-evidence-table")
    claims_table = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.CLAIM_COLUMNS, label="Claims", interactive=False,
                                wrap=True, column_widths=cv.CLAIM_COLUMN_WIDTHS, elem_id="geoapp-case-claims")
    with gr.Accordion("Clues (sun and shadows, time zone, driving side, elevation, coast, excluded areas)",
                      open=True):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                clue_text = gr.Textbox(label="Clue (the command line's --clue syntax)", max_lines=1,
                                       elem_id="geoapp-case-clue",
                                       placeholder="sun:time=2024-06-21T10:00:00Z,ratio=1.2,ratio_sd=0.05 · "
                                                   "tz:offset=+02:00,time=2024-06-21T12:00:00 · drive:left")
                clue_source = gr.Textbox(label="Where it comes from (optional)", max_lines=1,
                                         placeholder="shadow of the pole measured on frame 2 · posted 10:14 local")
                clue_button = gr.Button("Add clue", elem_id="geoapp-case-clue-add")
            with gr.Column(scale=1, min_width=200):
                clue_id = gr.Textbox(label="Remove the clue with id", max_lines=1, placeholder="first characters")
                clue_remove_button = gr.Button("Remove clue", size="sm")
        clue_table = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.CLUE_COLUMNS,
                                  label="Clues of this case (each analysis is fused with all of them)",
                                  interactive=False, wrap=True, column_widths=cv.CLUE_COLUMN_WIDTHS,
                                  elem_id="geoapp-case-clues")
        areas = gr.Markdown(elem_id="geoapp-case-areas")
    with gr.Accordion("Analyse evidence (same settings as Locate)", open=True):
        with gr.Row(equal_height=False):
            with gr.Column():
                evidence_pick = gr.CheckboxGroup(label="Evidence to analyse (none ticked: all)", choices=[])
                # As in Locate: the best family that can run here by default, every model that can be chosen listed.
                model = ctx.pickers.dropdown(ctx.service, label="Model", elem_id="geoapp-case-model")
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Number of candidate places")
                tencrop = gr.Checkbox(value=False, label="TenCrop: average 10 crops (about 10× slower)")
                gradcam = gr.Checkbox(value=False, label="Store the Grad-CAM of candidate #1 in the case (slow on CPU)")
            with gr.Column():
                with gr.Accordion("Restrict the search region", open=False):
                    region = build_region_picker()
                analyse_button = gr.Button("Run analysis", variant="primary", elem_id="geoapp-case-analyse")
        analyses_table = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.ANALYSIS_COLUMNS, label="Analyses",
                                      interactive=False, wrap=True, column_widths=cv.ANALYSIS_COLUMN_WIDTHS,
                                      elem_id="geoapp-case-analyses")
    with gr.Row(equal_height=False):
        with gr.Column():
            note = gr.Textbox(label="Note", lines=3, placeholder="What you checked, what you saw …")
            note_button = gr.Button("Add note")
            notes = gr.Markdown()
        with gr.Column():
            verdict_claim = gr.Dropdown(label="Claim", choices=[], interactive=True)
            verdict_analysis = gr.Dropdown(label="Analysis", choices=[], interactive=True)
            figures = gr.Markdown(elem_id="geoapp-case-figures")
            verdict = gr.Radio([(f"{v} — {cv.VERDICT_HELP[v]}", v) for v in VERDICTS], label="Verdict")
            rationale = gr.Textbox(label="Rationale", lines=3)
            verdict_button = gr.Button("Record verdict", variant="primary")
            verdicts = gr.Markdown()
    with gr.Accordion("Satellite view of the claim chosen above", open=False), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            satellite_controls = build_satellite_controls()
        satellite = build_satellite_image("geoapp-case-satellite")
    with gr.Accordion("Export", open=True):
        with gr.Row():
            export_buttons = {fmt: gr.Button(label, size="sm") for fmt, label in EXPORT_LABELS.items()}
        download = gr.File(label="Exported file (download)", interactive=False, elem_id="geoapp-case-download")
    with gr.Accordion("Audit trail", open=False):
        audit = gr.Dataframe(elem_classes=["geoapp-table"], headers=cv.EVENT_COLUMNS, interactive=False, wrap=True)

    listed = [case_table, picker, store_info]
    shown = [header, banner, evidence_table, evidence_pick, claims_table, analyses_table, analysis_choice, notes,
             verdict_claim, verdict_analysis, verdicts, audit, clue_table, areas]
    private = dict(api_visibility="private")

    def redraw(event, also_list: bool = False):
        """After an action: the case, then its map and verdict figures (and the list when it changed)."""
        step = event.success(case_errors(handlers.show), inputs=session, outputs=shown, show_progress="hidden", **private)
        step.success(case_errors(handlers.show_map), inputs=[session, analysis_choice, online_tiles],
                     outputs=[map_view, candidates], show_progress="hidden", **private)
        step.success(case_errors(handlers.preview), inputs=[session, verdict_claim, verdict_analysis], outputs=figures,
                     show_progress="hidden", **private)
        if also_list:
            event.success(case_errors(handlers.refresh), inputs=session, outputs=listed, show_progress="hidden",
                          **private)

    gr.on(triggers=None, fn=handlers.refresh, inputs=None, outputs=listed, show_progress="hidden", **private)
    refresh_button.click(case_errors(handlers.refresh), inputs=session, outputs=listed, **private)
    redraw(picker.input(case_errors(handlers.open), inputs=[picker, session], outputs=session, **private))
    redraw(create_button.click(case_errors(handlers.create), inputs=[title, description],
                               outputs=[session, title, description], **private), also_list=True)
    redraw(import_button.click(case_errors(handlers.import_bundle), inputs=[bundle, as_new], outputs=[session, bundle],
                               **private), also_list=True)
    redraw(evidence_button.click(case_errors(handlers.add_evidence), inputs=[session, evidence_files],
                                 outputs=[session, evidence_files], **private), also_list=True)
    redraw(claim_button.click(case_errors(handlers.add_claim), inputs=[session, place, radius, claimed_time, source],
                              outputs=[session, place, claimed_time, source], **private))
    redraw(analyse_button.click(case_errors(handlers.analyse),
                                inputs=[session, evidence_pick, model, top_k, tencrop, *region.inputs(), gradcam],
                                outputs=session, concurrency_id="model", **private), also_list=True)
    redraw(clue_button.click(case_errors(handlers.add_clue), inputs=[session, clue_text, clue_source],
                             outputs=[session, clue_text], **private))
    redraw(clue_remove_button.click(case_errors(handlers.remove_clue), inputs=[session, clue_id],
                                    outputs=[session, clue_id], **private))
    redraw(note_button.click(case_errors(handlers.add_note), inputs=[session, note], outputs=[session, note], **private))
    redraw(verdict_button.click(case_errors(handlers.set_verdict),
                                inputs=[session, verdict_claim, verdict_analysis, verdict, rationale],
                                outputs=[session, rationale], **private), also_list=True)
    for fmt, button in export_buttons.items():
        button.click(case_errors(_named(handlers.export, fmt)), inputs=session, outputs=download, **private) \
              .success(case_errors(handlers.audit), inputs=session, outputs=audit, show_progress="hidden", **private)
    analysis_choice.input(case_errors(handlers.show_map), inputs=[session, analysis_choice, online_tiles],
                          outputs=[map_view, candidates], **private)
    for dropdown in (verdict_claim, verdict_analysis):
        dropdown.input(case_errors(handlers.preview), inputs=[session, verdict_claim, verdict_analysis],
                       outputs=figures, **private)
    online_tiles.input(case_errors(handlers.show_map), inputs=[session, analysis_choice, online_tiles],
                       outputs=[map_view, candidates], show_progress="hidden", **private)
    wire_claim_view(case_errors, handlers.workbench, session, verdict_claim, satellite_controls, satellite,
                    online_tiles, tile_source)
    return handlers

