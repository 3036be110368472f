"""Videos as case evidence: the file is one evidence item (SHA-256, container facts, duration), and its keyframes
are evidence derived from it (``kind="frame"``, ``parent_id`` = the video, ``time_s``, shot, pHash), each a JPEG
stored by its own SHA-256. Frames are images: they are analysed, reported and bundled like photos; the video's
file travels in bundles too (hash-verified on import like every object).

The video and its frames are added in one transaction: a video whose file cannot be read adds nothing.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .errors import CaseError, CaseInputError, DuplicateEvidenceError
from .models import Evidence, new_id, utcnow
from .records import display_name, jsonable

MAX_VIDEO_BYTES = 512 * 1024 * 1024  # a bundle's per-file limit: a stored video must be importable elsewhere
FRAME_JPEG_QUALITY = 92


@dataclass
class VideoEvidence:
    video: Evidence
    frames: list[Evidence]
    notes: list[str]


def add_video_file(store, case_id: str, path: str | os.PathLike, *, actor: str | None = None,
                   options=None, limits=None) -> VideoEvidence:
    """Add a video and its keyframes to a case (see the module). ``options``/``limits``: how keyframes are chosen
    (``geoapp.imaging.video.KeyframeOptions`` / ``VideoLimits``)."""
    from geoapp.imaging.video import KeyframeOptions, VideoLimits, VideoLoadError, extract_keyframes

    actor = store._actor(actor)
    path = Path(path)
    shown = display_name(path.name)
    store.get_case_row(case_id)  # fail early, before decoding
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CaseInputError(f"{path}: cannot read it ({error.strerror})") from error
    if size > MAX_VIDEO_BYTES:
        raise CaseInputError(f"{shown}: {size} bytes is larger than the {MAX_VIDEO_BYTES} byte limit for case videos "
                             "(cut the part that matters, or add its frames as photos)")
    options = options or KeyframeOptions(file_sha256=True)
    if not options.file_sha256:
        options = replace(options, file_sha256=True)
    try:
        video = extract_keyframes(path, options, limits or VideoLimits(), name=shown)
    except VideoLoadError as error:
        raise CaseInputError(str(error)) from error
    if not video.keyframes:
        raise CaseInputError(f"{shown}: no keyframe could be read ({'; '.join(video.notes) or 'nothing decoded'})")
    info = video.info
    with path.open("rb") as handle:
        store.blobs.put_stream(handle, info.sha256, MAX_VIDEO_BYTES, what=f"video {shown}")
    now = utcnow()
    width, height = info.display_size
    video_row = Evidence(id=new_id(), case_id=case_id, sha256=info.sha256, original_name=shown,
                         format=(info.container or "video")[:20], file_size=size, width=int(width), height=int(height),
                         exif={}, added_at=now, added_by=actor, kind="video", parent_id=None, time_s=None,
                         media=jsonable({**info.to_dict(), "complete": video.complete, "notes": list(video.notes),
                                         "shots": len(video.shots), "keyframes": len(video.keyframes)}))
    frames, notes, seen = [], list(video.notes), {info.sha256}
    for frame in video.keyframes:
        buffer = io.BytesIO()
        frame.image.save(buffer, "JPEG", quality=FRAME_JPEG_QUALITY)
        data = buffer.getvalue()
        sha = store.blobs.put(data, what=f"frame {frame.source}")
        if sha in seen:
            notes.append(f"frame at {frame.time_s:.2f} s is identical to another: stored once")
            continue
        seen.add(sha)
        frames.append(Evidence(id=new_id(), case_id=case_id, sha256=sha, original_name=display_name(
            f"{shown}#t={frame.time_s:.2f}"), format="JPEG", file_size=len(data), width=frame.image.width,
            height=frame.image.height, exif={}, added_at=now, added_by=actor, kind="frame", parent_id=video_row.id,
            time_s=round(float(frame.time_s), 3),
            media=jsonable({"shot": frame.shot, "rank": frame.rank, "phash": frame.phash, "wall_time": frame.wall_time,
                            "sharpness": round(frame.sharpness, 2), "video_sha256": info.sha256})))
    try:
        with store._write() as session:
            case = store._lock_case(session, case_id)
            existing = session.scalar(sa.select(Evidence.id).where(Evidence.case_id == case_id,
                                                                   Evidence.sha256 == info.sha256))
            if existing:
                raise DuplicateEvidenceError(f"{shown} is already in this case as evidence {existing}", existing)
            session.add(video_row)
            session.flush()
            known = set(session.scalars(sa.select(Evidence.sha256).where(Evidence.case_id == case_id)))
            frames = [f for f in frames if f.sha256 not in known]
            session.add_all(frames)
            store._log(session, case, actor, "evidence.add", "evidence", video_row.id,
                       {"sha256": info.sha256, "name": shown, "size": size, "kind": "video",
                        "duration_s": info.duration_s, "frames": [f.id for f in frames]}, now)
    except IntegrityError as error:
        raise CaseError(f"Could not add {shown}: {error.orig}") from error
    return VideoEvidence(video_row, frames, notes)


def analysable(evidence: list, chosen_ids: list[str] | tuple[str, ...] = ()) -> list:
    """The evidence an analysis runs on: a video stands for its keyframes (the model reads images, and the
    frames are what it can place); with no choice, every photo and frame of the case."""
    frames_of: dict[str, list] = {}
    for item in evidence:
        if getattr(item, "kind", "image") == "frame" and item.parent_id:
            frames_of.setdefault(item.parent_id, []).append(item)
    by_id = {e.id: e for e in evidence}
    picked = [by_id[i] for i in chosen_ids if i in by_id] if chosen_ids else list(evidence)
    out, seen = [], set()
    for item in picked:
        for one in frames_of.get(item.id, []) if getattr(item, "kind", "image") == "video" else [item]:
            if one.id not in seen:
                seen.add(one.id)
                out.append(one)
    return out
