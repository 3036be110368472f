"""Per shot, the sharpest frames that differ from each other; per video, at most ``max_per_video``.

Memory stays bounded whatever the length: a shot keeps a small pool of candidates (a near-duplicate
replaces its twin only when sharper), and the video keeps at most ``max_per_video`` chosen frames,
dropping the lowest-priority ones (later picks of a shot before first picks; shorter shots first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from PIL import Image

from .analysis import FrameSample
from .options import KeyframeOptions


@dataclass
class Keyframe:
    """A chosen frame: where it is in the video and in its shot, and the picture (``image``)."""

    time_s: float  # seconds from the start of the video (presentation time; right for variable rates)
    shot: int
    rank: int  # 0 = the sharpest kept frame of its shot
    sharpness: float  # variance of the Laplacian at the analysis size
    phash: str  # 64-bit perceptual hash, hex
    intra: bool  # a codec keyframe (else a frame sampled between keyframes)
    pts: int | None
    image: Image.Image = field(repr=False, compare=False)
    source: str = ""  # "clip.mp4#t=12.48" (media-fragment time)
    wall_time: str | None = None  # creation time + time_s, when the container has a creation time

    def to_dict(self) -> dict:
        return {"source": self.source, "time_s": round(self.time_s, 3), "shot": self.shot, "rank": self.rank,
                "sharpness": round(self.sharpness, 2), "phash": self.phash, "intra": self.intra, "pts": self.pts,
                "wall_time": self.wall_time, "size": list(self.image.size)}


@dataclass
class Shot:
    index: int
    start_s: float
    end_s: float
    analysed_frames: int
    keyframes: list[float] = field(default_factory=list)  # times of its kept keyframes
    note: str | None = None  # why it kept none or fewer (same view as an earlier shot, video cap)

    def to_dict(self) -> dict:
        return {"index": self.index, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "analysed_frames": self.analysed_frames, "keyframes": [round(t, 3) for t in self.keyframes],
                "note": self.note}


@dataclass
class _Candidate:
    sample: FrameSample
    image: Image.Image


class _ShotPool:
    def __init__(self, index: int, start_s: float, options: KeyframeOptions):
        self.index, self.start_s, self.options = index, start_s, options
        self.members: list[_Candidate] = []
        self.capacity = max(4, 2 * options.max_per_shot)
        self.count = 0

    def offer(self, sample: FrameSample, make_image: Callable[[], Image.Image]) -> None:
        self.count += 1
        for i, member in enumerate(self.members):
            if member.sample.phash - sample.phash <= self.options.distinct_bits:  # the same view
                if sample.sharpness > member.sample.sharpness:
                    self.members[i] = _Candidate(sample, make_image())
                return
        if len(self.members) < self.capacity:
            self.members.append(_Candidate(sample, make_image()))
            return
        worst = min(range(len(self.members)), key=lambda i: self.members[i].sample.sharpness)
        if sample.sharpness > self.members[worst].sample.sharpness:
            self.members[worst] = _Candidate(sample, make_image())

    def picks(self, earlier: list[tuple[int, FrameSample]]) -> tuple[list[_Candidate], str | None]:
        """Sharpest first, each different from the ones picked (and, by default, from earlier shots')."""
        bits, chosen, note = self.options.distinct_bits, [], None
        for member in sorted(self.members, key=lambda c: -c.sample.sharpness):
            if len(chosen) == self.options.max_per_shot:
                break
            if any(member.sample.phash - c.sample.phash <= bits for c in chosen):
                continue
            twin = next((shot for shot, s in earlier if member.sample.phash - s.phash <= bits), None)
            if twin is not None and self.options.distinct_across_shots:
                note = note or f"same view as shot {twin}"
                continue
            chosen.append(member)
        return chosen, note


@dataclass
class _Kept:
    candidate: _Candidate
    shot: int
    rank: int
    shot_seconds: float


class KeyframeSelector:
    """Feed analysed frames in time order (``add``), then ``finish`` -> shots and keyframes."""

    def __init__(self, options: KeyframeOptions, name: str, creation_time: str | None = None):
        self.options, self.name = options, name
        self.creation = datetime.fromisoformat(creation_time.replace("Z", "+00:00")) if creation_time else None
        self.shots: list[Shot] = []
        self.kept: list[_Kept] = []
        self.pool: _ShotPool | None = None
        self.dropped = 0  # picks left out by the per-video cap

    def add(self, sample: FrameSample, make_image: Callable[[], Image.Image], cut: bool) -> None:
        if self.pool is None or cut:
            self._close(sample.time_s)
            start = sample.time_s if self.pool is not None or self.shots else 0.0
            self.pool = _ShotPool(len(self.shots), start, self.options)
        self.pool.offer(sample, make_image)

    def _close(self, end_s: float) -> None:
        pool = self.pool
        if pool is None:
            return
        earlier = [(k.shot, k.candidate.sample) for k in self.kept]
        picks, note = pool.picks(earlier)
        self.shots.append(Shot(pool.index, pool.start_s, end_s, pool.count, note=note))
        self.kept += [_Kept(c, pool.index, rank, end_s - pool.start_s) for rank, c in enumerate(picks)]
        if len(self.kept) > self.options.max_per_video:
            self.kept.sort(key=lambda k: (k.rank, -k.shot_seconds, k.candidate.sample.time_s))
            self.dropped += len(self.kept) - self.options.max_per_video
            del self.kept[self.options.max_per_video:]
        self.pool = None

    def finish(self, end_s: float) -> tuple[list[Shot], list[Keyframe]]:
        if self.pool is not None:
            self._close(max(end_s, self.pool.start_s))
        self.kept.sort(key=lambda k: k.candidate.sample.time_s)
        frames = [self._keyframe(k) for k in self.kept]
        self._name_sources(frames)
        for shot in self.shots:
            shot.keyframes = [f.time_s for f in frames if f.shot == shot.index]
            if not shot.keyframes and shot.note is None and shot.analysed_frames:
                shot.note = f"left out by the limit of {self.options.max_per_video} keyframes per video"
        return self.shots, frames

    def _keyframe(self, kept: _Kept) -> Keyframe:
        sample = kept.candidate.sample
        wall = (self.creation + timedelta(seconds=sample.time_s)).isoformat().replace("+00:00", "Z") \
            if self.creation else None
        return Keyframe(time_s=sample.time_s, shot=kept.shot, rank=kept.rank, sharpness=sample.sharpness,
                        phash=str(sample.phash), intra=sample.intra, pts=sample.pts, image=kept.candidate.image,
                        wall_time=wall)

    def _name_sources(self, frames: list[Keyframe]) -> None:
        """``name#t=12.48``; three decimals where two would make two frames share a name."""
        short = [f"{f.time_s:.2f}" for f in frames]
        for frame, text in zip(frames, short):
            stamp = text if short.count(text) == 1 else f"{frame.time_s:.3f}"
            frame.source = f"{self.name}#t={stamp}"
