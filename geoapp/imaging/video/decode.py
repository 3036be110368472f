"""Which frames get decoded and analysed: the codec's keyframes, and samples where those are too sparse.

Encoders put an intra frame (a *keyframe*) at every cut they detect and every few seconds, so decoding
only those — sending just their packets to the decoder, never the frames that depend on them — sees
every shot at a fraction of the cost of decoding everything. Where the container indexes every frame (MP4,
MOV) and the keyframes are close enough, the feed seeks from keyframe to keyframe and reads nothing else (a
fraction of the file from disk). Otherwise every packet is read; in ``auto`` mode the packets after a
keyframe are held back (compressed, capped) until the next keyframe arrives; if it does not come within
``max_keyframe_gap_s``, the held packets and the rest of that group of pictures are decoded and one
frame per ``sample_interval_s`` is analysed, so a video with rare keyframes is still covered.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import av

from .options import KeyframeOptions, VideoLimits


@dataclass
class DecodeStats:
    """What decoding did; ``stopped`` says why it ended early (None: it reached the end)."""

    packets: int = 0
    decoded_frames: int = 0
    analysed_frames: int = 0
    damaged_packets: int = 0
    corrupt_frames: int = 0
    filled_gaps: int = 0  # groups of pictures decoded in full because keyframes were too far apart
    stopped: str | None = None
    cancelled: bool = False
    seeking: bool = False  # keyframes reached through the container's index (nothing else read)
    last_time_s: float | None = None  # the last decoded frame's time
    last_packet_s: float | None = None  # the last packet's time (all packets are read, decoded or not)

    def to_dict(self) -> dict:
        return asdict(self)


class _Stop(Exception):
    """Decoding ends here; the reason is in the stats."""


def _seconds(value, time_base, start: float) -> float | None:
    return None if value is None or not time_base else float(value * time_base) - start


class FrameFeed:
    """Iterate ``(frame, time_s)`` over the frames to analyse, in presentation order, within the caps."""

    def __init__(self, container, stream, options: KeyframeOptions, limits: VideoLimits,
                 should_stop: Callable[[], bool] | None = None):
        self.container, self.stream = container, stream
        self.options, self.limits = options, limits
        self.should_stop = should_stop or (lambda: False)
        self.stats = DecodeStats()
        self.time_base = stream.time_base  # kept: nothing of the stream may be read once the container is closed
        self.start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        self.decoder = stream.codec_context
        self.decoder.thread_type = "AUTO"
        self._next_sample = -math.inf
        self._last_time: float | None = None
        self._packet_pts = array("q")  # every packet's timestamp: the real frame rate, variable or not

    # ------------------------------------------------------------------ packets in
    def __iter__(self) -> Iterator[tuple[object, float]]:
        keys = self._keyframe_index()
        self.stats.seeking = keys is not None
        if keys is not None:
            self.decoder.thread_type = "SLICE"  # one frame at a time: frame threads would only add start-up work
            return self._seeking(keys)
        return self._reading()

    def _keyframe_index(self) -> list[int] | None:
        """The keyframes' decoding timestamps when seeking to them is enough: the container indexes every frame
        and (auto mode) no two keyframes are further apart than ``max_keyframe_gap_s``. None: read everything."""
        if self.options.mode == "sampled" or not self.options.seek or not self.time_base:
            return None
        entries, frames = self.stream.index_entries, self.stream.frames
        if not entries or not frames or len(entries) != frames:
            return None
        stamps = [entry.timestamp for entry in entries]
        keys = [entry.timestamp for entry in entries if entry.is_keyframe]
        if not keys:
            return None
        base = float(self.time_base)
        if self.options.mode == "auto":
            bounds = [*keys, max(stamps)]
            if max(b - a for a, b in zip(bounds, bounds[1:])) * base > self.options.max_keyframe_gap_s:
                return None
        self._packet_pts.extend(stamps)
        self.stats.last_packet_s = max(stamps) * base - self.start
        return keys

    def _seeking(self, keys: list[int]) -> Iterator[tuple[object, float]]:
        second = int(round(1 / float(self.time_base)))
        try:
            for i, dts in enumerate(keys):
                if self.should_stop():
                    self.stats.cancelled, self.stats.stopped = True, "cancelled"
                    return
                # seeking works on presentation times, which come a few frames after the decoding times: aim
                # between this keyframe and the next so the seek lands on this one, then check that it did
                following = keys[i + 1] if i + 1 < len(keys) else dts + second
                try:
                    self.container.seek(dts + max(1, (following - dts) // 2), stream=self.stream, backward=True)
                    self.decoder.flush_buffers()
                    packet = self._packet_at(dts)
                except (av.error.FFmpegError, OSError):
                    packet = None
                if packet is None:
                    self._damaged(f"keyframe at t={dts * float(self.time_base):.2f} s not readable")
                    continue
                self.stats.packets += 1
                yield from self._decode(packet)
                yield from self._decode(None)  # one keyframe in, its frame out (the decoder is reset next time)
        except _Stop:
            return

    def _packet_at(self, dts: int):
        """The packet with this decoding timestamp, read forward from where the seek landed (None: missed)."""
        for count, packet in enumerate(self.container.demux(self.stream)):
            if packet.size == 0 or count > 2000 or (packet.dts is not None and packet.dts > dts):
                return None
            if packet.dts == dts:
                return packet
        return None

    def _damaged(self, what: str) -> None:
        self.stats.damaged_packets += 1
        if self.stats.damaged_packets > self.limits.max_damaged_packets:
            self.stats.stopped = f"more than {self.limits.max_damaged_packets} damaged packets (last: {what})"
            raise _Stop

    def _reading(self) -> Iterator[tuple[object, float]]:
        mode, gap = self.options.mode, self.options.max_keyframe_gap_s
        held: list = []
        held_bytes, key_time, filling = 0, None, mode == "sampled"
        try:
            for packet in self._packets():
                if mode == "sampled":
                    send = [packet]
                elif packet.is_keyframe:
                    held, held_bytes, filling = [], 0, False
                    key_time = self._packet_time(packet)
                    send = [packet]
                elif mode == "keyframes":
                    continue
                elif filling or key_time is None:  # filling a sparse group, or no keyframe seen yet
                    filling, send = True, [packet]
                else:
                    held.append(packet)
                    held_bytes += packet.size
                    when = self._packet_time(packet)
                    if (when is not None and when - key_time > gap) or held_bytes > self.limits.max_buffered_mb * 2**20:
                        self.stats.filled_gaps += 1
                        filling, send, held, held_bytes = True, held, [], 0
                    else:
                        continue
                for item in send:
                    yield from self._decode(item)
            yield from self._decode(None)  # drain the decoder's delayed frames
        except _Stop:
            return

    def _packets(self):
        demux = self.container.demux(self.stream)
        while True:
            if self.should_stop():
                self.stats.cancelled = True
                self.stats.stopped = "cancelled"
                return
            try:
                packet = next(demux)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as error:  # truncated or damaged container mid-way
                self.stats.stopped = f"the file ends early or is damaged after {self._where()} ({error.__class__.__name__})"
                return
            if packet.size == 0:
                continue  # the demuxer's end marker
            self.stats.packets += 1
            if packet.pts is not None:
                self._packet_pts.append(packet.pts)
                when = self._packet_time(packet)
                if self.stats.last_packet_s is None or when > self.stats.last_packet_s:
                    self.stats.last_packet_s = when
            yield packet

    # ------------------------------------------------------------------ frames out
    def _decode(self, packet) -> Iterator[tuple[object, float]]:
        try:
            frames = self.decoder.decode(packet)
        except (av.error.FFmpegError, ValueError) as error:
            if packet is not None:
                self._damaged(f"{error.__class__.__name__} after {self._where()}")
            return
        for frame in frames:
            self.stats.decoded_frames += 1
            if self.stats.decoded_frames > self.limits.max_decoded_frames:
                self.stats.stopped = f"decoded-frame limit reached ({self.limits.max_decoded_frames:,} frames)"
                raise _Stop
            if frame.width * frame.height > self.limits.max_frame_pixels:
                self.stats.stopped = (f"a {frame.width}×{frame.height} frame exceeds the limit of "
                                      f"{self.limits.max_frame_pixels:,} pixels")
                raise _Stop
            if frame.is_corrupt:
                self.stats.corrupt_frames += 1
                continue
            time_s = self._time(frame)
            if time_s > self.limits.max_duration_s:
                self.stats.stopped = (f"duration limit reached: only the first {self.limits.max_duration_s:g} s "
                                      "were analysed")
                raise _Stop
            self._last_time = self.stats.last_time_s = time_s
            if frame.key_frame or time_s >= self._next_sample - 1e-6:
                self._next_sample = time_s + self.options.sample_interval_s
                yield frame, time_s

    def measured_rate(self) -> tuple[float | None, bool | None]:
        """(average frames per second, variable?) from the packet timestamps seen (None when too few)."""
        if len(self._packet_pts) < 3 or not self.time_base:
            return None, None
        times = sorted(self._packet_pts)
        steps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
        if not steps:
            return None, None
        span = (times[-1] - times[0]) * float(self.time_base)
        low, high = steps[len(steps) // 20], steps[(len(steps) * 19) // 20]
        return ((len(times) - 1) / span if span > 0 else None), high > 1.2 * low

    def _packet_time(self, packet) -> float | None:
        return _seconds(packet.pts if packet.pts is not None else packet.dts,
                        packet.time_base or self.time_base, self.start)

    def _time(self, frame) -> float:
        time_s = _seconds(frame.pts, frame.time_base or self.time_base, self.start)
        if time_s is None:  # no timestamp: one frame period after the previous frame
            rate = float(self.stream.average_rate or 25)
            time_s = (self._last_time or 0.0) + 1.0 / rate if self._last_time is not None else 0.0
        return max(0.0, time_s)

    def _where(self) -> str:
        return "the start" if self._last_time is None else f"t={self._last_time:.2f} s"
