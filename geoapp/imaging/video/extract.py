"""extract_keyframes: a video file -> its shots and chosen keyframes (:class:`VideoKeyframes`)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import analyse, display_image
from .container import VideoInfo, file_sha256, open_video
from .decode import DecodeStats, FrameFeed
from .errors import VideoLoadError
from .options import KeyframeOptions, VideoLimits
from .selection import Keyframe, KeyframeSelector, Shot
from .shots import CutDetector

#: progress(fraction 0..1, message)
VideoProgress = Callable[[float, str], None]
#: cancel: a threading.Event, or a function answering "stop now?"
Cancel = Callable[[], bool] | threading.Event | None


@dataclass
class VideoKeyframes:
    """The outcome for one video. ``complete`` is False when decoding stopped early (``notes`` say why);
    the keyframes found up to there are kept."""

    info: VideoInfo
    shots: list[Shot]
    keyframes: list[Keyframe]
    stats: DecodeStats
    options: KeyframeOptions
    notes: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.stats.stopped is None

    @property
    def cancelled(self) -> bool:
        return self.stats.cancelled

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixels)."""
        return {"video": self.info.to_dict(), "shots": [s.to_dict() for s in self.shots],
                "keyframes": [k.to_dict() for k in self.keyframes], "complete": self.complete,
                "cancelled": self.cancelled, "decoding": self.stats.to_dict(), "notes": list(self.notes),
                "options": {k: getattr(self.options, k) for k in ("mode", "max_per_shot", "max_per_video",
                                                                  "max_keyframe_gap_s", "sample_interval_s",
                                                                  "distinct_bits", "cut_threshold")},
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()}}


def _stopper(cancel: Cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def extract_keyframes(path: str | os.PathLike, options: KeyframeOptions | None = None,
                      limits: VideoLimits | None = None, *, name: str | None = None, source: str | None = None,
                      progress: VideoProgress | None = None, cancel: Cancel = None) -> VideoKeyframes:
    """Shots and keyframes of the video at ``path``.

    ``name`` (default: the file name) is what messages call the file; ``source`` (default: ``name``) is what
    keyframe sources start with (``source#t=12.48``), e.g. the path as the user gave it.

    Raises :class:`VideoLoadError` when the file cannot be used at all (empty, not a video, no video
    stream, unknown codec, over a refusal cap, or no frame decodable). Damage, caps and ``cancel`` after
    the first frames end the analysis early instead: the result keeps what was found and says why.
    """
    options, limits = options or KeyframeOptions(), limits or VideoLimits()
    options.check()
    limits.check()
    name = name or Path(path).name
    started = time.perf_counter()
    with open_video(path, limits, name) as opened:
        info = opened.info
        if options.file_sha256:
            info.sha256 = file_sha256(path)
        feed = FrameFeed(opened.container, opened.stream, options, limits, _stopper(cancel))
        detector = CutDetector(options.cut_threshold, options.min_shot_s, info.frame_rate)
        selector = KeyframeSelector(options, source or name, info.creation_time)
        first = True
        for frame, time_s in feed:
            if first:
                info.rotation, first = int(frame.rotation or 0), False
            sample = analyse(frame, time_s, info.rotation, options.analysis_width)
            feed.stats.analysed_frames += 1
            selector.add(sample, lambda: display_image(frame, info.rotation, options.output_max_side),
                         detector.is_cut(sample))
            if progress:
                progress(min(1.0, time_s / info.duration_s) if info.duration_s else 0.0,
                         f"{name}: t={time_s:.1f} s, {len(selector.shots) + 1} shot(s)")
            if feed.stats.analysed_frames >= limits.max_analysed_frames:
                feed.stats.stopped = f"analysed-frame limit reached ({limits.max_analysed_frames:,} frames)"
                break
        stats = feed.stats
        _check_length(stats, info)
        if stats.stopped is None:  # the whole stream was read: its timestamps tell the real rate
            rate, variable = feed.measured_rate()
            info.frame_rate = rate or info.frame_rate
            info.variable_frame_rate = variable if variable is not None else info.variable_frame_rate
    if stats.analysed_frames == 0 and not stats.cancelled:
        raise VideoLoadError(name, _nothing_decoded(stats, info))
    end = info.duration_s if info.duration_s and stats.stopped is None else (stats.last_time_s or 0.0)
    shots, keyframes = selector.finish(max(end, stats.last_time_s or 0.0) if stats.stopped is None else end)
    result = VideoKeyframes(info, shots, keyframes, stats, options, notes=_notes(stats, info, options, selector),
                            timings_ms={"extract": (time.perf_counter() - started) * 1000})
    if progress:
        progress(1.0, f"{name}: {len(keyframes)} keyframe(s) from {len(shots)} shot(s)")
    return result


def _check_length(stats: DecodeStats, info: VideoInfo) -> None:
    """A stream that ends well before the duration its header declares was cut short: say so."""
    if stats.stopped is None and info.duration_s and stats.last_packet_s is not None:
        if info.duration_s - stats.last_packet_s > max(1.0, 0.02 * info.duration_s):
            stats.stopped = (f"the data ends at t={stats.last_packet_s:.1f} s, before the declared duration of "
                             f"{info.duration_s:.1f} s (truncated file?)")


def _nothing_decoded(stats: DecodeStats, info: VideoInfo) -> str:
    if stats.stopped and "limit" in stats.stopped:
        return f"no frame analysed: {stats.stopped}"
    if stats.packets == 0:
        return "the video stream holds no data (truncated or empty file)"
    return (f"no frame could be decoded from {stats.packets} packet(s) of {info.codec} video (the data is "
            "damaged, or uses a codec feature this FFmpeg build cannot decode)")


def _notes(stats: DecodeStats, info: VideoInfo, options: KeyframeOptions, selector: KeyframeSelector) -> list[str]:
    notes = []
    if stats.cancelled:
        notes.append(f"cancelled at t={stats.last_time_s or 0:.1f} s: keyframes found so far are kept")
    elif stats.stopped:
        notes.append(f"stopped early: {stats.stopped}; keyframes found so far are kept")
    damage = [f"{n} {what}" for n, what in ((stats.damaged_packets, "undecodable packet(s) skipped"),
                                            (stats.corrupt_frames, "corrupt frame(s) left out")) if n]
    if damage:
        notes.append("damaged video data: " + ", ".join(damage))
    if stats.filled_gaps:
        notes.append(f"{stats.filled_gaps} stretch(es) without a keyframe for over {options.max_keyframe_gap_s:g} s "
                     f"decoded in full (one frame analysed per {options.sample_interval_s:g} s)")
    if selector.dropped:
        notes.append(f"{selector.dropped} keyframe(s) left out by the limit of {options.max_per_video} per video")
    if max(info.width, info.height) > options.output_max_side:
        notes.append(f"{info.width}×{info.height} frames handed on at reduced size "
                     f"(longer side {options.output_max_side} px)")
    if info.rotation:
        notes.append(f"rotated {info.rotation}° for display (container display matrix)")
    return notes
