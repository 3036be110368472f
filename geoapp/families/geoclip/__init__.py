"""GeoCLIP (Vivanco et al., NeurIPS 2023): image-to-GPS retrieval over a gallery of locations.

The spec only (no torch): :mod:`.loader` builds the shared retrieval locator (:mod:`geoapp.families.retrieval`)
with the CLIP image tower on first use.
"""

from __future__ import annotations

from geoapp.families.base import Capabilities
from geoapp.families.registry import FamilySpec, register
from geoapp.families.retrieval.options import refine_options
from geoapp.models import weights as w

SPEC = register(FamilySpec(
    key="geoclip",
    label="GeoCLIP",
    description="CLIP ViT-L/14 image features matched against a 100K GPS gallery, plus a dense grid inside a "
                "region (Vivanco et al., 2023)",
    loader="geoapp.families.geoclip.loader:load",
    capabilities=Capabilities(text=True, tencrop=True, region=True, gradcam=True),
    weight_files=(w.GEOCLIP_LOCATION_ENCODER, w.GEOCLIP_IMAGE_HEAD, w.GEOCLIP_LOGIT_SCALE, w.GEOCLIP_GALLERY,
                  w.CLIP_VIT_L14_OPENAI),
    auto_priority=100,
    # Refinement off: its effect on accuracy cannot be measured here (no real CLIP weights); users decide with
    # `python -m training.evaluate --compare-refinement` (benchmarks/RESULTS.md, "Fine refinement").
    options=refine_options(0.0),
    test_options={"backbone": "tiny-test"},
    paper="GeoCLIP: Clip-Inspired Alignment between Locations and Images for Effective Worldwide Geo-localization",
))
