"""Recognising, opening and describing a video file (:class:`VideoInfo`), with the refusal caps.

The container is recognised from its first bytes and opened with that one FFmpeg demuxer, never by
FFmpeg's own probing: probing would let a renamed playlist (HLS ``#EXTM3U``) or a concat script make
FFmpeg open other files or URLs. Only the file protocol is allowed.
"""

from __future__ import annotations

import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import av

from ..decoders import _guess_format, _looks_like_heif
from ..errors import _short_error
from ..paths import IMAGE_EXTENSIONS
from .errors import VideoLoadError
from .options import VideoLimits

#: Suffixes treated as video by the CLI (the content decides in the end: see :func:`sniff_container`).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mkv", ".webm", ".avi", ".ts", ".mts"})

# first bytes -> the FFmpeg demuxer allowed to read them (MP4/MOV/3GP, Matroska/WebM, AVI, MPEG-TS)
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_HEAD_BYTES = 4096


@dataclass
class VideoInfo:
    """What the container says about a video (and its first frame: rotation). ``to_dict()`` is JSON-ready."""

    name: str  # display name (messages, records); never opened
    file_size: int
    container: str  # mp4, matroska, avi, mpegts
    codec: str  # h264, hevc, vp9, av1, mpeg4 ...
    width: int  # as coded
    height: int
    duration_s: float | None
    frame_rate: float | None  # average frames per second
    variable_frame_rate: bool | None  # the container's nominal and average rates differ
    frames: int | None  # as declared by the container (None: not declared)
    streams: int
    audio_streams: int
    creation_time: str | None = None  # ISO 8601 UTC, when the container has it
    location: tuple[float, float] | None = None  # ISO 6709 position some cameras write (lat, lon)
    rotation: int = 0  # degrees counter-clockwise applied for display (from the display matrix)
    sha256: str | None = None  # of the whole file, when asked for (KeyframeOptions.file_sha256)
    metadata: dict[str, str] = field(default_factory=dict)  # container tags, size-capped

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["display_size"] = list(self.display_size)
        data["location"] = list(self.location) if self.location else None
        return data


def sniff_container(head: bytes) -> str | None:
    """The demuxer for these first bytes (``mov``, ``matroska``, ``avi``, ``mpegts``), or None."""
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return None if _looks_like_heif(head) else "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    return None


def is_video_path(path: str | os.PathLike) -> bool:
    """True for a local file with a video suffix, or without a photo suffix and a video container's first bytes."""
    p = Path(os.fspath(path))
    if p.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return False  # photos are not opened twice
    try:
        with open(p, "rb") as handle:
            return sniff_container(handle.read(512)) is not None
    except OSError:
        return False


def _what_else(head: bytes) -> str:
    """Name what a non-video file looks like, for the message."""
    image = _guess_format(head)
    if image:
        return f"the content is a {image} image (predict it as a photo under its own suffix)"
    audio = {b"ID3": "MP3 audio", b"fLaC": "FLAC audio", b"OggS": "Ogg data"}
    for magic, what in audio.items():
        if head.startswith(magic):
            return f"the content is {what}"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "the content is WAV audio"
    if head.lstrip().startswith(b"#EXTM3U"):
        return "the content is a playlist (HLS), which is never followed"
    if head.lstrip().startswith(b"ffconcat"):
        return "the content is an FFmpeg concat script, which is never followed"
    if head and all(32 <= b < 127 or b in b"\r\n\t" for b in head[:512]):
        return "the content is text"
    return "unrecognised content"


def _check_file(path: Path, name: str, limits: VideoLimits) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise VideoLoadError(name, "no such file") from e
    except OSError as e:
        raise VideoLoadError(name, f"cannot access the file ({_short_error(e)})") from e
    if not path.is_file():
        raise VideoLoadError(name, "not a regular file")
    if st.st_size == 0:
        raise VideoLoadError(name, "the file is empty (0 bytes)")
    if st.st_size > limits.max_file_bytes:
        raise VideoLoadError(name, f"the file is too large ({st.st_size / 2**20:.0f} MB; the limit is "
                                   f"{limits.max_file_mb:g} MB: raise max_file_mb / --max-video-mb)")
    with open(path, "rb") as handle:
        return handle.read(_HEAD_BYTES)


def _creation_time(tags: dict[str, str]) -> str | None:
    raw = tags.get("creation_time") or tags.get("date")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # QuickTime times are UTC
    if moment.year < 1971:  # an unset MP4 time reads as 1904 or 1970
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)")


def _location(tags: dict[str, str]) -> tuple[float, float] | None:
    """``+48.8584+002.2945+035.000/`` (ISO 6709, decimal degrees) -> (lat, lon)."""
    for key in ("location", "com.apple.quicktime.location.ISO6709", "location-eng"):
        match = _ISO6709.match((tags.get(key) or "").strip())
        if match:
            lat, lon = float(match.group(1)), float(match.group(2))
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                return lat, lon
    return None


def _tags(*sources) -> dict[str, str]:
    tags: dict[str, str] = {}
    for source in sources:
        for key, value in dict(source or {}).items():
            if len(tags) < 64:
                tags[str(key)[:64]] = str(value)[:256]
    return tags


def _video_stream(container, name: str):
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        audio = [s.codec_context.name for s in container.streams.audio if s.codec_context is not None]
        what = f"audio only ({', '.join(audio)})" if audio else "no audio or video stream"
        raise VideoLoadError(name, f"no video stream: {what}")
    return streams[0]


def _info(container, stream, name: str, size: int) -> VideoInfo:
    codec = stream.codec_context
    if codec is None:
        raise VideoLoadError(name, "the video codec is unknown to this FFmpeg build (no decoder)")
    base = float(stream.time_base or 0)
    duration = stream.duration * base if stream.duration and base else (
        container.duration / av.time_base if container.duration else None)
    average = float(stream.average_rate) if stream.average_rate else None
    nominal = float(stream.base_rate) if stream.base_rate else None
    vfr = None if not (average and nominal) else abs(nominal - average) / average > 0.01
    tags = _tags(container.metadata, stream.metadata)
    kind = container.format.name.split(",")[0]
    if kind == "mov" and tags.get("major_brand", "").strip() not in ("", "qt"):
        kind = "mp4"  # one FFmpeg demuxer reads both; the brand tells them apart
    return VideoInfo(
        name=name, file_size=size, container=kind, codec=getattr(codec.codec, "canonical_name", None) or codec.name,
        width=int(codec.width or 0), height=int(codec.height or 0), duration_s=duration, frame_rate=average,
        variable_frame_rate=vfr, frames=int(stream.frames) or None, streams=len(container.streams),
        audio_streams=len(container.streams.audio), creation_time=_creation_time(tags), location=_location(tags),
        metadata=tags)


@dataclass
class OpenedVideo:
    container: object  # av.container.InputContainer
    stream: object  # av.video.stream.VideoStream
    info: VideoInfo


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def open_video(path: str | os.PathLike, limits: VideoLimits, name: str | None = None):
    """Open ``path`` as a video with the checks above -> :class:`OpenedVideo` (closed on exit).

    Raises :class:`VideoLoadError` with the reason (empty, too large, not a video, no video stream,
    unknown codec, too many streams, frames too large, truncated before the index ...).
    """
    path = Path(path)
    name = name or path.name
    head = _check_file(path, name, limits)
    demuxer = sniff_container(head)
    if demuxer is None:
        raise VideoLoadError(name, f"not a video: {_what_else(head)}")
    # max_streams: FFmpeg stops creating streams past our limit (it would go on to 1000)
    options = {"protocol_whitelist": "file", "max_streams": str(limits.max_streams + 1)}
    try:
        container = av.open(str(path), format=demuxer, options=options, metadata_errors="replace")
    except av.error.FFmpegError as e:
        raise VideoLoadError(name, _open_error(path, demuxer, e)) from e
    try:
        if len(container.streams) > limits.max_streams:
            raise VideoLoadError(name, f"the container has more than {limits.max_streams} streams (the limit): "
                                       "not an ordinary video")
        stream = _video_stream(container, name)
        info = _info(container, stream, name, path.stat().st_size)
        if info.width * info.height > limits.max_frame_pixels:
            raise VideoLoadError(name, f"{info.width}×{info.height} frames exceed the limit of "
                                       f"{limits.max_frame_pixels:,} pixels")
        yield OpenedVideo(container, stream, info)
    finally:
        container.close()


def _has_mp4_index(path: Path) -> bool:
    """Whether the top-level boxes of an MP4/MOV file include its index (``moov``); cut-short recordings lack it."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        position = 0
        for _ in range(10_000):  # top-level boxes are few; a hostile file cannot make this loop long
            handle.seek(position)
            header = handle.read(16)
            if len(header) < 8:
                return False
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if kind == b"moov":
                return True
            if length == 1 and len(header) == 16:
                length = int.from_bytes(header[8:16], "big")
            if length < 8 or position + length > size:
                return False
            position += length
    return False


def _open_error(path: Path, demuxer: str, error: BaseException) -> str:
    detail = _short_error(error)
    if demuxer == "mov" and not _has_mp4_index(path):
        return "the file is truncated or damaged: its index ('moov' box) is missing (a recording or download cut short)"
    if isinstance(error, av.error.InvalidDataError):
        return f"the file is damaged or not a valid {demuxer} container ({detail})"
    return f"cannot open the video ({detail})"
