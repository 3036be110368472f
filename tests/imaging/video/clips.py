"""Small generated clips for the video tests (rendered from NASA rasters by training.video.flyover).

THREE_SHOTS: a flyover over the Nile delta (0-3 s), a studio (3-5 s, static camera), a flyover over the
Atacama (5-8 s). At 10 fps with a keyframe every second, plus one forced at each cut.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from training.video.flyover import ClipFacts, ClipSpec, Segment, write_clip

THREE_SHOTS = (Segment("flyover", 3.0, 30.5, 31.0, heading_deg=60.0),
               Segment("studio", 2.0),
               Segment("flyover", 3.0, -23.5, -68.5, heading_deg=180.0))
CUTS = (3.0, 5.0)
SIZE = (320, 180)
#: two flyovers of the Nile delta around a studio shot: SatWorld's maps of the flyovers agree, the studio's does not
NILE_STUDIO = (Segment("flyover", 3.0, 30.5, 31.0, heading_deg=60.0), Segment("studio", 2.0),
               Segment("flyover", 3.0, 30.8, 31.5, heading_deg=200.0))


def three_shots(path: Path, **spec) -> ClipFacts:
    """THREE_SHOTS at 320x180, 10 fps, a keyframe every second (``spec`` overrides ClipSpec fields)."""
    settings = {"size": SIZE, "fps": 10.0, "gop": 10, "preset": "ultrafast", **spec}
    return write_clip(path, ClipSpec(THREE_SHOTS, **settings))


def nile_studio(path: Path) -> ClipFacts:
    """NILE_STUDIO at 320x180, 10 fps, a keyframe every second: three keyframes, the studio's in the middle."""
    return write_clip(path, ClipSpec(NILE_STUDIO, size=SIZE, fps=10.0, gop=10, preset="ultrafast"))


def studio(path: Path, seconds: float = 4.0, blur: tuple[float, float] | None = None, **spec) -> ClipFacts:
    """A static studio shot, a keyframe every half second; ``blur``: (start, end) seconds out of focus."""
    settings = {"size": SIZE, "fps": 10.0, "gop": 5, "preset": "ultrafast", **spec}
    return write_clip(path, ClipSpec((Segment("studio", seconds, blur=blur),), **settings))


def ffprobe_keyframe_times(path: Path) -> list[float]:
    """The FFmpeg command line's keyframes (``-skip_frame nokey``), in seconds."""
    out = subprocess.run([shutil.which("ffprobe") or "ffprobe", "-v", "error", "-select_streams", "v:0",
                          "-skip_frame", "nokey", "-show_entries", "frame=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return [float(line.split(",")[0]) for line in out.stdout.split() if line.strip()]
