"""A toy model family defined entirely in the tests: proves a family is one package + one registration.

It is torch-free: the "model" scores three fixed places by the photo's mean colour. Importing this
module registers it (as a built-in family package would); ``$GEOAPP_FAMILY_PACKAGES=tests.families.toy``
makes a subprocess load it too.
"""

from __future__ import annotations

import numpy as np

from geoapp.families.base import (
    AERIAL_IMAGE,
    CandidateSpace,
    Capabilities,
    Family,
    FamilyIdentity,
)
from geoapp.families.registry import FamilyOption, FamilySpec, register
from geoapp.geo.regions import RegionError, parse_region
from geoapp.imaging import ImageLoadError, load_image
from geoapp.models.weights import WeightFile
from geoapp.results.prediction import build_prediction

PLACES = np.array([[48.8566, 2.3522], [40.7128, -74.0060], [-33.8688, 151.2093]])  # Paris, New York, Sydney
TOY_FILE = WeightFile(key="toy/table", description="Toy lookup table (tests only)", filename="toy-table.json",
                      source="local:toy", licence="test", optional=True)
TOY_CAVEAT = "Toy family: for tests only."


class ToyFamily(Family):
    def __init__(self, checkpoint=None, random=False) -> None:
        self.checkpoint = checkpoint
        self._random = random

    def describe(self) -> FamilyIdentity:
        return FamilyIdentity(family=self.spec.key, label=self.spec.label, weights=str(self.checkpoint or "built-in"),
                              weights_sha256=None, device="cpu", random_weights=self._random,
                              candidates=f"{len(PLACES)} fixed places", input_domain=self.spec.input_domain,
                              caveat=self.spec.caveat)

    def restrict(self, region) -> CandidateSpace:
        if region is None:
            return CandidateSpace(None, len(PLACES), "3 fixed places")
        parsed = parse_region(region)
        inside = np.asarray(parsed.contains(PLACES[:, 0], PLACES[:, 1]))
        if not inside.any():
            raise RegionError(f"no toy place inside {parsed.key}")
        return CandidateSpace(parsed, int(inside.sum()), f"{int(inside.sum())} fixed places inside {parsed.label}")

    def load_image(self, image, tencrop: bool = False):
        return load_image(image)

    def _predict(self, images, options, on_error, progress):
        space = self.restrict(options.region)
        keep = np.ones(len(PLACES), bool) if space.region is None else np.asarray(
            space.region.contains(PLACES[:, 0], PLACES[:, 1]))
        bias = float(options.extras.get("toy_bias", 0.0))
        results = []
        for image in images:
            try:
                loaded = self.load_image(image)
            except ImageLoadError as error:
                if on_error == "raise":
                    raise
                from geoapp.runtime.batch import failed_record

                results.append(failed_record(image, str(error)))
                continue
            score = np.asarray(loaded.image.convert("RGB").resize((8, 8))).reshape(-1, 3).mean(0)[: len(PLACES)] + bias
            probs = np.exp(score[keep] - score[keep].max())
            prediction = build_prediction(str(image), PLACES[keep, 0], PLACES[keep, 1], probs / probs.sum(),
                                          top_k=options.top_k, merge_km=25.0)
            prediction.region = space.region
            results.append(prediction)
            if progress:
                progress(1)
        return results


def load(spec, options) -> ToyFamily:
    return ToyFamily(options.checkpoint, options.random)


SPEC = register(FamilySpec(
    key="toy", label="Toy family (tests)", description="Scores three fixed places by colour.",
    loader="tests.families.toy:load", input_domain=AERIAL_IMAGE, caveat=TOY_CAVEAT,
    capabilities=Capabilities(text=False, tencrop=False, region=True, gradcam=False),
    weight_files=(TOY_FILE,), options=(FamilyOption("toy_bias", float, 0.0, "toy: added to every score"),),
))
