"""The fused record of a video: its keyframes' records -> one ``Prediction`` for the whole video.

The record's source is the video as given (``clip.mp4``; its frames are ``clip.mp4#t=12.48``); its candidates are
the fused map's most probable places, and ``image["fusion"]`` holds the credible areas (GeoJSON), the frames
used, the outliers left out with their reasons, the ones put back, and the tempering. ``image["fused_video"]``
is true, so readers can tell it from a frame. The rules are in :mod:`geoapp.fusion.video`.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoapp.fusion.video import VideoFusion, frame_facts, fuse_frames
from geoapp.results.prediction import Prediction, build_prediction

FILE_FACTS = ("file", "video_sha256", "container", "codec", "duration_s", "frame_rate", "variable_frame_rate",
              "creation_time", "location", "rotation", "complete", "shots", "keyframes", "notes")


@dataclass(frozen=True)
class FrameFusion:
    """How a video's frames are fused (the CLI's ``--area``, ``--keep-frames``, ``--calibration``)."""

    levels: tuple[float, ...] = (0.9,)
    keep: tuple[float, ...] | str = ()  # frame times never left out, or "all"
    clues: tuple = ()
    calibration: str | None = None  # a calibration's name; None: the model's default one when there is one
    top_k: int = 5
    merge_km: float = 25.0

    def __call__(self, video, predictions: list[Prediction]) -> Prediction | None:
        """The ``VideoSettings.fuse`` hook (the video's key is its frames' sources up to ``#t=``)."""
        frames = [p for p in predictions if "#t=" in p.source]
        return fused_record(frames[0].source.rsplit("#t=", 1)[0], frames, self)[0] if frames else None


def fused_record(source: str, frames: list[Prediction], settings: FrameFusion | None = None
                 ) -> tuple[Prediction | None, VideoFusion | None]:
    """(the fused record, the fusion it came from); (None, None) when no frame record exists."""
    from geoapp.fusion import find_calibration

    settings = settings or FrameFusion()
    frames = [p for p in frames if "#t=" in p.source]
    if not frames:
        return None, None
    ok = [p for p in frames if p.ok]
    calibrations = [find_calibration(p.model, settings.calibration) for p in ok]
    fusion = fuse_frames(source, frames, keep=settings.keep, clues=settings.clues, calibrations=calibrations)
    facts = {k: v for k, v in frame_facts(frames[0]).items() if k in FILE_FACTS}
    if fusion.posterior is None:
        return Prediction(source=source, model=dict(frames[0].model), image={"video": facts, "fused_video": True},
                          error=f"{facts.get('file', source)}: no fused map ({'; '.join(fusion.notes)})"), fusion
    post = fusion.posterior
    record = build_prediction(source, post.grid.lat, post.grid.lon, post.mass, top_k=settings.top_k,
                              merge_km=settings.merge_km)
    record.model = {**ok[0].model, "fused_frames": len(fusion.used)}
    record.parameters = {"levels": list(settings.levels), "keep": settings.keep if settings.keep == "all"
                         else list(settings.keep)}
    record.image = {"name": source, "format": "video (fused keyframes)", "video": facts, "fused_video": True,
                    "fusion": fusion.to_dict(settings.levels)}
    record.warnings = sorted({w for p in ok for w in p.warnings}) + list(fusion.notes) + \
        [f"outlier left out: {o.source}: {o.reason}" for o in fusion.outliers] + list(post.warnings)
    return record, fusion
