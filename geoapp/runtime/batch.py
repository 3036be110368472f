"""The batch loop every family shares, device choice, merge radius and record names."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from geoapp.geo.regions import Region
from geoapp.imaging import ImageLoadError, LoadedImage
from geoapp.results.prediction import DEFAULT_MERGE_KM, Prediction
from geoapp.settings import get_settings


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; a clear error for an unusable device."""
    if device is None or str(device) == "auto":
        device = get_settings().device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu")
    return resolved


@dataclass
class PendingImage:
    """A decoded input waiting for its batch's forward."""

    index: int
    image: object  # as given by the caller (path, bytes, ...)
    loaded: LoadedImage
    tensors: torch.Tensor
    load_ms: float


def run_batched(images: Iterable, prepare: Callable[[object], tuple[LoadedImage, torch.Tensor]],
                predict_pending: Callable[[list[PendingImage]], list[Prediction]],
                failed: Callable[[object, str], Prediction], on_error: str, batch_size: int,
                progress: Callable[[int], None] | None) -> list[Prediction]:
    """Decode each input, forward full batches, keep the input order.

    An input that cannot be read (:class:`ImageLoadError`) raises with ``on_error="raise"``, else
    gets ``failed(image, message)`` in its place and the batch carries on.
    """
    images = list(images)
    results: list[Prediction | None] = [None] * len(images)
    pending: list[PendingImage] = []

    def drain() -> None:
        if pending:
            for item, prediction in zip(pending, predict_pending(pending)):
                results[item.index] = prediction
                if progress:
                    progress(1)
            pending.clear()

    for index, image in enumerate(images):
        start = time.perf_counter()
        try:
            loaded, tensors = prepare(image)
        except ImageLoadError as error:
            if on_error == "raise":
                raise
            results[index] = failed(image, str(error))
            if progress:
                progress(1)
            continue
        pending.append(PendingImage(index, image, loaded, tensors, (time.perf_counter() - start) * 1000))
        if len(pending) >= max(1, int(batch_size)):
            drain()
    drain()
    return [r for r in results if r is not None]


def auto_merge_km(region: Region | None) -> float:
    """25 km worldwide; inside a region, finer (1/40 of its extent, at least 0.5 km) so small areas keep detail."""
    if region is None:
        return DEFAULT_MERGE_KM
    return float(min(DEFAULT_MERGE_KM, max(0.5, region.extent_km / 40)))


def source_name(image, loaded: LoadedImage | None) -> str:
    """The path as given for files (so batch records can be traced back), else the display name."""
    if isinstance(image, (str, Path)):
        return str(image)
    return loaded.name if loaded is not None else f"<{type(image).__name__}>"


def record_parameters(top_k: int, tencrop: bool, candidates, merge_km: float | None, **extra) -> dict:
    """The parameters every record carries (``candidates``: anything with ``region``, ``coords``,
    ``gallery_points`` and ``extra_points``); family-specific ones are added as keywords."""
    return {
        "top_k": int(top_k),
        "tencrop": bool(tencrop),
        "region": candidates.region.key if candidates.region is not None else None,
        "merge_km": merge_km,
        "candidate_points": int(len(candidates.coords)),
        "gallery_points": int(candidates.gallery_points),
        "extra_region_points": int(getattr(candidates, "extra_points", 0) or 0),
        **extra,
    }


def failed_record(image, message: str, parameters: dict | None = None) -> Prediction:
    """The record of an input that could not be read (the family adds its identity)."""
    return Prediction(source=source_name(image, None), error=message, parameters=dict(parameters or {}))
