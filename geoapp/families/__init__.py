"""Model families: one package each, one registration each, one contract for all.

``geoapp.families.get(KEY).load(...)`` or, the public way, ``geoapp.Geolocator.load(KEY)`` (keys:
``python -m geoapp models``).
See :mod:`.base` (the contract), :mod:`.registry` (specs, lookup, ``auto``) and :mod:`.variants`
(user-trained ``family:tag`` variants). Torch is imported only when a family is loaded.
"""

from __future__ import annotations

from geoapp.families.base import (AERIAL_IMAGE, GROUND_PHOTO, Capabilities, CapabilityError, CandidateSpace,
                                  EvidenceItem, Family, FamilyIdentity, GradCamResult, PredictOptions)
from geoapp.families.registry import (AUTO, DEFAULT_KEY, FamilyOption, FamilySpec, LoadOptions, UnknownFamilyError, choose,
                                      families, get, keys, register, text_families, unregister)

__all__ = [
    "AERIAL_IMAGE", "AUTO", "DEFAULT_KEY", "GROUND_PHOTO", "Capabilities", "CapabilityError", "CandidateSpace", "EvidenceItem",
    "Family", "FamilyIdentity", "FamilyOption", "FamilySpec", "GradCamResult", "LoadOptions", "PredictOptions",
    "UnknownFamilyError", "choose", "families", "get", "keys", "load", "register", "text_families", "unregister",
]


def load(model: str = AUTO, device: str | None = None, backbone_weights: str | None = None, *,
         checkpoint=None, **extras) -> Family:
    """Load a family by key (``auto``: the best one that can run here; see :func:`choose`)."""
    options = LoadOptions(device=device, backbone_weights=backbone_weights, checkpoint=checkpoint, extras=extras)
    spec, _ = choose(model, options)
    return spec.load(options)
