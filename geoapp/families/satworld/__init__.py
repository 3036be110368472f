"""SatWorld: the small offline model that ships with the app, for satellite/aerial imagery only.

GeoCLIP's retrieval (same locator, gallery and region prior) with a small ViT trained here on NASA
Blue Marble crops (``python -m training.satworld.train``; ``assets/satworld/MODEL_CARD.md``).
"""

from __future__ import annotations

from geoapp.families.base import AERIAL_IMAGE, Capabilities
from geoapp.families.registry import FamilySpec, register
from geoapp.families.retrieval.options import refine_options
from geoapp.models import weights as w

CAVEAT = ("SatWorld model: trained on satellite/aerial imagery (NASA Blue Marble crops); it is not made for "
          "ground-level photos, so for those its answer says nothing about where the photo was taken.")
CHECKPOINT = w.WeightFile(
    key="satworld/checkpoint",
    description="SatWorld model (small ViT + image head, trained by this project; ~2.3 MB)",
    filename="satworld.pt",
    source="asset:assets/satworld/satworld.pt",
    licence="MIT (this project; NASA Blue Marble imagery is public domain)",
)

SPEC = register(FamilySpec(
    key="satworld",
    label="SatWorld (satellite/aerial imagery only)",
    description="Small model trained here on NASA Blue Marble satellite crops; ships with the app and runs "
                "offline. Not made for ground-level photos.",
    loader="geoapp.families.satworld.loader:load",
    image_encoder="geoapp.families.satworld.model:image_encoder",
    input_domain=AERIAL_IMAGE,
    caveat=CAVEAT,
    capabilities=Capabilities(text=False, tencrop=True, region=True, gradcam=True),
    weight_files=(w.GEOCLIP_LOCATION_ENCODER, w.GEOCLIP_GALLERY, CHECKPOINT),
    auto_priority=10,
    # Refinement off: on SatWorld's 2 000 held-out test crops it changed no accuracy measurably (McNemar p = 1 at
    # every threshold) and costs several times the prediction (benchmarks/RESULTS.md, "Fine refinement").
    options=refine_options(0.0),
    test_options={},
))
