"""Map-tile family (Kim, Jang & Kim, "Hierarchical Image Geolocalization Using ViT-based Encoders and
Satellite Map Images"): a photo embedding compared with map-tile embeddings, zoom level by zoom level,
keeping the best k tiles and splitting each into the 4×4 tiles two zooms down.

The spec only (no torch). Encoders and checkpoints in :mod:`.model`, the beam search in
:mod:`.search`, tile embeddings and their disk cache in :mod:`.embedding`, evidence (search path on
the map, best tiles) in :mod:`.evidence`, the locator in :mod:`.locator`; trained by
``python -m training.maptiles.train``.
"""

from __future__ import annotations

from geoapp.families.base import AERIAL_IMAGE, Capabilities
from geoapp.families.registry import FamilyOption, FamilySpec, register
from geoapp.models import weights as w

SHIPPED_ZOOMS = (1, 3, 5)  # the levels of assets/maptiles/maptiles-crossview.pt (a test reads the file and checks)
TRAIN_COMMAND = "python -m training.maptiles.train --preset crossview-small --out runs/maptiles"
CROSSVIEW_CAVEAT = ("Map-tile model shipped as an OFFLINE CROSS-VIEW DEMONSTRATION: trained here from scratch to match "
                    "renderings of the NASA shaded-relief raster with Blue Marble map tiles. It is not a "
                    "ground-photo model: for a ground-level photo its answer says nothing about where it was taken.")
CHECKPOINT = w.WeightFile(
    key="maptiles/checkpoint",
    description="map-tile encoders per zoom level, cross-view demonstration trained by this project (~3 MB)",
    filename="maptiles-crossview.pt",
    source="asset:assets/maptiles/maptiles-crossview.pt",
    licence="MIT (this project; NASA rasters are public domain)",
    how_to_get=f"restore it with `git checkout -- assets/maptiles/`, or train one with `{TRAIN_COMMAND}` and pass "
               "--checkpoint",
)

SPEC = register(FamilySpec(
    key="maptiles",
    label="Map tiles (hierarchical beam search)",
    description="Compares the photo with map tiles zoom level by zoom level (paper: zoom 4, 6, …, 16), keeping the "
                "k best tiles and splitting each into 16 tiles two zooms down; tile embeddings are cached on disk "
                "(`python -m geoapp tiles embed`). Shows the search path on the map and the best tiles.",
    loader="geoapp.families.maptiles.locator:load",
    input_domain=AERIAL_IMAGE,  # the shipped checkpoint takes raster renderings; a CLIP-preset checkpoint: photos
    caveat=CROSSVIEW_CAVEAT,
    capabilities=Capabilities(text=False, tencrop=False, region=True, gradcam=True),
    weight_files=(w.CLIP_VIT_B32_OPENAI, CHECKPOINT),
    options=(
        FamilyOption("beam_k", int, 16, "beam width: tiles kept at each zoom level (paper: 16, 32, 64)"),
        FamilyOption("seed_geoclip", int, 0, "GeoCLIP-seeded search: the tiles of GeoCLIP's top N candidates join "
                                             "the beam at every level (0 = off; needs GeoCLIP's weights)"),
    ),
    cli_commands="geoapp.families.maptiles.commands:add_commands",  # python -m geoapp tiles embed
    test_options={"preset": "tiny", "levels": "1,3", "tiles": "synthetic"},
    paper="Hierarchical Image Geolocalization Using ViT-based Encoders and Satellite Map Images (Kim, Jang, Kim)",
))
