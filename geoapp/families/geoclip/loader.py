"""Load GeoCLIP (CLIP image tower + GeoCLIP heads) into the shared retrieval locator."""

from __future__ import annotations

from geoapp.families.retrieval.locator import GeoCLIPLocator, build_locator
from geoapp.runtime.batch import resolve_device


def load(spec, options) -> GeoCLIPLocator:
    """Registry loader. ``options.backbone_weights``: None (OpenAI CLIP from the local cache; fails at
    once with the fix when missing), "random" (flagged test runs) or an open_clip checkpoint path.
    ``options.checkpoint``: trained GeoCLIP heads (``training.train_geoclip``); extras: ``backbone``
    (default ViT-L-14), ``heads`` (same as checkpoint), ``gallery`` (CSV path or PrebuiltGallery folder),
    ``cache_dir``, ``index`` (auto | exact | flat | ivf-flat | ivf-pq), ``index_top`` (points retrieved)."""
    from geoapp.models.backbones import BACKBONES
    from geoapp.models.geoclip import build_geoclip

    backbone = options.extras.get("backbone") or "ViT-L-14"
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; available: {', '.join(BACKBONES)}")
    heads = options.checkpoint or options.extras.get("heads") or "pretrained"
    resolve_device(options.device)  # a bad device fails before the backbone is built
    network, identity = build_geoclip(backbone, options.backbone_weights, heads)
    return build_locator(spec, network, identity, options)
