"""Per-frame measurements at a small size: sharpness (variance of the Laplacian) and a perceptual hash,
and the frame handed on (display orientation, at most ``output_max_side`` pixels: 8K is never converted
to RGB at full size)."""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image


@dataclass
class FrameSample:
    """One analysed frame."""

    time_s: float
    pts: int | None
    intra: bool  # a codec keyframe (else a sampled frame)
    small: np.ndarray  # RGB uint8 at the analysis width, display orientation
    sharpness: float
    phash: imagehash.ImageHash


def _rotate(array: np.ndarray, rotation: int) -> np.ndarray:
    """Display orientation: ``rotation`` degrees counter-clockwise (multiples of 90; others are ignored)."""
    turns = (round(rotation / 90) % 4) if rotation % 90 == 0 else 0
    return np.rot90(array, k=turns) if turns else array


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most ``max_side``; even sizes for the YUV converter."""
    scale = max_side / max(width, height, 1)
    if scale >= 1:
        return width, height
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for defocused or motion-blurred frames."""
    g = gray.astype(np.float32)
    laplacian = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(laplacian.var()) if laplacian.size else 0.0


def analyse(frame, time_s: float, rotation: int, width: int) -> FrameSample:
    """Measure one decoded ``av.VideoFrame`` with its longer side at ``width`` pixels (aspect kept)."""
    size = scaled_size(frame.width, frame.height, width)
    small = _rotate(frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray(),
                    rotation)
    gray = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return FrameSample(time_s=time_s, pts=frame.pts, intra=bool(frame.key_frame), small=np.ascontiguousarray(small),
                       sharpness=sharpness(gray), phash=imagehash.phash(Image.fromarray(gray.astype(np.uint8))))


def display_image(frame, rotation: int, max_side: int) -> Image.Image:
    """The frame as an RGB PIL image in display orientation, converted directly at the reduced size."""
    width, height = scaled_size(frame.width, frame.height, max_side)
    if (width, height) == (frame.width, frame.height):
        array = frame.to_ndarray(format="rgb24")
    else:
        array = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    return Image.fromarray(np.ascontiguousarray(_rotate(array, rotation)))
