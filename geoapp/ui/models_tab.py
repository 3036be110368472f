"""Models tab: every registered family (and trained variant), what it is for, whether its weights are
here, what is loaded where, and a button that loads the chosen family. Reads the registry only."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from geoapp.families import availability, registry
from geoapp.ui import builds
from geoapp.ui.common import USER_ERRORS, UiContext, progress_callback, toast_text, user_errors
from geoapp.ui.config import is_loopback
from geoapp.ui.service import ModelStatus

WEIGHT_COLUMNS = ["Weights", "File", "Used by", "Present", "Size (MB)", "Where / how to get it"]


def weights_table(status: ModelStatus) -> pd.DataFrame:
    rows = []
    for row in status.weights:
        where = str(row.path) if row.present else row.weight.fix_hint()
        size = f"{row.size_bytes / 1e6:,.1f}" if row.size_bytes else "—"
        users = ", ".join(spec.key for spec in status.families if row.weight in spec.all_files())
        present = "yes" if row.present else ("not installed (optional)" if row.weight.optional else
                                             availability.per_variant_file(row.weight) or "MISSING")
        rows.append([row.weight.description, row.weight.filename, users, present, size, where])
    return pd.DataFrame(rows, columns=WEIGHT_COLUMNS)


def _weights_mode(settings) -> str:
    if settings.random_weights:
        return "**RANDOM (untrained) — test mode, every result is flagged and meaningless**"
    if settings.backbone_weights:
        return f"backbone checkpoint `{html.escape(str(settings.backbone_weights))}`"
    return "each family's pretrained or shipped weights, where present (see below)"


def family_markdown(status: ModelStatus) -> str:
    """One section per family: what it is, its input, capabilities, state, and what is missing."""
    lines = ["### Models in this app", ""]
    for spec in status.families:
        problem = status.problems.get(spec.key)
        loaded = status.loaded.get(spec.key)
        if loaded is not None:
            state = f"loaded — {html.escape(loaded.summary())}"
        elif spec.variants_only and spec.variant is None:  # its models are its variants: never "missing"
            state, problem = html.escape(availability.family_state(spec)) + " (build one below)", None
        elif problem is None:
            state = "ready (loads on first use, or press *Load the chosen model now*)"
        else:
            state = "**cannot give real results here**"
        auto = " — *used by `auto`*" if spec.key == status.active else ""
        lines += [f"#### {html.escape(spec.label)} (`{html.escape(spec.key)}`){auto}", "",
                  html.escape(spec.description), "",
                  f"- Made for: **{html.escape(spec.input_domain)}**; can: {', '.join(spec.capabilities.names())}"
                  + (f"; combines: {', '.join(spec.members)}" if spec.members else ""),
                  f"- State: {state}"]
        heldout = builds.heldout_summary(dict(spec.variant.manifest)) if spec.variant is not None else None
        if heldout:
            lines.append(f"- {html.escape(heldout)}")
        if spec.caveat:
            lines.append(f"- Caveat shown with every result: {html.escape(spec.caveat)}")
        if problem is not None:
            lines.append(f"- To fix: {html.escape(problem)}")
        lines.append("")
    return "\n".join(lines)


def status_markdown(ctx: UiContext, status: ModelStatus) -> str:
    settings = status.settings
    lines = [family_markdown(status), "### This run", ""]
    lines.append(f"- Weights: {_weights_mode(settings)}")
    lines.append(f"- Requested device: `{settings.device or 'auto (CUDA when available, else CPU)'}`")
    lines.append(f"- `auto` uses: **{html.escape(status.active)}**")
    tiles = ("offline: the app's own NASA imagery pyramid and country outlines, nothing from tile servers"
             if ctx.config.offline_map else
             "online (OpenStreetMap, Esri imagery) over the app's own NASA imagery pyramid and country outlines")
    lines.append(f"- Map tiles: {tiles}")
    if status.problem and not settings.random_weights:
        lines += ["", f"**The best model cannot run here yet.** {html.escape(status.problem)}"]
    return "\n".join(lines)


def build_models_tab(ctx: UiContext) -> None:
    status = ctx.service.status()
    summary = gr.Markdown(status_markdown(ctx, status), elem_id="geoapp-models-summary")
    with gr.Row():
        choice = ctx.pickers.dropdown(ctx.service, label="Model to load", elem_id="geoapp-models-choice",
                                      value=status.active, info=None)
        load = gr.Button("Load the chosen model now", variant="secondary", elem_id="geoapp-models-load")
        refresh = gr.Button("Refresh")
    table = gr.Dataframe(weights_table(status), label="Weight files of every model (checked on this machine, no network)",
                         interactive=False, wrap=True, column_widths=["24%", "14%", "14%", "8%", "7%", "33%"])

    def refresh_status():
        current = ctx.service.status()
        return status_markdown(ctx, current), weights_table(current)

    @user_errors
    def load_now(model: str, progress=gr.Progress()):
        problem = ctx.service.weights_problem(model)
        if problem is not None:
            raise gr.Error(html.escape(problem), duration=None, title="Weights missing")
        ctx.service.locator(model, progress_callback(progress))
        return refresh_status()

    refresh.click(refresh_status, outputs=[summary, table], api_visibility="private")
    load.click(load_now, inputs=choice, outputs=[summary, table], api_visibility="private", concurrency_id="model")
    build_variant_section(ctx, [summary, table], refresh_status)


def build_variant_section(ctx: UiContext, status_outputs: list, refresh_status) -> None:
    """Build a model of a buildable family (regional models ...) from the analyst's own geotagged photos."""
    buildable = registry.buildable_families()
    if not buildable:
        return
    allow_folders = is_loopback(ctx.config.host)
    first = buildable[0]
    with gr.Accordion("Build a model from your own geotagged photos", open=False, elem_id="geoapp-build"):
        gr.Markdown("Train a model for your area on photos you have the right to use (EXIF GPS, or a CSV "
                    "`path,lat,lon` inside the zip). It runs here, in the background, and shows its held-out "
                    "accuracy when done. " + html.escape(first.builder.help)
                    + ("" if allow_folders else " (Server folders are off because the app is reachable from other "
                       "machines: upload a .zip.)"))
        with gr.Row():
            family = gr.Dropdown([(s.label, s.key) for s in buildable], value=first.key, label="Kind of model")
            method = gr.Dropdown(list(first.builder.methods), value=first.builder.default_method, label="Method")
            backbone = gr.Dropdown(list(first.builder.backbones), value=first.builder.default_backbone or None,
                                   label="Image features (backbone)", visible=bool(first.builder.backbones),
                                   elem_id="geoapp-build-backbone")
            name = gr.Textbox(label="Name (the model becomes family:name)", placeholder="my-area", max_lines=1,
                              elem_id="geoapp-build-name")
            countries = gr.Textbox(label="Countries", placeholder="SE,CH", max_lines=1, elem_id="geoapp-build-countries")
        with gr.Row():
            upload = gr.File(label="Photos as a .zip", file_types=[".zip"], file_count="single", height=110,
                             elem_id="geoapp-build-zip")
            folder = gr.Textbox(label="…or a folder on this machine", visible=allow_folders, max_lines=1,
                                elem_id="geoapp-build-folder")
        start = gr.Button("Build the model", variant="primary", elem_id="geoapp-build-start")
        log = gr.Textbox(label="Build log", lines=8, max_lines=16, interactive=False, elem_id="geoapp-build-log")
        result = gr.Markdown(elem_id="geoapp-build-result")

    def methods_of(key: str):
        spec = registry.get(key)
        return (gr.update(choices=list(spec.builder.methods), value=spec.builder.default_method),
                gr.update(choices=list(spec.builder.backbones), value=spec.builder.default_backbone or None,
                          visible=bool(spec.builder.backbones)))

    def run(key, chosen_method, chosen_backbone, variant_name, country_text, zip_file, server_folder):
        # A generator (streamed log), so errors are turned into messages here rather than by user_errors.
        try:
            yield from _run(key, chosen_method, chosen_backbone, variant_name, country_text, zip_file, server_folder)
        except USER_ERRORS as error:
            raise gr.Error(toast_text(error), duration=None, title="Cannot build the model",
                           print_exception=False) from error

    def _run(key, chosen_method, chosen_backbone, variant_name, country_text, zip_file, server_folder):
        zip_path = getattr(zip_file, "name", zip_file) or None
        request = builds.BuildRequest(family=str(key), countries=str(country_text or "").strip(),
                                      method=str(chosen_method or ""), name=str(variant_name or "").strip(),
                                      zip_path=zip_path, folder=(server_folder or "").strip() or None,
                                      backbone=str(chosen_backbone or ""))
        lines: list[str] = []
        yield "Starting …", "", *[gr.update() for _ in status_outputs]
        for line in builds.run_build(request, allow_folders):
            if lines and line.split(":")[0] == lines[-1].split(":")[0] and "%" in line:
                lines[-1] = line  # a progress bar updating in place
            else:
                lines.append(line)
            yield "\n".join(lines[-60:]), "", *[gr.update() for _ in status_outputs]
        markdown = builds.metrics_markdown(builds.built_manifest(request.name))
        yield "\n".join(lines[-60:]), markdown, *refresh_status()

    family.input(methods_of, inputs=family, outputs=[method, backbone], api_visibility="private",
                 show_progress="hidden")
    built = start.click(run, inputs=[family, method, backbone, name, countries, upload, folder],
                        outputs=[log, result, *status_outputs], api_visibility="private", concurrency_id="build",
                        concurrency_limit=1)
    ctx.pickers.refresh_after(built, ctx.service)  # the new model is a choice in every tab at once
