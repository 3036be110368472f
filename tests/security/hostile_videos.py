"""Hostile video files, generated in the tests (nothing third-party): each function writes one to ``path``."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def truncated(source: Path, path: Path, keep: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def damaged(source: Path, path: Path, at: float, length: int = 3000) -> Path:
    """Random bytes over ``length`` bytes at ``at`` (a fraction of the file): frames broken mid-stream."""
    data = bytearray(source.read_bytes())
    start = int(len(data) * at)
    data[start:start + length] = np.random.default_rng(0).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def garbage_stream(source: Path, path: Path) -> Path:
    """The container and timestamps of ``source`` (H.264 in Matroska), every packet's payload random."""
    rng = np.random.default_rng(0)
    with av.open(str(source)) as src, av.open(str(path), "w", format="matroska") as dst:
        inp = src.streams.video[0]
        out = dst.add_stream_from_template(inp)
        for packet in src.demux(inp):
            if packet.size:
                junk = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                junk.pts, junk.dts, junk.time_base, junk.stream = packet.pts, packet.dts, packet.time_base, out
                dst.mux(junk)
    return path


def audio_only(path: Path) -> Path:
    """An M4A (AAC in MP4): a video container with no picture."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _h264(path: Path, fmt: str, size: tuple[int, int], rate: int, pictures, millis: bool = False) -> Path:
    """Encode ``(picture, pts)`` pairs with libx264 (ultrafast); ``millis``: pts in milliseconds, all intra."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "ultrafast"}
        if millis:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for picture, pts in pictures:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = pts
            if millis:
                frame.time_base, frame.pict_type = Fraction(1, 1000), av.video.frame.PictureType.I
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def long_by_timestamps(path: Path, hours: float = 4.0, frames: int = 6) -> Path:
    """A few tiny frames spread over ``hours``: a 4-hour video in a few KB (Matroska, millisecond times)."""
    def pictures():
        for i in range(frames):
            picture = np.full((48, 64, 3), (40 * i) % 256, np.uint8)
            picture[:, : 8 * (i + 1)] = 255 - picture[:, : 8 * (i + 1)]
            yield picture, int(i * hours * 3600_000 / (frames - 1))

    return _h264(path, "matroska", (64, 48), 1, pictures(), millis=True)


def low_res_long(path: Path, frames: int = 3000) -> Path:
    """Five minutes at 10 fps, 64x36 (cheap to make, 3 000 frames to decode)."""
    return _h264(path, "matroska", (64, 36), 10,
                 ((np.full((36, 64, 3), (i * 3) % 255, np.uint8), i) for i in range(frames)))


def eight_k(path: Path) -> Path:
    """Two 7680x4320 frames (H.264): left half red, white lines every 64 rows."""
    picture = np.zeros((4320, 7680, 3), np.uint8)
    picture[:, :3840] = (200, 30, 30)
    picture[::64] = 255
    return _h264(path, "mp4", (7680, 4320), 10, ((picture, i) for i in range(2)))


# ---------------------------------------------------------------- a Matroska file written by hand (EBML)
def _element(ident: bytes, payload: bytes) -> bytes:
    return ident + b"\x01" + len(payload).to_bytes(7, "big") + payload  # 8-byte size field


def _uint(ident: bytes, value: int) -> bytes:
    return _element(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _text(ident: bytes, value: str) -> bytes:
    return _element(ident, value.encode("ascii"))


def many_tracks(path: Path, extra_tracks: int) -> Path:
    """A valid Matroska file: one MJPEG video track (3 frames) and ``extra_tracks`` empty subtitle tracks.
    (PyAV's muxer cannot write that many streams, so the EBML is written directly.)"""
    header = _element(b"\x1a\x45\xdf\xa3", _uint(b"\x42\x86", 1) + _uint(b"\x42\xf7", 1) + _uint(b"\x42\xf2", 4)
                      + _uint(b"\x42\xf3", 8) + _text(b"\x42\x82", "matroska") + _uint(b"\x42\x87", 4)
                      + _uint(b"\x42\x85", 2))
    info = _element(b"\x15\x49\xa9\x66", _uint(b"\x2a\xd7\xb1", 1_000_000) + _text(b"\x4d\x80", "geoapp-tests")
                    + _text(b"\x57\x41", "geoapp-tests"))
    video = _element(b"\xae", _uint(b"\xd7", 1) + _uint(b"\x73\xc5", 1) + _uint(b"\x83", 1) + _text(b"\x86", "V_MJPEG")
                     + _element(b"\xe0", _uint(b"\xb0", 64) + _uint(b"\xba", 48)))
    others = b"".join(_element(b"\xae", _uint(b"\xd7", 2 + i) + _uint(b"\x73\xc5", 2 + i) + _uint(b"\x83", 0x11)
                               + _text(b"\x86", "S_TEXT/UTF8")) for i in range(extra_tracks))
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, "JPEG")
    blocks = b"".join(_element(b"\xa3", b"\x81" + (i * 100).to_bytes(2, "big") + b"\x80" + buffer.getvalue())
                      for i in range(3))
    cluster = _element(b"\x1f\x43\xb6\x75", _uint(b"\xe7", 0) + blocks)
    path.write_bytes(header + _element(b"\x18\x53\x80\x67", info + _element(b"\x16\x54\xae\x6b", video + others)
                                       + cluster))
    return path
