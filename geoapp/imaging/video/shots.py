"""Shot boundaries: PySceneDetect's ContentDetector fed with the analysed frames.

The frames may be seconds apart (keyframes only), so cuts are placed at the first analysed frame of the
new shot; encoders put a keyframe at the cuts they detect, which is where the first frame of a shot is.
The flash filter runs in "suppress" mode so a cut is known when its frame arrives (no look-ahead).
"""

from __future__ import annotations

import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detector import FlashFilter
from scenedetect.detectors import ContentDetector

from .analysis import FrameSample


class CutDetector:
    """``is_cut(sample)``: does a new shot start at this frame?"""

    def __init__(self, threshold: float, min_shot_s: float, frame_rate: float | None):
        self._detector = ContentDetector(threshold=threshold, min_scene_len=float(min_shot_s),
                                         filter_mode=FlashFilter.Mode.SUPPRESS)
        self._rate = float(frame_rate) if frame_rate and frame_rate > 0 else 25.0

    def is_cut(self, sample: FrameSample) -> bool:
        bgr = np.ascontiguousarray(sample.small[..., ::-1])  # OpenCV's channel order
        timecode = FrameTimecode(float(max(0.0, sample.time_s)), fps=self._rate)
        return bool(self._detector.process_frame(timecode, bgr))
