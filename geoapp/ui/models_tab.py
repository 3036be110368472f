"""Models tab: which weights are on this machine, what runs where, and how to fetch what is missing."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from geoapp.models.weights import DOWNLOAD_COMMAND
from geoapp.ui.common import UiContext, progress_callback, user_errors
from geoapp.ui.service import MODEL_FAMILIES, ModelStatus

WEIGHT_COLUMNS = ["Weights", "File", "Present", "Size (MB)", "Where / how to get it"]


def weights_table(status: ModelStatus) -> pd.DataFrame:
    rows = []
    for row in status.weights:
        where = str(row.path) if row.present else row.weight.fix_hint()
        size = f"{row.size_bytes / 1e6:,.1f}" if row.size_bytes else "—"
        rows.append([row.weight.description, row.weight.filename, "yes" if row.present else "MISSING", size, where])
    return pd.DataFrame(rows, columns=WEIGHT_COLUMNS)


def status_markdown(ctx: UiContext, status: ModelStatus) -> str:
    settings = status.settings
    lines = ["### Models in this app", ""]
    lines += [f"- **{f.label}** (`{f.key}`): {html.escape(f.description)}" for f in MODEL_FAMILIES.values()]
    lines += ["", "### This run", ""]
    weights_mode = {"random": "**RANDOM (untrained) — test mode, every result is flagged and meaningless**",
                    None: "real pretrained weights"}.get(settings.backbone_weights, f"checkpoint `{settings.backbone_weights}`")
    lines.append(f"- Backbone: `{settings.backbone}`, weights: {weights_mode}")
    lines.append(f"- Requested device: `{settings.device or 'auto (CUDA when available, else CPU)'}`")
    if status.loaded:
        for key, identity in status.loaded.items():
            lines.append(f"- Loaded `{key}` on **{identity.get('device')}**; gallery **{identity.get('gallery')}** "
                         f"({identity.get('gallery_points'):,} locations)")
    else:
        lines.append("- Not loaded yet: the model loads on first use (or press *Load model now*).")
    tiles = ("offline: country outlines only (online tiles can be switched on in Map settings)" if ctx.config.offline_map
             else "online (OpenStreetMap, Esri imagery) over the offline country outlines")
    lines.append(f"- Map tiles: {tiles}")
    lines += ["", "### Missing weights", ""]
    if status.problem:
        lines.append(f"Real results need the CLIP ViT-L/14 weights (1.7 GB, once, needs internet):\n\n"
                     f"```bash\n{DOWNLOAD_COMMAND}\n```\n\nthen restart the app. Details: {html.escape(status.problem)}")
    else:
        lines.append("None: everything this run needs is present." if not settings.random_weights else
                     f"Not needed for this random-weights run. Real weights: `{DOWNLOAD_COMMAND}`.")
    return "\n".join(lines)


def build_models_tab(ctx: UiContext) -> None:
    status = ctx.service.status()
    summary = gr.Markdown(status_markdown(ctx, status))
    table = gr.Dataframe(weights_table(status), label="Weight files (checked on this machine, no network)",
                         interactive=False, wrap=True, column_widths=["30%", "18%", "8%", "8%", "36%"])
    with gr.Row():
        refresh = gr.Button("Refresh")
        load = gr.Button("Load model now", variant="secondary")

    def refresh_status():
        current = ctx.service.status()
        return status_markdown(ctx, current), weights_table(current)

    @user_errors
    def load_now(progress=gr.Progress()):
        problem = ctx.service.weights_problem()
        if problem is not None:
            raise gr.Error(html.escape(problem), duration=None, title="Weights missing")
        ctx.service.locator("geoclip", progress_callback(progress))
        return refresh_status()

    refresh.click(refresh_status, outputs=[summary, table], api_visibility="private")
    load.click(load_now, outputs=[summary, table], api_visibility="private", concurrency_id="model")
