"""What a TransLocator prediction adds to a :class:`~geoapp.prediction.Prediction` (torch-free).

* :class:`SegmentationSummary`: the ADE20K class map the segmentation branch saw, its colourised
  image (the branch's actual input, before normalisation), a legend and the class shares;
* the scene predicted by the model's own scene heads (a ``geoapp.models.scenes.SceneResult``:
  Places365 label at 365 / 16 / 3 levels with probabilities);
* the attentive-fusion weights of the two branches (how much each input counted).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from geoapp.prediction import Prediction

if TYPE_CHECKING:
    from geoapp.models.scenes import SceneResult

LEGEND_CLASSES = 10
SHARES_IN_DICT = 20


@dataclass
class SegmentationSummary:
    """The segmentation map of the analysed crop."""

    class_map: np.ndarray  # [H, W] uint8 ADE20K class ids (0..149)
    colour_map: np.ndarray  # [H, W, 3] uint8: the colourised map fed to the segmentation branch
    legend: list[tuple[str, tuple[int, int, int], float]]  # largest classes: (name, colour, share)
    shares: list[tuple[str, float]]  # every class present, largest first
    segmenter: dict = field(default_factory=dict)  # name, source, sha256, random_weights

    @classmethod
    def from_class_map(cls, class_map: np.ndarray, segmenter: dict) -> "SegmentationSummary":
        from geoapp.models.segmentation import class_shares, colourise, legend

        ids = np.asarray(class_map).astype(np.uint8)
        return cls(ids, colourise(ids), legend(ids, top=LEGEND_CLASSES), class_shares(ids), dict(segmenter))

    @property
    def random_weights(self) -> bool:
        return bool(self.segmenter.get("random_weights"))

    def image(self) -> Image.Image:
        return Image.fromarray(self.colour_map)

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image().save(buffer, format="PNG")
        return buffer.getvalue()

    def to_dict(self) -> dict:
        """Legend and shares (the pixels stay out of JSON: use :meth:`png` / ``colour_map``)."""
        return {
            "segmenter": dict(self.segmenter),
            "random_weights": self.random_weights,
            "size": [int(self.class_map.shape[1]), int(self.class_map.shape[0])],
            "legend": [[name, list(colour), share] for name, colour, share in self.legend],
            "shares": [[name, share] for name, share in self.shares[:SHARES_IN_DICT]],
        }


@dataclass
class TransLocatorPrediction(Prediction):
    """A :class:`Prediction` over fine geocells, plus the TransLocator-specific evidence."""

    segmentation: SegmentationSummary | None = None
    scene: "SceneResult | None" = None
    branch_weights: dict[str, float] = field(default_factory=dict)  # {"rgb": w, "segmentation": w}

    def to_dict(self, include_surface: bool = False, surface_max_points: int = 5000) -> dict:
        data = super().to_dict(include_surface=include_surface, surface_max_points=surface_max_points)
        data["segmentation"] = self.segmentation.to_dict() if self.segmentation is not None else None
        data["scene"] = self.scene.to_dict() if self.scene is not None else None
        data["branch_weights"] = dict(self.branch_weights)
        return data
