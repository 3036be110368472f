"""Videos in the app, without Gradio: a video in -> its keyframes (time, per-frame top place, thumbnail), the
per-frame predictions, and one fused prediction with credible areas and outliers; outliers can be put back.

    video = locate_video(service, "clip.mp4", model="auto")
    video.frames[i].time_s, .top_label, .thumbnail, .outlier, .reason, .prediction
    video.fused (a Prediction: candidates, image["fusion"]: areas, used, outliers, kept)
    video = video.refused(keep=(12.48,))        # fused again with that frame put back (nothing decoded again)

``geoapp.ui.video_tab`` draws it; ``geoapp.ui.case_service`` can store it (video evidence + frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from geoapp.engine.video_fusion import FrameFusion, fused_record
from geoapp.engine.video_inputs import VideoSettings, predict_keyframes
from geoapp.families.base import EvidenceItem, MapLayer, PredictOptions
from geoapp.fusion.video import VideoFusion
from geoapp.imaging.video import KeyframeOptions, VideoLimits
from geoapp.results.prediction import Prediction

THUMBNAIL_SIDE = 192
AREA_COLOURS = {0.5: "#b3261e", 0.9: "#e65100", 0.95: "#f9a825"}


@dataclass
class VideoFrameView:
    """One keyframe as the strip shows it."""

    source: str  # clip.mp4#t=12.48
    time_s: float
    shot: int
    prediction: Prediction
    thumbnail: Image.Image | None
    outlier: bool = False
    kept: bool = False  # flagged, but put back by the analyst
    reason: str = ""

    @property
    def top_label(self) -> str:
        top = self.prediction.top
        if not self.prediction.ok or top is None:
            return self.prediction.error or "no prediction"
        return top.place_label or f"{top.lat:.3f}, {top.lon:.3f}"


@dataclass
class LocatedVideo:
    """A video's frames and its fused map (and how they were fused, to fuse again)."""

    name: str
    path: str
    frames: list[VideoFrameView]
    fused: Prediction | None
    fusion: VideoFusion | None
    settings: FrameFusion = field(default_factory=FrameFusion)
    error: str | None = None
    facts: dict = field(default_factory=dict)  # the file: SHA-256, container, codec, duration ...

    def refused(self, keep=()) -> "LocatedVideo":
        """Fused again with the frames at the times in ``keep`` (or "all") never left out."""
        settings = replace(self.settings, keep=keep if keep == "all" else tuple(float(t) for t in keep))
        fused, fusion = fused_record(self.name, [f.prediction for f in self.frames], settings)
        return _marked(replace(self, fused=_with_area_layers(fused), fusion=fusion, settings=settings))


class FusedAreas(EvidenceItem):
    """The fused map's credible areas, drawn on the map of the fused prediction."""

    key = "video_areas"
    title = "Credible areas of the fused video map"

    def __init__(self, areas: list[dict]) -> None:
        self.areas = areas

    def to_dict(self) -> list:
        return [{k: v for k, v in a.items() if k != "geometry"} for a in self.areas]

    def html(self) -> str:
        from html import escape

        return "<ul>" + "".join(f"<li>{escape(a['summary'])}</li>" for a in self.areas) + "</ul>"

    def map_layers(self) -> list[MapLayer]:
        features = []
        for area in sorted(self.areas, key=lambda a: -a["level"]):  # widest first, drawn below
            colour = AREA_COLOURS.get(area["level"], "#1565c0")
            features.append({"type": "Feature", "geometry": area["geometry"],
                             "properties": {"stroke": colour, "fill": colour, "fill_opacity": 0.12,
                                            "tooltip": area["summary"], "kind": "credible_area"}})
        return [MapLayer("Credible areas (fused video)", tuple(features))] if features else []


def _with_area_layers(fused: Prediction | None) -> Prediction | None:
    if fused is not None and fused.ok:
        fused.evidence = [e for e in fused.evidence if not isinstance(e, FusedAreas)]
        fused.evidence.append(FusedAreas(fused.image["fusion"]["areas"]))
    return fused


def _marked(video: LocatedVideo) -> LocatedVideo:
    outliers = {o.source: o.reason for o in (video.fusion.outliers if video.fusion else [])}
    kept = set(video.fusion.kept if video.fusion else [])
    for frame in video.frames:
        frame.outlier = frame.source in outliers or frame.source in kept
        frame.kept = frame.source in kept
        frame.reason = outliers.get(frame.source, "put back by the analyst" if frame.kept else "")
    return video


def locate_video(service, path: str, *, model: str = "auto", top_k: int = 5, keep=(), levels=(0.9,),
                 max_video_mb: float = 4096.0, name: str | None = None, progress=None) -> LocatedVideo:
    """Decode ``path``, predict its keyframes with the service's model, fuse them (see the module)."""
    progress = progress or (lambda _f, _m: None)
    name = name or Path(path).name
    locator = service.locator(model, progress)
    settings = FrameFusion(levels=tuple(levels), keep=keep, top_k=top_k)
    video_settings = VideoSettings(keyframes=KeyframeOptions(file_sha256=True), limits=VideoLimits(max_file_mb=max_video_mb))
    progress(0.5, f"Reading the keyframes of {name} …")
    with service._compute_lock:
        video, predictions = predict_keyframes(locator, name, PredictOptions.build(top_k=top_k), video_settings,
                                               location=path)
    if video is None:
        return LocatedVideo(name, path, [], None, None, settings, error=predictions[0].error)
    frames = []
    for keyframe, prediction in zip(video.keyframes, predictions):
        thumbnail = keyframe.image.copy()
        thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        frames.append(VideoFrameView(prediction.source, keyframe.time_s, keyframe.shot, prediction, thumbnail))
    progress(0.9, f"Fusing {len(frames)} frame maps …")
    fused, fusion = fused_record(name, predictions, settings)
    progress(1.0, "Done")
    return _marked(LocatedVideo(name, path, frames, _with_area_layers(fused), fusion, settings,
                                facts=dict(video.info.to_dict())))
