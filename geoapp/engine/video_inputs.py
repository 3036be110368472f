"""Videos among the inputs of a batch: each video becomes its keyframes, predicted like photos.

A keyframe is an input whose key is ``clip.mp4#t=12.48`` (the video as given, then the media-fragment
time); its record's ``image`` carries ``video`` (time, shot, rank, wall-clock time, the file's facts).
A video that cannot be read gets one error record under its own key, and the batch carries on.

``fuse`` (a :data:`VideoFusion`, e.g. ``geoapp.engine.video_fusion.FrameFusion``) turns a video's frame records
into one fused record (source: the video as given); without it no fused record is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from geoapp.imaging.video import KeyframeOptions, VideoKeyframes, VideoLimits, VideoLoadError, extract_keyframes, \
    is_video_path
from geoapp.results.prediction import Prediction

from .inputs import is_url, predict_inputs

#: fuse(video, frame_predictions) -> one record for the whole video, or None
VideoFusion = Callable[[VideoKeyframes, list[Prediction]], Prediction | None]


@dataclass(frozen=True)
class VideoSettings:
    """How videos among the inputs are read (the CLI's video flags)."""

    keyframes: KeyframeOptions = field(default_factory=lambda: KeyframeOptions(file_sha256=True))
    limits: VideoLimits = field(default_factory=VideoLimits)
    fuse: VideoFusion | None = None  # e.g. geoapp.engine.video_fusion.FrameFusion()


def is_video_key(key: str) -> bool:
    """A local file that is a video (by suffix or content); URLs are read as photos for now."""
    return not is_url(key) and is_video_path(key)


def complete_videos(records: list[dict]) -> set[str]:
    """Video keys whose every keyframe record is in ``records`` (flat records: ``input``, ``image_json``).

    A rerun skips these; a video whose records were cut short is done again (the records already there
    are not written twice: the output skips known inputs)."""
    import json

    seen: dict[str, int] = {}
    expected: dict[str, int] = {}
    for record in records:
        key = str(record.get("input") or "")
        if "#t=" not in key:
            continue
        video = json.loads(record.get("image_json") or "{}").get("video") or {}
        name = key.rsplit("#t=", 1)[0]
        seen[name] = seen.get(name, 0) + 1
        expected[name] = int(video.get("keyframes") or 0)
    return {name for name, count in seen.items() if count >= expected[name] > 0}


def video_facts(video: VideoKeyframes, frame) -> dict:
    """What a frame record says about its video (JSON-ready)."""
    info = video.info
    return {"file": info.name, "time_s": round(frame.time_s, 3), "wall_time": frame.wall_time, "shot": frame.shot,
            "rank": frame.rank, "shots": len(video.shots), "keyframes": len(video.keyframes), "intra": frame.intra,
            "sharpness": round(frame.sharpness, 2), "phash": frame.phash, "video_sha256": info.sha256,
            "container": info.container, "codec": info.codec, "duration_s": info.duration_s,
            "frame_rate": info.frame_rate, "variable_frame_rate": info.variable_frame_rate,
            "creation_time": info.creation_time, "location": list(info.location) if info.location else None,
            "rotation": info.rotation, "complete": video.complete, "notes": list(video.notes)}


def predict_video(family, key: str, options, settings: VideoSettings, *, location: str | None = None) -> list[Prediction]:
    """The records of one video: one per keyframe (in time order), then the fused one when ``settings.fuse``."""
    video, predictions = predict_keyframes(family, key, options, settings, location=location)
    fused = settings.fuse(video, predictions) if settings.fuse and video is not None else None
    return predictions + ([fused] if fused is not None else [])


def predict_keyframes(family, key: str, options, settings: VideoSettings, *, location: str | None = None
                      ) -> tuple[VideoKeyframes | None, list[Prediction]]:
    """(the decoded keyframes, one record per keyframe); (None, [the error record]) when none could be read."""
    try:  # messages name the file, as for photos; records are keyed by the input as given
        video = extract_keyframes(location or key, settings.keyframes, settings.limits, source=key)
    except VideoLoadError as error:
        return None, [family.finish(Prediction(source=key, error=str(error)))]
    if not video.keyframes:  # cancelled before the first frame
        reason = "; ".join(video.notes) or "nothing decoded"
        return None, [family.finish(Prediction(source=key, error=f"{video.info.name}: no keyframe ({reason})"))]
    predictions = family.predict_batch([k.image for k in video.keyframes], options)
    for frame, prediction in zip(video.keyframes, predictions):
        prediction.source = frame.source
        prediction.image.update(name=frame.source, format=f"video frame ({video.info.codec})",
                                video=video_facts(video, frame))
        if not video.complete and prediction.ok:
            prediction.warnings.append(f"video analysed only in part: {video.notes[0]}")
    return video, predictions


def predict_with_videos(family, keys: list[str], options, settings: VideoSettings | None = None, *,
                        progress=None) -> list[Prediction]:
    """:func:`~geoapp.engine.inputs.predict_inputs` for inputs that may include videos: photos in batches,
    each video on its own (its frames in memory one video at a time); records in input order."""
    settings = settings or VideoSettings()
    out: list[Prediction] = []
    photos: list[str] = []

    def flush() -> None:
        if photos:
            out.extend(predict_inputs(family, photos, options, progress=progress))
            photos.clear()

    for key in keys:
        if is_video_key(key):
            flush()
            out.extend(predict_video(family, key, options, settings, location=os.path.expanduser(key)))
            if progress:
                progress(1)
        else:
            photos.append(key)
    flush()
    return out
