"""Regional models ("Sweden or Switzerland", Engdahl & Heubi): heads on frozen image features for an
area of a few countries, built from the analyst's own geotagged photos.

The spec only (no torch). Each model is a variant ``regional:NAME`` written by
``python -m training.regional build``; the plain ``regional`` key has no weights of its own.
Heads in :mod:`.heads`, checkpoint and decoding in :mod:`.model`, features in :mod:`.backbone`,
the locator in :mod:`.locator`, reference matches in :mod:`.evidence`.
"""

from __future__ import annotations

from geoapp.families.base import GROUND_PHOTO, Capabilities
from geoapp.families.registry import FamilyBuilder, FamilySpec, register
from geoapp.models import weights as w

BUILD_COMMAND = "python -m training.regional build PHOTOS/ --countries SE,CH --method cells-up --name my-area"
CHECKPOINT = w.WeightFile(
    key="regional/checkpoint",
    description="regional model built from your own geotagged photos (head, cells/gallery, reference features)",
    filename="model.pt",
    source="local:regional",
    licence="yours (built from your photos)",
    how_to_get=f"build one with `{BUILD_COMMAND}` (see training/README.md), then choose --model regional:my-area",
)

SPEC = register(FamilySpec(
    key="regional",
    label="Regional model",
    description="A model for a few countries built from your own geotagged photos (country classifier, offset "
                "regression, cells, or Fourier-feature retrieval on frozen features); shows the most similar "
                "photos of your collection with every prediction.",
    loader="geoapp.families.regional.locator:load",
    input_domain=GROUND_PHOTO,
    caveat=None,  # set per model from what it was trained on (see RegionalLocator.describe)
    capabilities=Capabilities(text=False, tencrop=True, region=True, gradcam=False),
    weight_files=(CHECKPOINT,),
    builder=FamilyBuilder(
        module="training.regional",
        methods=("cells-up", "cells-up-paper", "cells-down", "cells-consolidated", "offset", "retrieval-rff",
                 "retrieval-mlp", "hybrid", "classifier"),
        default_method="cells-up",
        help="Photos with EXIF GPS (or a CSV path,lat,lon) in the chosen countries; the model keeps their features "
             "and thumbnails to show the most similar ones with every prediction. 80 % of the photos train it, "
             "10 % decide when to stop, 10 % measure it.",
        backbones=(("Automatic: CLIP ViT-L/14 when its weights are here, else SatWorld", "auto"),
                   ("CLIP ViT-L/14 (ground-level photos; needs its weights)", "ViT-L-14"),
                   ("SatWorld encoder (satellite/aerial imagery; weak on ground-level photos)", "satworld")),
        default_backbone="auto",
    ),
    variants_only=True,  # each regional model is a variant regional:NAME
    test_options={"method": "cells", "countries": "SE,CH"},
    paper="Sweden or Switzerland - GeoLocation on Noisy Datasets (Engdahl, Heubi)",
))
