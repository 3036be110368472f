"""Models tab: every registered family (and trained variant), what it is for, whether its weights are
here, what is loaded where, and a button that loads the chosen family. Reads the registry only."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from geoapp.ui.common import UiContext, progress_callback, user_errors
from geoapp.ui.service import ModelStatus

WEIGHT_COLUMNS = ["Weights", "File", "Used by", "Present", "Size (MB)", "Where / how to get it"]


def weights_table(status: ModelStatus) -> pd.DataFrame:
    rows = []
    for row in status.weights:
        where = str(row.path) if row.present else row.weight.fix_hint()
        size = f"{row.size_bytes / 1e6:,.1f}" if row.size_bytes else "—"
        users = ", ".join(spec.key for spec in status.families if row.weight in spec.all_files())
        present = "yes" if row.present else ("not installed (optional)" if row.weight.optional else "MISSING")
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
    tiles = ("offline: country outlines only (online tiles can be switched on in Map settings)" if ctx.config.offline_map
             else "online (OpenStreetMap, Esri imagery) over the offline country outlines")
    lines.append(f"- Map tiles: {tiles}")
    if status.problem and not settings.random_weights:
        lines += ["", f"**The best model cannot run here yet.** {html.escape(status.problem)}"]
    return "\n".join(lines)


def build_models_tab(ctx: UiContext) -> None:
    status = ctx.service.status()
    summary = gr.Markdown(status_markdown(ctx, status), elem_id="geoapp-models-summary")
    with gr.Row():
        choice = gr.Dropdown(ctx.service.model_choices(), value=status.active, label="Model to load",
                             elem_id="geoapp-models-choice")
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
