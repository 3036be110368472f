"""Locate tab: drop photos, get the map of candidates, the table, EXIF and Grad-CAM.

Events (the first is the public API ``/locate``; the rest only redraw from the session state):

    Locate button --locate--> LocateSession + JSON  --show--> map, table, EXIF, photo, segmentation  --gradcam--> overlays
    photo selector / candidate selector / tile setting --> show / gradcam again (no new prediction)

TransLocator and ensemble results also fill the "Segmentation and scene" panel: the colourised ADE20K
map the segmentation branch saw, its legend with class shares, the predicted scene and the branch
weights, and (TransLocator) the segmentation branch's Grad-CAM next to the photo's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr
import pandas as pd

from geoapp.maps import embed_html, placeholder_html, prediction_map_html
from geoapp.prediction import RANDOM_WEIGHTS_WARNING
from geoapp.ui import views
from geoapp.ui.common import UiContext, progress_callback, user_errors
from geoapp.ui.forms import MAX_TOP_K, REGION_WORLD, FormError, LocateForm
from geoapp.ui.region_picker import build_region_picker, region_form
from geoapp.ui.satellite import (
    build_satellite_controls,
    build_satellite_image,
    wire_candidate_view,
)
from geoapp.ui.service import MODEL_FAMILIES, SEGMENTATION_MODELS, LocatedImage

PHOTO_TYPES = ["image", ".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp", ".gif", ".avif"]
SHOWN_OUTPUTS = 11  # what LocateHandlers.show returns
SESSION_TTL_S = 4 * 3600  # results (with probability surfaces) are dropped after 4 h without use


@dataclass
class LocateSession:
    """One analyst's latest batch of results (server-side only: a gr.State)."""

    results: list[LocatedImage] = field(default_factory=list)

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
        records.append(record)
    random = any(r.prediction.random_weights for r in results)
    return {"random_weights": random, "warning": RANDOM_WEIGHTS_WARNING if random else None, "results": records}


class LocateHandlers:
    """Event handlers of the tab; each takes widget values and returns widget values."""

    def __init__(self, ctx: UiContext) -> None:
        self.ctx = ctx

    def locate(self, photos, top_k=5, tencrop=False, model="geoclip", region_mode=REGION_WORLD, country=None,
               continent=None, circle_lat=None, circle_lon=None, circle_radius_km=50.0, region_geojson=None,
               claimed_location=None, progress=gr.Progress()):
        """Locate photos. Returns the session state (UI only) and a JSON record per photo."""
        region = region_form(region_mode, country, continent, circle_lat, circle_lon, circle_radius_km, region_geojson)
        form = LocateForm.from_values(photos, top_k, tencrop, model, region, claimed_location)
        results = self.ctx.service.locate(form, progress_callback(progress))
        failed = [r.prediction for r in results if not r.prediction.ok]
        if len(failed) == len(results):
            raise FormError(" ".join(p.error or "" for p in failed))
        if failed:
            gr.Warning(f"{len(failed)} of {len(results)} files could not be analysed; see the message above the map.")
        return LocateSession(results), api_payload(results)

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
                                       title=located.name)
        else:
            page = placeholder_html(f"{located.name}: could not be analysed", options)
        table = gr.Dataframe(pd.DataFrame(views.candidate_rows(prediction, located.references),
                                          columns=views.candidate_columns(located.references)),
                             column_widths=views.candidate_column_widths(located.references))
        ranks = [(f"#{c.rank} — {c.place_label or f'{c.lat:.3f}, {c.lon:.3f}'} ({views.percent(c.probability)})", c.rank)
                 for c in prediction.candidates]
        rank = gr.update(choices=ranks, value=1 if ranks else None)
        segmentation = getattr(prediction, "segmentation", None)
        evidence = gr.update(visible=located.model in SEGMENTATION_MODELS)
        return (banner, selector, views.confidence_markdown(prediction, located.references),
                embed_html(page, options.height_px, title=f"Map of candidates for {located.name}"), table,
                located.display, views.exif_markdown(prediction.image), rank, evidence,
                None if segmentation is None else segmentation.image(), views.scene_evidence_html(prediction))

    def gradcam(self, session: LocateSession | None, index, rank, progress=gr.Progress()):
        """Grad-CAM of the selected photo towards the selected candidate (default #1)."""
        if session is None or not session.results:
            return None, None, "", None
        located = session.get(index)
        if not located.prediction.ok or not located.prediction.candidates:
            return None, None, "_No candidate to explain._", None
        chosen = int(rank or 1)
        progress(0.1, desc=f"Grad-CAM for candidate #{chosen} …")
        result, segmentation_cam = self.ctx.service.explain(located, chosen)
        candidate = located.prediction.candidates[chosen - 1]
        caption = (f"**Grad-CAM for candidate #{chosen}** ({views.escape(candidate.place_label or '')}): warm colours "
                   "mark the parts of the photo that raised its match with this location "
                   f"({views.escape(result.target)}). It shows what drove the guess, not whether the guess is right.")
        if result.random_weights:
            caption = ('<div class="geoapp-random"><b>RANDOM WEIGHTS — this heatmap is meaningless.</b></div>\n\n'
                       + caption)
        return result.crop, result.overlay, caption, None if segmentation_cam is None else segmentation_cam.overlay


def build_locate_tab(ctx: UiContext, online_tiles: gr.Checkbox, tile_source: gr.Dropdown | None = None) -> None:
    """Lay out the Locate tab (inside a ``gr.Tab``) and wire its events."""
    handlers = LocateHandlers(ctx)
    session = gr.State(LocateSession(), time_to_live=SESSION_TTL_S)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            photos = gr.File(label="Photos — drop one or several (JPEG, PNG, WebP, HEIC, TIFF …)",
                             file_count="multiple", file_types=PHOTO_TYPES, height=150, elem_id="geoapp-photos")
            locate_button = gr.Button("Locate", variant="primary", size="lg")
            with gr.Accordion("Options", open=True):
                default_model = ctx.service.default_model()
                model = gr.Dropdown([(f.label, f.key) for f in MODEL_FAMILIES.values()], value=default_model,
                                    label="Model", info=MODEL_FAMILIES[default_model].description,
                                    elem_id="geoapp-model")
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Number of candidate places")
                tencrop = gr.Checkbox(value=False, label="TenCrop: average 10 crops (about 10× slower, often steadier)")
                claimed = gr.Textbox(label="Claimed location to check (optional)", placeholder="latitude, longitude",
                                     info="Shown on the map with its distance to each candidate.")
            with gr.Accordion("Restrict the search region", open=False):
                region = build_region_picker()
            photo = gr.Image(label="Photo as analysed (upright, normalised)", interactive=False, height=300,
                             type="pil", format="jpeg")
        with gr.Column(scale=2, min_width=480):
            banner = gr.HTML()
            selector = gr.Dropdown(label="Photo", choices=[], visible=False, interactive=True,
                                   elem_id="geoapp-result-selector")
            summary = gr.Markdown("Drop photos on the left and press **Locate**.")
            map_view = gr.HTML(embed_html(placeholder_html("Candidates will appear here", ctx.map_options(not ctx.config.offline_map)),
                                          title="Map of candidates"), elem_id="geoapp-locate-map")
            table = gr.Dataframe(headers=views.CANDIDATE_COLUMNS, label="Candidates", interactive=False, wrap=True,
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
    with gr.Accordion("Segmentation and scene (TransLocator, ensemble)", open=True, visible=False) as evidence:
        with gr.Row(equal_height=False):
            segmentation_map = gr.Image(label="ADE20K segmentation the model saw (colourised)", interactive=False,
                                        height=300, type="pil", elem_id="geoapp-segmentation")
            segmentation_cam = gr.Image(label="Grad-CAM on the segmentation branch (TransLocator)", interactive=False,
                                        height=300, type="pil")
            scene = gr.HTML(elem_id="geoapp-scene")
    with gr.Accordion("EXIF and file details", open=True):
        exif = gr.Markdown()
    with gr.Accordion("Raw result (JSON, as returned by the /locate API)", open=False):
        raw = gr.JSON()

    shown = [banner, selector, summary, map_view, table, photo, exif, rank, evidence, segmentation_map, scene]
    cam_outputs = [cam_crop, cam_overlay, cam_caption, segmentation_cam]
    locate_inputs = [photos, top_k, tencrop, model, *region.inputs(), claimed]
    first = gr.State(0)
    run = locate_button.click(user_errors(handlers.locate), inputs=locate_inputs, outputs=[session, raw],
                              api_name="locate", concurrency_id="model")
    run.success(user_errors(handlers.show), inputs=[session, first, online_tiles], outputs=shown,
                api_visibility="private", show_progress="hidden") \
       .success(user_errors(handlers.gradcam), inputs=[session, first, rank], outputs=cam_outputs,
                api_visibility="private", concurrency_id="model", show_progress_on=[cam_overlay])
    selector.input(user_errors(handlers.show), inputs=[session, selector, online_tiles], outputs=shown,
                   api_visibility="private") \
            .success(user_errors(handlers.gradcam), inputs=[session, selector, rank], outputs=cam_outputs,
                     api_visibility="private", concurrency_id="model", show_progress_on=[cam_overlay])
    rank.input(user_errors(handlers.gradcam), inputs=[session, selector, rank], outputs=cam_outputs,
               api_visibility="private", concurrency_id="model", show_progress_on=[cam_overlay])
    model.input(_model_info, inputs=model, outputs=model, api_visibility="private", show_progress="hidden")
    wire_candidate_view(user_errors, session, selector, rank, satellite_controls, satellite, online_tiles, tile_source,
                        shown=table)
    online_tiles.input(_redraw(handlers), inputs=[session, selector, online_tiles], outputs=shown,
                       api_visibility="private", show_progress="hidden")


def _model_info(model: str):
    """Describe the chosen model under the dropdown."""
    family = MODEL_FAMILIES.get(model)
    return gr.update(info=family.description if family else "")


def _redraw(handlers: LocateHandlers):
    """Redraw the current result after the tile setting changed (nothing to redraw before a result)."""

    def redraw(session: LocateSession | None, index, online_tiles: bool):
        if session is None or not session.results:
            return tuple(gr.update() for _ in range(SHOWN_OUTPUTS))
        return user_errors(handlers.show)(session, index, online_tiles)

    return redraw
