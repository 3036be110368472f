"""The public entry point: ``Geolocator.load(model, ...)`` -> a loaded model family.

Every family (GeoCLIP, SatWorld, TransLocator, the ensemble, user variants ``family:tag``) has the
same prediction API (:class:`~geoapp.families.base.Family`): ``predict``, ``predict_batch``,
``describe``, ``restrict``, ``explain``, ``text_map`` where capable. Which families exist is the
registry's business (:mod:`geoapp.families.registry`); nothing here names one.
"""

from __future__ import annotations

from pathlib import Path

from geoapp.families import AUTO, Family, LoadOptions, choose, families, load
from geoapp.families.base import DEFAULT_MERGE_KM, REGION_EXTRA_POINTS
from geoapp.families.registry import preferred

AUTO_MODEL = AUTO
__all__ = ["AUTO_MODEL", "DEFAULT_MERGE_KM", "REGION_EXTRA_POINTS", "Geolocator", "choose_model", "model_keys"]


class Geolocator:
    """Factory for geolocators (kept as the public name; the objects it returns are families)."""

    @staticmethod
    def load(model: str | None = None, device: str | None = None, backbone_weights: str | Path | None = None, *,
             checkpoint: str | Path | None = None, **extras) -> Family:
        """Load ``model`` (a registry key, ``family:tag``, or ``"auto"``; default: the family ``auto``
        ranks first, GeoCLIP, whether or not its weights are here).

        ``backbone_weights``: None (real pretrained weights from the local cache; fails at once with
        the fix when missing), ``"random"`` (real architecture, random weights: every result is
        flagged), or a backbone checkpoint path. ``checkpoint``: the family's own trained checkpoint.
        Family-specific keywords (``backbone``, ``gallery``, ``cache_dir``, ``segmenter`` ...) pass through.
        """
        weights = None if backbone_weights is None else str(backbone_weights)
        return load(model or preferred().key, device, weights, checkpoint=checkpoint, **extras)


def choose_model(model: str = AUTO, backbone_weights: str | Path | None = None) -> tuple[str, str | None]:
    """Resolve ``"auto"`` to a family key; returns (key, notice explaining a fallback, or None)."""
    options = LoadOptions(backbone_weights=None if backbone_weights in (None, "") else str(backbone_weights))
    spec, notice = choose(model, options)
    return spec.key, notice


def model_keys() -> list[str]:
    """Every family and variant key (for choices and help texts)."""
    return [spec.key for spec in families()]
