"""Video: decoding (PyAV), shots (PySceneDetect) and keyframes (sharpness, perceptual hash), torch-free.

``extract_keyframes("clip.mp4")`` -> :class:`VideoKeyframes`: the container's facts (:class:`VideoInfo`:
codec, size, duration, rate, rotation, creation time), the shots (:class:`Shot`) and per shot the sharpest
frames that differ from each other (:class:`Keyframe`, with its time and a PIL image in display
orientation). Untrusted files: the container is recognised from its bytes and read by that demuxer
only; refusal caps and early-stop caps are in :class:`VideoLimits`; every failure is a
:class:`VideoLoadError` (an :class:`~geoapp.imaging.ImageLoadError`) worded for the analyst.

Modules: ``errors``, ``options`` (KeyframeOptions, VideoLimits), ``container`` (sniffing, opening,
VideoInfo), ``decode`` (which frames are decoded: keyframes, gap filling, caps), ``analysis``
(sharpness, hash, images at reduced size), ``shots`` (cuts), ``selection`` (per-shot pools, per-video
cap), ``extract`` (the whole path). Writing keyframes as files: ``geoapp.engine.video_export``.
"""

from __future__ import annotations

from .container import VIDEO_EXTENSIONS, VideoInfo, is_video_path, sniff_container
from .errors import VideoLoadError
from .extract import VideoKeyframes, extract_keyframes
from .options import KeyframeOptions, VideoLimits
from .selection import Keyframe, Shot

__all__ = ["VIDEO_EXTENSIONS", "Keyframe", "KeyframeOptions", "Shot", "VideoInfo", "VideoKeyframes", "VideoLimits",
           "VideoLoadError", "extract_keyframes", "is_video_path", "sniff_container"]

