"""Generated clips for tests and benchmarks: flyovers over NASA rasters with cuts, encoded with PyAV.

No third-party video goes in the repository: every clip is rendered here. A clip is a list of
:class:`Segment` s (a flyover over a place, or a studio-like static shot); each segment is one shot,
and every cut starts with a forced keyframe (as x264's scene-cut detection would place one).

    python -m training.video.flyover OUT.mp4 --size 1920x1080 --fps 25 --minutes 2     # benchmark clip
    python -m training.video.flyover OUT.webm --size 320x180 --fps 10                    # small VP9 clip

Codecs by suffix (``--codec`` overrides): .mp4/.mov/.mkv H.264 (libx264), .webm VP9, .avi MPEG-4 Part 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .frames import Flyover, Studio, blurred

DEFAULT_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


@dataclass(frozen=True)
class Segment:
    """One shot: a flyover over (lat, lon) or a studio frame, ``seconds`` long."""

    kind: str  # "flyover" | "studio"
    seconds: float
    lat: float = 0.0
    lon: float = 0.0
    heading_deg: float = 90.0  # direction of travel, clockwise from north
    speed_km_s: float = 10.0
    window_km: float = 600.0  # ground shown across the frame's height (SatWorld's crops are 600 km)
    blur: tuple[float, float] | None = None  # (start, end) seconds inside the segment drawn out of focus


@dataclass(frozen=True)
class ClipSpec:
    segments: tuple[Segment, ...]
    size: tuple[int, int] = (320, 180)
    fps: float = 10.0
    codec: str | None = None  # None: from the suffix (DEFAULT_CODECS)
    gop: int | None = None  # frames between keyframes (None: the encoder's default, 250 for x264)
    crf: int = 23
    preset: str = "veryfast"  # x264/x265 speed preset
    rotation: int = 0  # display matrix, degrees counter-clockwise (how phones store portrait video)
    frame_seconds: tuple[float, ...] | None = None  # variable frame rate: each frame's duration, cycled
    creation_time: str | None = None  # container creation time, ISO 8601 UTC ("2024-05-01T10:00:00Z")
    location: str | None = None  # ISO 6709 position as phones write it ("+48.8584+002.2945/")
    force_keyframes_at_cuts: bool = True
    grain: float = 0.0  # sensor-noise amplitude in grey levels: real footage's bitrate (benchmarks use ~6)


@dataclass
class ClipFacts:
    """What a generated clip holds, for assertions: shots [start, end) in seconds, frame times."""

    path: str
    shots: list[tuple[float, float]]
    kinds: list[str]
    frame_times: list[float] = field(repr=False)
    keyframe_times: list[float] = field(repr=False)  # forced ones (cuts); the encoder adds its own
    size: tuple[int, int] = (0, 0)

    @property
    def cuts(self) -> list[float]:
        return [start for start, _ in self.shots[1:]]

    def shot_of(self, t: float) -> int:
        """Index of the shot showing time ``t``."""
        return max(i for i, (start, _) in enumerate(self.shots) if t >= start - 1e-6)

    def to_dict(self) -> dict:
        return asdict(self)


def _frame_times(spec: ClipSpec, total: float) -> list[float]:
    if not spec.frame_seconds:
        return [i / spec.fps for i in range(int(round(total * spec.fps)))]
    times, t, i = [], 0.0, 0
    while t < total - 1e-9:
        times.append(round(t, 6))
        t += spec.frame_seconds[i % len(spec.frame_seconds)]
        i += 1
    return times


def _grain_patterns(spec: ClipSpec) -> list[np.ndarray]:
    """Seven fixed noise frames (seeded), cycled: the encoder cannot predict them from the previous frame."""
    if spec.grain <= 0:
        return []
    rng = np.random.default_rng(0)
    amplitude = int(round(spec.grain))
    return [rng.integers(-amplitude, amplitude + 1, (spec.size[1], spec.size[0], 1), dtype=np.int16)
            for _ in range(7)]


def _open_stream(container, spec: ClipSpec, suffix: str):
    codec = spec.codec or DEFAULT_CODECS[suffix]
    stream = container.add_stream(codec, rate=Fraction(spec.fps).limit_denominator(1001))
    stream.width, stream.height = spec.size
    stream.pix_fmt = "yuv420p"
    if spec.gop:
        stream.codec_context.gop_size = spec.gop
    if spec.frame_seconds:  # variable frame rate: millisecond timestamps
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.time_base = Fraction(1, 1000)
    options = {}
    if codec in ("libx264", "libx265"):
        options.update(preset=spec.preset, crf=str(spec.crf))
        if codec == "libx265":
            options["x265-params"] = "log-level=error"
    elif codec == "libvpx-vp9":
        options.update(crf=str(spec.crf + 10), deadline="realtime", **{"cpu-used": "8"})
        stream.codec_context.bit_rate = 0
    elif codec == "mpeg4":
        stream.codec_context.flags |= av.codec.context.Flags.qscale
        stream.codec_context.qscale = 4
    stream.options = options
    if spec.rotation:
        stream.set_display_rotation(spec.rotation)
    return stream


def write_clip(path: str | Path, spec: ClipSpec) -> ClipFacts:
    """Render and encode ``spec`` to ``path``; the container comes from the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONTAINER_FORMATS:
        raise ValueError(f"{path.name}: choose a suffix among {', '.join(CONTAINER_FORMATS)}")
    starts = np.cumsum([0.0] + [s.seconds for s in spec.segments])
    shots = [(float(a), float(b)) for a, b in zip(starts[:-1], starts[1:])]
    painters = [Studio(spec.size) if s.kind == "studio" else
                Flyover(s.lat, s.lon, s.seconds, spec.size, s.window_km, s.speed_km_s, s.heading_deg)
                for s in spec.segments]
    times = _frame_times(spec, float(starts[-1]))
    grain = _grain_patterns(spec)
    forced: list[float] = []
    with av.open(str(path), "w", format=CONTAINER_FORMATS[suffix]) as container:
        if spec.creation_time:
            container.metadata["creation_time"] = spec.creation_time
        if spec.location:
            container.metadata["location"] = spec.location
        stream = _open_stream(container, spec, suffix)
        shot = -1
        for index, t in enumerate(times):
            now = max(i for i, (a, _) in enumerate(shots) if t >= a - 1e-9)
            segment = spec.segments[now]
            local = t - shots[now][0]
            picture = painters[now].frame(local)
            if segment.blur and segment.blur[0] <= local < segment.blur[1]:
                picture = blurred(picture, radius=max(2.0, spec.size[1] / 60))
            if grain:
                picture = np.clip(picture.astype(np.int16) + grain[index % len(grain)], 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            if spec.frame_seconds:
                frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            else:
                frame.pts = int(round(t * spec.fps))
            if now != shot and spec.force_keyframes_at_cuts:
                frame.pict_type = av.video.frame.PictureType.I
                forced.append(t)
            shot = now
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return ClipFacts(str(path), shots, [s.kind for s in spec.segments], times, forced, spec.size)


def repeat_clip(source: str | Path, path: str | Path, times: int) -> Path:
    """``source`` played ``times`` times in a row, by stream copy (no re-encoding: seconds, not an hour, for a
    long 1080p clip). The video stream only; timestamps shifted by the clip's duration each time."""
    path = Path(path)
    with av.open(str(source)) as src, av.open(str(path), "w", format=CONTAINER_FORMATS[path.suffix.lower()]) as dst:
        inp = src.streams.video[0]
        out = dst.add_stream_from_template(inp)
        span = inp.duration or int(round(inp.frames / float(inp.average_rate) / float(inp.time_base)))
        for k in range(times):
            src.seek(0, stream=inp, backward=True)
            for packet in src.demux(inp):
                if packet.size:
                    packet.pts, packet.dts = packet.pts + k * span, packet.dts + k * span
                    packet.stream = out
                    dst.mux(packet)
    return path


def demo_segments(seconds: float = 60.0) -> tuple[Segment, ...]:
    """Place A (Nile delta), a studio cut, place B (Andes/Atacama), then back over A further east: 40/15/30/15 %."""
    return (
        Segment("flyover", 0.40 * seconds, 30.5, 31.0, heading_deg=60.0),
        Segment("studio", 0.15 * seconds),
        Segment("flyover", 0.30 * seconds, -23.5, -68.5, heading_deg=180.0),
        Segment("flyover", 0.15 * seconds, 29.0, 34.0, heading_deg=300.0),
    )


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.video.flyover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("--size", type=_size, default=(320, 180), help="WIDTHxHEIGHT (default 320x180)")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, default=0.25)
    parser.add_argument("--codec", default=None, help="libx264, libx265, libvpx-vp9, libsvtav1, mpeg4 ...")
    parser.add_argument("--gop", type=int, default=None, help="frames between keyframes (default: the encoder's)")
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--rotation", type=int, default=0)
    parser.add_argument("--grain", type=float, default=0.0, help="sensor-noise amplitude (grey levels)")
    args = parser.parse_args(argv)
    spec = ClipSpec(demo_segments(args.minutes * 60), size=args.size, fps=args.fps, codec=args.codec, gop=args.gop,
                    crf=args.crf, preset=args.preset, rotation=args.rotation, grain=args.grain)
    facts = write_clip(args.output, spec)
    json.dump({"path": facts.path, "shots": facts.shots, "kinds": facts.kinds, "frames": len(facts.frame_times)},
              sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
