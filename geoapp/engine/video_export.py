"""Keyframes as files: one JPEG per keyframe, its time in the name, and sidecars (JSON, CSV) listing them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from geoapp.fileio import atomic_write
from geoapp.imaging.video import Keyframe, VideoKeyframes
from geoapp.results.textsafe import csv_cell, unicode_text

SIDECAR_COLUMNS = ("file", "source", "time_s", "wall_time", "shot", "rank", "sharpness", "phash", "intra", "width",
                   "height")


def frame_filename(stem: str, frame: Keyframe) -> str:
    """``clip_t00h01m12.480s.jpg``: sorts by time, reads as a time."""
    t = frame.time_s
    return f"{stem}_t{int(t // 3600):02d}h{int(t % 3600 // 60):02d}m{t % 60:06.3f}s.jpg"


def write_keyframes(result: VideoKeyframes, folder: str | Path, stem: str, quality: int = 92) -> list[Path]:
    """Write the JPEGs and ``{stem}_keyframes.json`` / ``.csv`` into ``folder`` (each file atomically:
    an interruption leaves no half-written file); returns the paths written, sidecars last."""
    folder = Path(folder)
    written, rows = [], []
    for frame in result.keyframes:
        name = frame_filename(stem, frame)
        written.append(atomic_write(folder / name, lambda out, f=frame: f.image.save(out, "JPEG", quality=quality)))
        rows.append({"file": name, **{k: v for k, v in frame.to_dict().items() if k in SIDECAR_COLUMNS},
                     "width": frame.image.width, "height": frame.image.height})
    summary = result.to_dict()
    for entry, row in zip(summary["keyframes"], rows):
        entry["file"] = row["file"]
    text = unicode_text(json.dumps(summary, indent=2, ensure_ascii=False))
    written.append(atomic_write(folder / f"{stem}_keyframes.json", text))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SIDECAR_COLUMNS)
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    written.append(atomic_write(folder / f"{stem}_keyframes.csv", buffer.getvalue()))
    return written
