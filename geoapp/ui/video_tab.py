"""The video panel of the Locate tab: drop a clip -> a strip of its keyframes (time, top place, outliers
marked with the reason) and the fused map with its credible areas; frames can be put back and fused again.

The work is done by the Gradio-free :mod:`geoapp.ui.video_service`; this module only draws and wires.
"""

from __future__ import annotations

from html import escape

import gradio as gr

from geoapp.families.base import png_data_uri
from geoapp.results.prediction import percent
from geoapp.ui.common import UiContext, progress_callback, user_errors
from geoapp.ui.forms import FormError
from geoapp.ui.maps.render import embed_html, placeholder_html, prediction_map_html
from geoapp.ui.video_service import LocatedVideo, locate_video

VIDEO_TYPES = [".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".3gp", ".ts"]


def strip_html(video: LocatedVideo) -> str:
    """The keyframes in time order: thumbnail, time, top place; outliers outlined with their reason."""
    cells = []
    for frame in video.frames:
        classes = "geoapp-frame" + (" geoapp-outlier" if frame.outlier and not frame.kept else "") + \
                  (" geoapp-kept" if frame.kept else "")
        image = f'<img alt="frame at {frame.time_s:.2f} s" src="{png_data_uri(frame.thumbnail, 192)}">' \
            if frame.thumbnail is not None else ""
        note = f'<div class="geoapp-frame-reason">{"Put back" if frame.kept else "Left out"}: {escape(frame.reason)}</div>' \
            if frame.outlier else ""
        top = frame.prediction.top
        share = f" ({percent(top.probability)})" if top is not None else ""
        cells.append(f'<figure class="{classes}" data-time="{frame.time_s:.2f}" style="margin:0;width:200px;'
                     f'flex:0 0 auto;{"outline:3px solid #b3261e;" if "geoapp-outlier" in classes else ""}">'
                     f'{image}<figcaption><b>t = {frame.time_s:.2f} s</b> (shot {frame.shot + 1})<br>'
                     f'<span class="geoapp-frame-top">{escape(frame.top_label)}{share}</span></figcaption>{note}</figure>')
    return ('<div id="geoapp-frame-strip" style="display:flex;gap:8px;overflow-x:auto;padding:4px">'
            + "".join(cells) + "</div>")


def summary_markdown(video: LocatedVideo) -> str:
    if video.error or video.fused is None or not video.fused.ok:
        return f"**{escape(video.name)}**: {escape(video.error or (video.fused.error if video.fused else 'no frame'))}"
    fusion = video.fused.image["fusion"]
    lines = [f"**{escape(video.name)}**: {len(video.frames)} keyframes, {len(fusion['used'])} fused into one map; "
             f"most probable place: **{escape(video.fused.top.place_label or '')}** "
             f"({video.fused.top.lat:.3f}, {video.fused.top.lon:.3f})."]
    lines += [f"- Area {escape(a['summary'])}" for a in fusion["areas"]]
    lines += [f"- Left out: {escape(o['source'])}: {escape(o['reason'])}" for o in fusion["outliers"]]
    lines += [f"- Note: {escape(n)}" for n in fusion["notes"]]
    if video.fused.random_weights:
        lines.insert(0, "**RANDOM WEIGHTS — these maps are meaningless (test model).**")
    return "\n".join(lines)


class VideoHandlers:
    def __init__(self, ctx: UiContext) -> None:
        self.ctx = ctx

    def locate(self, upload, model, top_k, progress=gr.Progress()):
        if not upload:
            raise FormError("Drop a video first (MP4, MOV, MKV, WebM, AVI).")
        path = upload if isinstance(upload, str) else getattr(upload, "name", str(upload))
        from pathlib import Path

        video = locate_video(self.ctx.service, path, model=model or "auto", top_k=int(top_k or 5),
                             name=Path(path).name, progress=progress_callback(progress))
        if video.error:
            raise FormError(video.error)
        return video

    def refuse(self, video: LocatedVideo | None, keep_text: str):
        if video is None or not video.frames:
            raise FormError("Locate a video first.")
        text = (keep_text or "").strip()
        try:
            keep = "all" if text.lower() == "all" else tuple(float(t) for t in text.replace(";", ",").split(",") if t.strip())
        except ValueError:
            raise FormError(f"Write the times of the frames to put back in seconds, e.g. 3.00, 12.48 (or all); got {text!r}") from None
        return video.refused(keep)

    def show(self, video: LocatedVideo | None, online_tiles: bool):
        options = self.ctx.map_options(online_tiles)
        if video is None or video.fused is None or not video.fused.ok:
            page = placeholder_html("The fused map will appear here", options)
        else:
            page = prediction_map_html(video.fused, options, selected_rank=1, title=f"{video.name}: fused map")
        return (strip_html(video) if video else "", summary_markdown(video) if video else "",
                embed_html(page, options.height_px, title="Fused map of the video"))


def build_video_panel(ctx: UiContext, model: gr.Dropdown, top_k: gr.Slider, online_tiles: gr.Checkbox) -> None:
    """The video accordion (inside the Locate tab)."""
    handlers = VideoHandlers(ctx)
    state = gr.State(None)
    with gr.Accordion("Video: keyframes and one fused map", open=True):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                upload = gr.File(label="Video — drop one clip (MP4, MOV, MKV, WebM, AVI)", file_count="single",
                                 file_types=VIDEO_TYPES, height=120, elem_id="geoapp-video")
                button = gr.Button("Locate video", variant="primary", elem_id="geoapp-video-button")
                keep = gr.Textbox(label="Put frames back into the fusion (times in seconds, or all)",
                                  elem_id="geoapp-video-keep")
                again = gr.Button("Fuse again", elem_id="geoapp-video-refuse")
            with gr.Column(scale=2, min_width=480):
                summary = gr.Markdown(elem_id="geoapp-video-summary")
                strip = gr.HTML(elem_id="geoapp-video-strip")
                fused_map = gr.HTML(elem_id="geoapp-video-map")
    shown = [strip, summary, fused_map]
    button.click(user_errors(handlers.locate), inputs=[upload, model, top_k], outputs=state, api_name="locate_video",
                 concurrency_id="model", show_progress_on=[summary]) \
          .success(user_errors(handlers.show), inputs=[state, online_tiles], outputs=shown, api_visibility="private")
    again.click(user_errors(handlers.refuse), inputs=[state, keep], outputs=state, api_visibility="private") \
         .success(user_errors(handlers.show), inputs=[state, online_tiles], outputs=shown, api_visibility="private")
