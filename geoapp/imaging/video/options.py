"""What keyframe extraction does (:class:`KeyframeOptions`) and how far it may go (:class:`VideoLimits`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

MODES = ("auto", "keyframes", "sampled")


@dataclass(frozen=True)
class KeyframeOptions:
    """How shots and keyframes are chosen (the defaults suit a few minutes of social-media footage)."""

    max_per_shot: int = 3  # keyframes kept per shot (the sharpest that differ from each other)
    max_per_video: int = 60  # keyframes kept per video (first picks of the longest shots first)
    # auto: decode the codec's keyframes only (intra frames, where encoders put cuts), and decode a
    # group of pictures fully only where keyframes are further apart than max_keyframe_gap_s;
    # keyframes: intra frames only; sampled: decode every frame, analyse one per sample_interval_s.
    mode: str = "auto"
    max_keyframe_gap_s: float = 20.0  # auto: longer gaps between intra frames are filled by sampling
    sample_interval_s: float = 2.0  # sampled mode and gap filling: one analysed frame per interval (0: all)
    seek: bool = True  # where the container indexes every frame (MP4/MOV), jump from keyframe to keyframe
    distinct_bits: int = 10  # perceptual hashes closer than this many bits (of 64) are the same view
    distinct_across_shots: bool = True  # a view already kept from an earlier shot is not kept again
    cut_threshold: float = 27.0  # PySceneDetect ContentDetector threshold (HSV change, 0-255)
    min_shot_s: float = 0.5  # cuts closer than this merge (flash filter)
    analysis_width: int = 256  # frames are analysed (hash, sharpness, cuts) at this width
    output_max_side: int = 1920  # keyframe images are handed on at most this large (8K -> 1920)
    file_sha256: bool = False  # hash the whole file (the CLI and cases do; costs a read of the file)

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        for name in ("max_per_shot", "max_per_video", "analysis_width", "output_max_side"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}")
        if not 0 <= self.distinct_bits <= 64:
            raise ValueError(f"distinct_bits must be between 0 and 64; got {self.distinct_bits}")
        for name in ("max_keyframe_gap_s", "sample_interval_s", "min_shot_s", "cut_threshold"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be 0 or more; got {getattr(self, name)}")
        if self.analysis_width < 32:
            raise ValueError(f"analysis_width must be at least 32 pixels; got {self.analysis_width}")


@dataclass(frozen=True)
class VideoLimits:
    """Caps for untrusted videos. A file over a refusal cap is refused with a message; the others stop the
    analysis early, keep what was decoded so far and say so."""

    max_file_mb: float = 4096.0  # refused above (the app's upload limit comes on top)
    max_streams: int = 64  # refused above: no ordinary video has more
    max_frame_pixels: int = 8192 * 8192  # refused above (8K UHD is 33 M: decoded, analysed at reduced size)
    max_duration_s: float = 3 * 3600.0  # frames after this time are not analysed
    max_decoded_frames: int = 400_000  # decoding stops here (4.4 h at 25 fps)
    max_analysed_frames: int = 20_000  # analysis stops here
    max_damaged_packets: int = 200  # decoding stops after this many undecodable packets
    max_buffered_mb: float = 64.0  # compressed data held back while deciding whether to fill a keyframe gap

    def check(self) -> None:
        for f in fields(self):
            if not float(getattr(self, f.name)) > 0:
                raise ValueError(f"{f.name} must be positive; got {getattr(self, f.name)}")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)
