"""What a TransLocator prediction adds to a :class:`~geoapp.results.prediction.Prediction` (torch-free), as
evidence items (:class:`~geoapp.families.base.EvidenceItem`) that every consumer shows generically.

* :class:`SegmentationSummary`: the ADE20K class map the segmentation branch saw, its colourised
  image (the branch's actual input, before normalisation), a legend and the class shares;
* the scene predicted by the model's own scene heads (a ``geoapp.families.translocator.scenes.SceneResult``:
  Places365 label at 365 / 16 / 3 levels with probabilities);
* the attentive-fusion weights of the two branches (how much each input counted).
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from geoapp.families.base import EvidenceItem, png_data_uri
from geoapp.results.prediction import Prediction, percent

if TYPE_CHECKING:
    from geoapp.families.translocator.scenes import SceneResult

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
        from geoapp.families.translocator.segmentation import class_shares, colourise, legend

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


class SegmentationEvidence(EvidenceItem):
    """The ADE20K map the segmentation branch saw: colourised image, legend with class shares."""

    key = "segmentation"
    title = "Segmentation the model saw (ADE20K)"

    def __init__(self, summary: SegmentationSummary) -> None:
        self.summary = summary

    def to_dict(self) -> dict:
        return self.summary.to_dict()

    def images(self) -> dict[str, Image.Image]:
        return {"segmentation": self.summary.image()}

    def html(self) -> str:
        summary = self.summary
        rows = "".join(
            f'<tr><td><span style="display:inline-block;width:14px;height:14px;border:1px solid #888;'
            f'background:rgb({r},{g},{b})"></span></td><td>{html.escape(name)}</td><td style="text-align:right">'
            f"{percent(share)}</td></tr>"
            for name, (r, g, b), share in summary.legend)
        segmenter = summary.segmenter.get("name") or "segmenter"
        parts = [f'<div class="geoapp-evidence-row"><img class="geoapp-evidence-image" alt="segmentation map" '
                 f'src="{png_data_uri(summary.image())}">',
                 f"<div><p><b>Segmentation</b> (ADE20K classes by {html.escape(str(segmenter))}; share of the "
                 f'analysed crop):</p><table class="geoapp-legend">{rows}</table></div></div>']
        if summary.random_weights:
            parts.append('<p class="geoapp-random"><b>RANDOM SEGMENTER WEIGHTS — this map is meaningless.</b></p>')
        return "".join(parts)


class SceneEvidence(EvidenceItem):
    """The scene predicted by the model's own scene heads (Places365 at 3 / 16 / 365 levels)."""

    key = "scene"
    title = "Scene (the model's scene heads)"

    def __init__(self, scene: SceneResult) -> None:
        self.scene = scene

    def to_dict(self) -> dict:
        return self.scene.to_dict()

    def html(self) -> str:
        scene = self.scene
        top5 = ", ".join(f"{html.escape(name)} {percent(p)}" for name, p in scene.top5)
        return (f"<p><b>Scene:</b> {html.escape(scene.label3)} ({percent(scene.probability3)}) › "
                f"{html.escape(scene.label16)} ({percent(scene.probability16)}) › <b>{html.escape(scene.label365)}</b> "
                f"({percent(scene.probability)})<br><small>Top 5 scene categories: {top5}</small></p>")


class BranchWeightsEvidence(EvidenceItem):
    """Attentive-fusion weights: how much each input branch counted."""

    key = "branch_weights"
    title = "Attentive fusion weights"

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = dict(weights)

    def to_dict(self) -> dict:
        return dict(self.weights)

    def html(self) -> str:
        weights = ", ".join(f"{html.escape(name)} {percent(value)}" for name, value in self.weights.items())
        return f"<p>How much each branch counted: {weights}</p>"


@dataclass
class TransLocatorPrediction(Prediction):
    """A :class:`Prediction` over fine geocells; its evidence items hold the segmentation, scene and
    branch weights (also readable as attributes)."""

    segmentation: SegmentationSummary | None = None
    scene: "SceneResult | None" = None
    branch_weights: dict[str, float] = field(default_factory=dict)  # {"rgb": w, "segmentation": w}

    def __post_init__(self) -> None:
        items: list[EvidenceItem] = []
        if self.segmentation is not None:
            items.append(SegmentationEvidence(self.segmentation))
        if self.scene is not None:
            items.append(SceneEvidence(self.scene))
        if self.branch_weights:
            items.append(BranchWeightsEvidence(self.branch_weights))
        self.evidence = [*items, *[e for e in self.evidence if e.key not in {i.key for i in items}]]
