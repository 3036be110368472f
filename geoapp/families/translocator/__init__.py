"""TransLocator (Pramanick et al., ECCV 2022): dual-branch ViT over the photo and its ADE20K
segmentation, classifying S2 geocells at three levels plus the scene.

The spec only (no torch): the locator is in :mod:`.locator`, Grad-CAM in :mod:`.explain`, the
evidence items (segmentation, scene, branch weights) in :mod:`.results`.
"""

from __future__ import annotations

from dataclasses import replace

from geoapp.families.base import Capabilities
from geoapp.families.registry import FamilySpec, register
from geoapp.models import weights as w

CHECKPOINT = w.WeightFile(
    key="translocator/checkpoint",
    description="TransLocator checkpoint (trained by you: model, geocells, config)",
    filename="translocator.pt",
    source="local:translocator",
    licence="yours (trained on your data)",
    how_to_get="train one with `python -m training.translocator.train` (see training/README.md), then pass "
               "--checkpoint PATH or put it in $GEOAPP_WEIGHTS_DIR or assets/translocator/",
)

SPEC = register(FamilySpec(
    key="translocator",
    label="TransLocator",
    description="Dual-branch ViT over the photo and its ADE20K segmentation, classifying S2 geocells "
                "(Pramanick et al., 2022); needs a trained checkpoint (or --backbone-weights random)",
    loader="geoapp.families.translocator.locator:load",
    capabilities=Capabilities(text=False, tencrop=True, region=True, gradcam=True),
    # The default segmenter is needed for real results; Places365 only labels training photos.
    weight_files=(CHECKPOINT, replace(w.SEGFORMER_B2_ADE20K, optional=False), w.PLACES365_RESNET18,
                  w.PLACES365_RESNET50),
    test_options={"segmenter": "tiny-test", "config": "tiny"},
    paper="Where in the World is this Image? Transformer-based Geo-localization in the Wild",
))
