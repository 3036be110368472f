"""Text → Map tab (GeoCLIP paper §4.4): where on Earth does a description fit?

One or two queries over the same candidate points; shown side by side, or as the difference
A − B on a diverging red/blue scale. ``/text_map`` is the public API of the first event.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from geoapp.ui.maps.render import difference_map_html, embed_html, placeholder_html, prediction_map_html
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING, Prediction
from geoapp.ui import views
from geoapp.ui.common import UiContext, progress_callback, restore_after, user_errors
from geoapp.ui.forms import COMPARE_MODES, COMPARE_SIDE_BY_SIDE, MAX_TOP_K, REGION_WORLD, FormError, TextMapForm
from geoapp.ui.locate_tab import SESSION_TTL_S
from geoapp.ui.region_picker import build_region_picker, region_form
from geoapp.ui.service import TextMapResult

EXAMPLES = [
    ["a sandy beach with palm trees", "a snowy mountain village", COMPARE_SIDE_BY_SIDE],
    ["a busy street market with tuk-tuks", "", COMPARE_SIDE_BY_SIDE],
]


def _query_record(prediction: Prediction) -> dict:
    return {"query": prediction.source, "places": [c.to_dict() for c in prediction.candidates],
            "mass_within_km": {str(k): v for k, v in prediction.mass_within_km.items()},
            "timings_ms": {k: round(v, 2) for k, v in prediction.timings_ms.items()}}


def api_payload(result: TextMapResult) -> dict:
    """What ``/text_map`` returns: the top places per query (surfaces stay on the server)."""
    predictions = [p for p in (result.first, result.second) if p is not None]
    random = any(p.random_weights for p in predictions)
    region = result.first.region
    return {
        "random_weights": random,
        "warning": RANDOM_WEIGHTS_WARNING if random else None,
        "compare": result.compare,
        "region": None if region is None else {"key": region.key, "label": region.label},
        "candidate_points": result.first.parameters.get("candidate_points"),
        "queries": [_query_record(p) for p in predictions],
    }


class TextMapHandlers:
    def __init__(self, ctx: UiContext) -> None:
        self.ctx = ctx

    def text_map(self, query_a, query_b=None, compare=COMPARE_SIDE_BY_SIDE, top_k=10, region_mode=REGION_WORLD,
                 country=None, continent=None, circle_lat=None, circle_lon=None, circle_radius_km=50.0,
                 region_geojson=None, model="auto", progress=gr.Progress()):
        """Map one or two text descriptions. Returns the session state (UI only) and the top places as JSON."""
        region = region_form(region_mode, country, continent, circle_lat, circle_lon, circle_radius_km, region_geojson)
        form = TextMapForm.from_values(query_a, query_b, compare, top_k, region, model)
        result = self.ctx.service.text_map(form, progress_callback(progress))
        return result, api_payload(result)

    def show(self, result: TextMapResult | None, online_tiles: bool):
        """Maps and tables: A (and B side by side), or the difference map."""
        if result is None:
            raise FormError("Run a query first.")
        options = self.ctx.map_options(online_tiles)
        predictions = [p for p in (result.first, result.second) if p is not None]
        banner = views.banner_html(predictions, random_weights=self.ctx.random_weights)

        def one(prediction: Prediction, label: str) -> str:
            page = prediction_map_html(prediction, options, title=f"{label}: {prediction.source}")
            return embed_html(page, options.height_px, title=f"Map for query {label}")

        def places(prediction: Prediction | None) -> pd.DataFrame:
            rows = views.place_rows(prediction) if prediction is not None else []
            return pd.DataFrame(rows, columns=views.PLACE_COLUMNS)

        map_a = one(result.first, "A")
        second = result.second
        map_b = gr.update(value=one(second, "B") if second is not None else "",
                          visible=second is not None and not result.difference)
        table_b = gr.update(value=places(second), visible=second is not None)
        if result.difference:
            page = difference_map_html(result.first, second, options, labels=("A", "B"))
            difference = gr.update(value=embed_html(page, options.height_px, title="Difference map A minus B"),
                                   visible=True)
            map_a = gr.update(value=map_a, visible=False)
        else:
            difference = gr.update(value="", visible=False)
            map_a = gr.update(value=map_a, visible=True)
        # B's column takes half the width only when there is a query B (its map, or its table under a difference map).
        column_b = gr.update(visible=second is not None)
        return banner, map_a, places(result.first), map_b, table_b, difference, column_b


def build_text_map_tab(ctx: UiContext, online_tiles: gr.Checkbox) -> None:
    """Lay out the Text → Map tab and wire its events."""
    handlers = TextMapHandlers(ctx)
    state = gr.State(None, time_to_live=SESSION_TTL_S)
    gr.Markdown("Describe a scene; the model scores every location in its gallery against the description "
                "(GeoCLIP §4.4). Useful to check whether a claimed place *looks like* what a text says.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            query_a = gr.Textbox(label="Query A", placeholder="a sandy beach with palm trees", max_lines=2)
            query_b = gr.Textbox(label="Query B (optional, to compare)", placeholder="a snowy mountain village",
                                 max_lines=2)
            compare = gr.Radio(list(COMPARE_MODES), value=COMPARE_SIDE_BY_SIDE, label="Compare A and B")
            top_k = gr.Slider(1, MAX_TOP_K, value=10, step=1, label="Number of places listed")
            text_model = ctx.service.default_model(text_only=True)
            unavailable = ctx.service.text_unavailable_reason()
            # Only families that can read text are offered; without one the action is disabled, with the reason.
            model = ctx.pickers.add(gr.Dropdown(ctx.service.model_choices(text_only=True), value=text_model or "auto",
                                                label="Model (text-capable)", interactive=text_model is not None,
                                                elem_id="geoapp-text-model", allow_custom_value=True), text_only=True)
            with gr.Accordion("Restrict the search region", open=False):
                region = build_region_picker()
            run_button = gr.Button("Map it", variant="primary", interactive=unavailable is None,
                                   elem_id="geoapp-text-run")
            if unavailable is not None:
                gr.Markdown(f"Text → Map is unavailable here: {views.escape(unavailable)}", elem_id="geoapp-text-why")
            gr.Examples(EXAMPLES, inputs=[query_a, query_b, compare], label="Examples")
        with gr.Column(scale=3, min_width=480):
            banner = gr.HTML()
            with gr.Row(equal_height=False):
                with gr.Column():
                    map_a = gr.HTML(embed_html(placeholder_html("Query A", ctx.map_options(not ctx.config.offline_map)),
                                               title="Map for query A"))
                    places_a = gr.Dataframe(elem_classes=["geoapp-table"], headers=views.PLACE_COLUMNS, label="Top places for A", interactive=False,
                                            wrap=True, column_widths=views.PLACE_COLUMN_WIDTHS)
                with gr.Column(visible=False) as column_b:
                    map_b = gr.HTML(visible=False)
                    places_b = gr.Dataframe(elem_classes=["geoapp-table"], headers=views.PLACE_COLUMNS, label="Top places for B", interactive=False,
                                            wrap=True, visible=False, column_widths=views.PLACE_COLUMN_WIDTHS)
            difference = gr.HTML(visible=False)
    with gr.Accordion("Raw result (JSON, as returned by the /text_map API)", open=False):
        raw = gr.JSON()

    outputs = [banner, map_a, places_a, map_b, places_b, difference, column_b]
    inputs = [query_a, query_b, compare, top_k, *region.inputs(), model]
    # Progress shows on the map (the outputs themselves are hidden); the button is off while a query runs.
    run_button.click(lambda: gr.update(interactive=False), outputs=run_button, api_visibility="private", queue=False,
                     show_progress="hidden")
    run = run_button.click(user_errors(handlers.text_map), inputs=inputs, outputs=[state, raw], api_name="text_map",
                           concurrency_id="model", show_progress_on=[map_a])
    restore_after(run, lambda: gr.update(interactive=unavailable is None), outputs=run_button)
    query_a.submit(user_errors(handlers.text_map), inputs=inputs, outputs=[state, raw], api_visibility="private",
                   concurrency_id="model", show_progress_on=[map_a]).success(user_errors(handlers.show), inputs=[state, online_tiles],
                                                   outputs=outputs, api_visibility="private")
    run.success(user_errors(handlers.show), inputs=[state, online_tiles], outputs=outputs, api_visibility="private")

    def redraw(result: TextMapResult | None, tiles: bool):
        if result is None:
            return tuple(gr.update() for _ in outputs)
        return user_errors(handlers.show)(result, tiles)

    online_tiles.input(redraw, inputs=[state, online_tiles], outputs=outputs, api_visibility="private",
                       show_progress="hidden")
