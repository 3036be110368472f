"""Load SatWorld into the GeoCLIP retrieval locator."""

from __future__ import annotations

import warnings

from geoapp.families.retrieval.locator import GeoCLIPLocator, build_locator
from geoapp.families.satworld.model import SatWorld, SatWorldConfig, load_satworld, pretrained_location_encoder
from geoapp.models.geoclip import ModelIdentity, state_digest


def load(spec, options) -> GeoCLIPLocator:
    """``options.checkpoint``: another SatWorld checkpoint (default: the shipped one). SatWorld has no
    separate backbone, so ``backbone_weights`` other than None is refused with the right flag."""
    checkpoint = options.checkpoint
    heads = options.extras.get("heads")
    if heads not in (None, "pretrained"):
        warnings.warn("heads=PATH for SatWorld is deprecated; pass checkpoint=PATH (CLI: --checkpoint)",
                      DeprecationWarning, stacklevel=3)
        checkpoint = checkpoint or heads
    if options.random:
        return build_locator(spec, *random_satworld(), options)
    if options.backbone_weights not in (None, ""):
        raise ValueError("SatWorld ships trained weights and has no separate backbone: drop --backbone-weights "
                         "(use --checkpoint PATH for another SatWorld checkpoint)")
    network, identity = load_satworld(checkpoint)
    return build_locator(spec, network, identity, options)


def random_satworld() -> tuple[SatWorld, ModelIdentity]:
    """The SatWorld architecture with random image-side weights (tests; every result is flagged)."""
    encoder, _ = pretrained_location_encoder()
    network = SatWorld(SatWorldConfig(), encoder).eval()
    identity = ModelIdentity(model="satworld", backbone=network.backbone.spec.name, backbone_weights="random",
                             heads_sha256=state_digest(network), random_weights=True)
    return network, identity
