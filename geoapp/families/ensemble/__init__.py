"""Ensemble of TransLocator and GeoCLIP: pool union re-ranked by GeoCLIP similarity, linear mixture
(the rule is in :mod:`.locator`)."""

from __future__ import annotations

from geoapp.families.base import Capabilities
from geoapp.families.registry import FamilyOption, FamilySpec, register

SPEC = register(FamilySpec(
    key="ensemble",
    label="Ensemble: TransLocator + GeoCLIP",
    description="TransLocator cell probabilities mixed with GeoCLIP image-location similarity over the union of "
                "both models' candidates (rule in geoapp/families/ensemble/locator.py); needs both models",
    loader="geoapp.families.ensemble.locator:load",
    capabilities=Capabilities(text=True, tencrop=True, region=True, gradcam=True),
    members=("geoclip", "translocator"),
    options=(FamilyOption("geoclip_weight", float, 0.5, "ensemble: weight w of GeoCLIP in the mixture (0-1)"),),
    test_options={"backbone": "tiny-test", "segmenter": "tiny-test", "config": "tiny"},
))
