"""Locate tab: drop photos, get the map of candidates, the table, EXIF and Grad-CAM.

Events (the first is the public API ``/locate``; the rest only redraw from the session state):

    Locate button --busy--> --locate--> LocateSession + JSON  --show--> map, table, EXIF, photo, evidence
                                                                   --cam_pending--> --gradcam--> overlays
                                 (fails) --failed--> the error beside the form, the button back
    photo selector / candidate selector / tile setting --> show / gradcam again (no new prediction)

The model dropdown (geoapp/ui/model_picker.py) lists every model that can be chosen, unavailable ones marked.
Family-specific evidence (TransLocator's segmentation and scene, a tile search path ...) is shown by the
"Evidence from the model" panel from each result's evidence items, and families with several inputs add one
Grad-CAM per branch.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd

from geoapp.families.base import evidence_html
from geoapp.ui.maps.render import embed_html, placeholder_html, prediction_map_html
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING
from geoapp.ui import views
from geoapp.ui.common import UiContext, error_message, progress_callback, user_errors
from geoapp.ui.forms import MAX_TOP_K, REGION_WORLD, FormError, LocateForm
from geoapp.ui.fusion_service import parse_clue_lines
from geoapp.ui.fusion_views import fusion_markdown
from geoapp.ui.model_picker import (chosen_options, family_options, model_changed, option_names, options_collector,
                                    options_dict)
from geoapp.ui.region_picker import build_region_picker, region_form
from geoapp.ui.satellite import (
    build_satellite_controls,
    build_satellite_image,
    wire_candidate_view,
)
from geoapp.ui.service import CLAIM_COLOUR, LocatedImage
from geoapp.ui.video_tab import build_video_panel

PHOTO_TYPES = ["image", ".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp", ".gif", ".avif"]
SHOWN_OUTPUTS = 11  # what LocateHandlers.show returns
SESSION_TTL_S = 4 * 3600  # results (with probability surfaces) are dropped after 4 h without use


@dataclass
class LocateSession:
    """One analyst's latest batch of results (server-side only: a gr.State)."""

    results: list[LocatedImage] = field(default_factory=list)
    error: str | None = None  # why the last run failed: shown beside the form until the next run

    def get(self, index: int | None) -> LocatedImage:
        if not self.results:
            raise FormError("Locate a photo first.")
        position = int(index or 0)
        if not 0 <= position < len(self.results):
            raise FormError("That result no longer exists: run Locate again.")
        return self.results[position]


def api_payload(results: list[LocatedImage]) -> dict:
    """What the API returns: one JSON record per photo (candidates, EXIF, warnings), no surface."""
    records = []
    for located in results:
        record = located.prediction.to_dict()
        record["source"] = located.name  # not the server-side upload path
        region = located.prediction.region
        # The full-resolution outline can be megabytes; clients get its identity, the map shows it.
        record["region"] = None if region is None else {"key": region.key, "label": region.label}
        record["references"] = [{"label": r.label, "lat": r.lat, "lon": r.lon} for r in located.references]
        if located.fusion is not None:
            record["fusion"] = located.fusion.to_dict()  # credible areas (GeoJSON), clue table, conflicts
        records.append(record)
    random = any(r.prediction.random_weights for r in results)
    return {"random_weights": random, "warning": RANDOM_WEIGHTS_WARNING if random else None, "results": records}


class LocateHandlers:
    """Event handlers of the tab; each takes widget values and returns widget values."""

    def __init__(self, ctx: UiContext) -> None:
        self.ctx = ctx

    def locate(self, photos, top_k=5, tencrop=False, model="auto", region_mode=REGION_WORLD, country=None,
               continent=None, circle_lat=None, circle_lon=None, circle_radius_km=50.0, region_geojson=None,
               claimed_location=None, model_options=None, clues=None, same_place=False, exif_clues=False,
               exclude_area=None, session=None, progress=gr.Progress()):
        """Locate photos. Returns the session state (UI only) and a JSON record per photo.

        ``model_options``: the chosen family's own options as a dict (e.g. ``{"geoclip_weight": 0.7}``).
        ``clues``: evidence-fusion clues, one per line in the CLI's ``--clue`` syntax; with clues or
        ``same_place`` each record gets ``fusion``: the credible areas (GeoJSON) and the clue table.
        ``exif_clues``: apply the time-zone clue each photo's EXIF proposes (never applied unasked: EXIF can be
        edited). ``exclude_area``: a GeoJSON file of an area the place is not in (an ``exclude:`` clue).
        ``session`` (the page's state, not part of the API) keeps the error of a failed run for :meth:`failed`."""
        try:
            return self._locate(photos, top_k, tencrop, model, region_mode, country, continent, circle_lat,
                                circle_lon, circle_radius_km, region_geojson, claimed_location, model_options, clues,
                                same_place, exif_clues, exclude_area, progress)
        except Exception as error:
            if isinstance(session, LocateSession):
                session.error = error_message(error)[1]
            raise

    def _locate(self, photos, top_k, tencrop, model, region_mode, country, continent, circle_lat, circle_lon,
                circle_radius_km, region_geojson, claimed_location, model_options, clues, same_place, exif_clues,
                exclude_area, progress):
        region = region_form(region_mode, country, continent, circle_lat, circle_lon, circle_radius_km, region_geojson)
        extras = chosen_options(self.ctx.service, model, model_options)
        lines = parse_clue_lines(clues) + exclude_clue_lines(exclude_area)
        form = LocateForm.from_values(photos, top_k, tencrop, model, region, claimed_location, extras,
                                      lines, same_place, exif_clues)
        first_run = not self.ctx.service.is_loaded(form.model)
        results = self.ctx.service.locate(form, progress_callback(progress))
        if first_run:
            gr.Info("The model is loaded and its candidates are cached: the next photos take seconds.", duration=8)
        failed = [r.prediction for r in results if not r.prediction.ok]
        if len(failed) == len(results):
            raise FormError(" ".join(p.error or "" for p in failed))
        if failed:
            gr.Warning(f"{len(failed)} of {len(results)} files could not be analysed; see the message above the map.")
        return LocateSession(results), api_payload(results)

    @staticmethod
    def failed(session: LocateSession | None):
        """After a failed run: the button back, and the error beside the form (the toast fades, this stays)."""
        reason = (session.error if session is not None else None) or \
            "The run did not finish (the server refused or lost it); press Locate again."
        return _idle(), gr.update(value=f'<div class="geoapp-error" role="alert"><b>Could not locate.</b> '
                                        f"{html.escape(reason)}</div>", visible=True)

    def show(self, session: LocateSession | None, index, online_tiles: bool):
        """Draw one result: banner, selector, summary, map, table, photo, EXIF, Grad-CAM choices."""
        if session is None or not session.results:
            raise FormError("Locate a photo first.")
        position = int(index or 0)
        located = session.get(position)
        prediction = located.prediction
        names = [r.name for r in session.results]
        selector = gr.update(choices=views.result_choices(names, [r.prediction for r in session.results]),
                             value=position, visible=len(session.results) > 1)
        banner = views.banner_html([r.prediction for r in session.results], random_weights=self.ctx.random_weights)
        options = self.ctx.map_options(online_tiles)
        if prediction.ok:
            page = prediction_map_html(prediction, options, references=located.references, selected_rank=1,
                                       title=located.name, fusion=located.fusion)
        else:
            page = placeholder_html(f"{located.name}: could not be analysed", options)
        table = gr.Dataframe(pd.DataFrame(views.candidate_rows(prediction, located.references),
                                          columns=views.candidate_columns(located.references)),
                             column_widths=views.candidate_column_widths(located.references))
        ranks = [(f"#{c.rank} — {c.place_label or f'{c.lat:.3f}, {c.lon:.3f}'} ({views.percent(c.probability)})", c.rank)
                 for c in prediction.candidates]
        rank = gr.update(choices=ranks, value=1 if ranks else None)
        evidence = evidence_html(prediction)
        return (banner, selector, views.confidence_markdown(prediction, located.references),
                embed_html(page, options.height_px, title=f"Map of candidates for {located.name}"), table,
                located.display, views.exif_markdown(prediction.image), rank, gr.update(visible=bool(evidence)),
                evidence, fusion_markdown(located.fusion, _claimed(located)))

    def cam_pending(self, session: LocateSession | None, index, rank):
        """Clear the Grad-CAM panel at once for a new result or candidate (no earlier model's maps left over),
        saying what comes, or calmly that this model has none."""
        note = self._no_cam(session, index)
        if note is None:
            note = f"_Computing the Grad-CAM of candidate #{int(rank or 1)} …_"
        return None, None, note, gr.update(value=None, visible=False)

    def _no_cam(self, session: LocateSession | None, index) -> str | None:
        """Why this result has no Grad-CAM to compute (a plain note), or None when it has one."""
        if session is None or not session.results:
            return ""
        located = session.get(index)
        if not located.prediction.ok or not located.prediction.candidates:
            return "_No candidate to explain._"
        spec = self.ctx.service.spec(located.model)
        if not spec.capabilities.gradcam:
            return views.no_gradcam_markdown(spec.label)
        return None

    def gradcam(self, session: LocateSession | None, index, rank, progress=gr.Progress()):
        """Grad-CAM of the selected photo towards the selected candidate (default #1)."""
        note = self._no_cam(session, index)
        if note is not None:
            return None, None, note, gr.update(value=None, visible=False)
        located = session.get(index)
        chosen = int(rank or 1)
        progress(0.1, desc=f"Grad-CAM for candidate #{chosen} …")
        maps = self.ctx.service.explain(located, chosen)
        result = next(iter(maps.values()))
        others = [(cam.overlay, f"Grad-CAM, {name} input") for name, cam in list(maps.items())[1:]]
        candidate = located.prediction.candidates[chosen - 1]
        caption = (f"**Grad-CAM for candidate #{chosen}** ({views.escape(candidate.place_label or '')}): warm colours "
                   "mark the parts of the photo that raised its match with this location "
                   f"({views.escape(result.target)}). It shows what drove the guess, not whether the guess is right.")
        if result.random_weights:
            caption = ('<div class="geoapp-random"><b>RANDOM WEIGHTS — this heatmap is meaningless.</b></div>\n\n'
                       + caption)
        return (shown_size(result.crop), shown_size(result.overlay), caption,
                gr.update(value=[(shown_size(image), label) for image, label in others] or None, visible=bool(others)))


def build_locate_tab(ctx: UiContext, online_tiles: gr.Checkbox, tile_source: gr.Dropdown | None = None) -> None:
    """Lay out the Locate tab (inside a ``gr.Tab``) and wire its events."""
    handlers = LocateHandlers(ctx)
    session = gr.State(LocateSession(), time_to_live=SESSION_TTL_S)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            photos = gr.File(label="Photos — drop one or several (JPEG, PNG, WebP, HEIC, TIFF …)",
                             file_count="multiple", file_types=PHOTO_TYPES, height=150, elem_id="geoapp-photos")
            locate_button = gr.Button("Locate", variant="primary", size="lg", elem_id="geoapp-locate-button")
            error_box = gr.HTML(visible=False, elem_id="geoapp-locate-error")  # the last run's error, until the next
            with gr.Accordion("Options", open=True):
                model = ctx.pickers.dropdown(ctx.service, label="Model", elem_id="geoapp-model")
                option_fields = [gr.Number(value=option.default, label=option.help or option.name, precision=None
                                           if option.type is float else 0, visible=option.name in
                                           option_names(ctx.service, model.value), elem_id=f"geoapp-option-{option.name}")
                                 for option in family_options(ctx.service)]
                # What the API takes: one dict; the fields above fill it for the page.
                model_options = gr.JSON(value=options_dict(ctx.service, [f.value for f in option_fields]),
                                        visible=False)
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Number of candidate places")
                tencrop = gr.Checkbox(value=False, label="TenCrop: average 10 crops (about 10× slower, often steadier)")
                claimed = gr.Textbox(label="Claimed location to check (optional)",
                                     placeholder="Odesa · Kharkiv, UA · 46.4825, 30.7233",
                                     info="A place name or 'latitude, longitude' (as for a Case's claim): shown on the "
                                          "map with its distance to each candidate.")
            with gr.Accordion("Restrict the search region", open=False):
                region = build_region_picker()
            clues, same_place, exif_clues, exclude_area = build_clues_panel()
            photo = gr.Image(label="Photo as analysed (upright, normalised)", interactive=False, height=300,
                             type="pil", format="jpeg")
        with gr.Column(scale=2, min_width=480):
            banner = gr.HTML()
            selector = gr.Dropdown(label="Photo", choices=[], visible=False, interactive=True,
                                   elem_id="geoapp-result-selector")
            summary = gr.Markdown("Drop photos on the left and press **Locate**.")
            fusion = gr.Markdown(elem_id="geoapp-fusion")
            map_view = gr.HTML(embed_html(placeholder_html("Candidates will appear here", ctx.map_options(not ctx.config.offline_map)),
                                          title="Map of candidates"), elem_id="geoapp-locate-map")
            table = gr.Dataframe(elem_classes=["geoapp-table"], headers=views.CANDIDATE_COLUMNS, label="Candidates", interactive=False, wrap=True,
                                 elem_id="geoapp-candidates",
                                 column_widths=views.candidate_column_widths())
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            rank = gr.Dropdown(label="Explain candidate (Grad-CAM)", choices=[], interactive=True)
            cam_caption = gr.Markdown()
            satellite_controls = build_satellite_controls()
        cam_crop = gr.Image(label="What the model saw (centre crop)", interactive=False, height=300, type="pil")
        cam_overlay = gr.Image(label="Grad-CAM overlay", interactive=False, height=300, type="pil",
                               elem_id="geoapp-gradcam")
        satellite = build_satellite_image()
    cam_others = gr.Gallery(label="Grad-CAM of the model's other inputs", visible=False, height=320, columns=3,
                            elem_id="geoapp-gradcam-branches")
    with gr.Accordion("Evidence from the model", open=True, visible=False) as evidence:
        evidence_view = gr.HTML(elem_id="geoapp-evidence")
    build_video_panel(ctx, model, top_k, online_tiles)
    with gr.Accordion("EXIF and file details", open=True):
        exif = gr.Markdown()
    with gr.Accordion("Raw result (JSON, as returned by the /locate API)", open=False):
        raw = gr.JSON()

    shown = [banner, selector, summary, map_view, table, photo, exif, rank, evidence, evidence_view, fusion]
    cam_outputs = [cam_crop, cam_overlay, cam_caption, cam_others]
    locate_inputs = [photos, top_k, tencrop, model, *region.inputs(), claimed, model_options, clues, same_place,
                     exif_clues, exclude_area, session]
    private = dict(api_visibility="private")
    for option_field in option_fields:
        option_field.change(options_collector(ctx.service), inputs=option_fields, outputs=model_options,
                            show_progress="hidden", **private)
    first = gr.State(0)

    def explain(trigger, index):
        """Clear the Grad-CAM panel at once, then compute the new one (or say calmly there is none)."""
        trigger(handlers.cam_pending, inputs=[session, index, rank], outputs=cam_outputs, queue=False,
                show_progress="hidden", **private) \
            .success(user_errors(handlers.gradcam), inputs=[session, index, rank], outputs=cam_outputs,
                     concurrency_id="model", show_progress_on=[cam_overlay], **private)

    # Busy state: the button is off while a run is queued or working (the first run loads the model); it comes
    # back however the run ends, and a failed run leaves its error beside the form.
    locate_button.click(_busy, outputs=[locate_button, error_box], queue=False, show_progress="hidden", **private)
    # Progress shows once, on the map (the summary above it keeps its text readable).
    run = locate_button.click(user_errors(handlers.locate), inputs=locate_inputs, outputs=[session, raw],
                              api_name="locate", concurrency_id="model", show_progress_on=[map_view])
    run.success(_idle, outputs=locate_button, queue=False, show_progress="hidden", **private)
    run.failure(handlers.failed, inputs=session, outputs=[locate_button, error_box], queue=False,
                show_progress="hidden", **private)
    explain(run.success(user_errors(handlers.show), inputs=[session, first, online_tiles], outputs=shown,
                        show_progress="hidden", **private).success, first)
    explain(selector.input(user_errors(handlers.show), inputs=[session, selector, online_tiles], outputs=shown,
                           **private).success, selector)
    explain(rank.input, selector)
    model.input(model_changed(ctx.service), inputs=model, outputs=[model, *option_fields], show_progress="hidden",
                **private)
    wire_candidate_view(user_errors, session, selector, rank, satellite_controls, satellite, online_tiles, tile_source,
                        shown=table)
    online_tiles.input(_redraw(handlers), inputs=[session, selector, online_tiles], outputs=shown,
                       show_progress="hidden", **private)


def build_clues_panel():
    """The Clues panel: clue lines (CLI syntax), the "same place" tick, the EXIF proposal tick and an
    excluded-area upload."""
    with gr.Accordion("Clues (evidence fusion)", open=False):
        clues = gr.Textbox(label="Clues, one per line (a leading # switches one off)", lines=4, max_lines=20,
                           elem_id="geoapp-clues", placeholder=CLUE_EXAMPLES,
                           info="Same syntax as the command line's --clue. With clues, the map shows each clue as a "
                                "layer, the fused map and its 50/80/90/95 % credible areas with their km².")
        same_place = gr.Checkbox(value=False, label="The photos show the same place: fuse them into one map "
                                                    "(near-duplicate photos count once)", elem_id="geoapp-same-place")
        exif_clues = gr.Checkbox(value=False, elem_id="geoapp-exif-clues",
                                 label="Apply the time-zone clue each photo's EXIF proposes (OffsetTimeOriginal; "
                                       "EXIF can be edited, so only when you trust the file)")
        exclude_area = gr.File(label="Exclude an area (GeoJSON: the place is not in it)", file_types=[".geojson", ".json"],
                               height=90, elem_id="geoapp-exclude-area")
    return clues, same_place, exif_clues, exclude_area


def exclude_clue_lines(upload) -> tuple[str, ...]:
    """The uploaded GeoJSON as an ``exclude:`` clue (checked like any clue: a bad file stops the run, named)."""
    path = upload if isinstance(upload, str) or upload is None else getattr(upload, "path", None) or str(upload)
    if not path:
        return ()
    return parse_clue_lines(f"exclude:{path}")


CLUE_EXAMPLES = ("sun:time=2024-06-21T10:00:00Z,ratio=1.20,ratio_sd=0.05\ntz:offset=+02:00,time=2024-06-21T12:00:00\n"
                 "drive:left\nelevation:min=2000\ncoast:max_km=20\nexclude:FILE.geojson\nregion:country:FR")


def _claimed(located: LocatedImage) -> tuple[float, float] | None:
    claim = next((r for r in located.references if r.colour == CLAIM_COLOUR), None)
    return None if claim is None else (claim.lat, claim.lon)


CAM_DISPLAY_SIDE = 448  # small-input models (SatWorld: 64 px) are drawn at least this big


def shown_size(image):
    """Upscale a small analysed crop or overlay for the panel (nearest: the model's pixels stay visible)."""
    if image is None or max(image.size) >= CAM_DISPLAY_SIDE:
        return image
    from PIL import Image

    factor = CAM_DISPLAY_SIDE / max(image.size)
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.NEAREST)


def _busy():
    return gr.update(interactive=False, value="Locating …"), gr.update(value="", visible=False)


def _idle():
    return gr.update(interactive=True, value="Locate")


def _redraw(handlers: LocateHandlers):
    """Redraw the current result after the tile setting changed (nothing to redraw before a result)."""

    def redraw(session: LocateSession | None, index, online_tiles: bool):
        if session is None or not session.results:
            return tuple(gr.update() for _ in range(SHOWN_OUTPUTS))
        return user_errors(handlers.show)(session, index, online_tiles)

    return redraw
