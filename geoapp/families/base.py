"""The family contract: what every model family gives its consumers, written once.

A *family* is a way of turning a photo into candidate places (GeoCLIP retrieval over a gallery,
TransLocator geocells, SatWorld, an ensemble, ...). Consumers — the CLI, the UI, the case store,
reports, ``training.evaluate`` — see only this contract:

* :meth:`Family.describe` -> :class:`FamilyIdentity`: who produced a result (typed, formats the
  same for every family);
* :meth:`Family.restrict` -> :class:`CandidateSpace`: the candidates for a region (or a
  :class:`~geoapp.geo.regions.RegionError`);
* :meth:`Family.predict_batch` -> one :class:`~geoapp.results.prediction.Prediction` per input, in order,
  unreadable inputs as records with ``.error``; :meth:`Family.predict` is the one-image case;
* :meth:`Family.explain` -> named Grad-CAM maps (one per branch);
* :meth:`Family.text_map` where the family's :class:`Capabilities` say ``text``.

Family-specific results travel as :class:`EvidenceItem` s on ``Prediction.evidence`` (title,
``to_dict()``, an HTML view), so nobody outside a family needs to know what they are.

Torch-free on purpose: the registry, ``--help`` and the Models tab import this module.
"""

from __future__ import annotations

import base64
import html
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from geoapp.results.prediction import DEFAULT_MERGE_KM, GradCamResult, Prediction

__all__ = [  # DEFAULT_MERGE_KM and GradCamResult live in geoapp.results.prediction (torch-free) and are part of the contract
    "AERIAL_IMAGE", "DEFAULT_MERGE_KM", "GROUND_PHOTO", "REGION_EXTRA_POINTS", "CandidateSpace", "Capabilities",
    "CapabilityError", "EvidenceItem", "Family", "FamilyIdentity", "GradCamResult", "MapLayer", "PredictOptions",
    "cams_side_by_side", "evidence_html", "png_data_uri",
]

if TYPE_CHECKING:
    from geoapp.families.registry import FamilySpec
    from geoapp.geo.regions import Region
    from geoapp.imaging import LoadedImage

GROUND_PHOTO = "ground-level photo"
AERIAL_IMAGE = "satellite/aerial image"
REGION_EXTRA_POINTS = 10_000  # extra candidates generated inside a region by continuous families


class CapabilityError(ValueError):
    """The family cannot do what was asked (text queries, Grad-CAM ...); the message says which can."""


@dataclass(frozen=True)
class Capabilities:
    """What a family can do beyond predicting photos."""

    text: bool = False  # text -> map queries (needs a text tower)
    tencrop: bool = True  # TenCrop test-time augmentation
    region: bool = True  # restrict the search to a region
    gradcam: bool = True  # Grad-CAM of the photo towards a candidate

    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]


@dataclass(frozen=True)
class FamilyIdentity:
    """What produced a result; stored with every prediction and analysis (``to_dict``)."""

    family: str  # registry key ("geoclip", or a variant "family:tag")
    label: str
    weights: str  # human description of the weights in use
    weights_sha256: str | None
    device: str
    random_weights: bool
    candidates: str  # the candidate space in words ("100,000 gallery points (MP-16)")
    input_domain: str = GROUND_PHOTO
    caveat: str | None = None  # shown with every result when the family is not a ground-photo model
    details: Mapping[str, Any] = field(default_factory=dict)  # family-specific, JSON-ready
    runtime: str = "torch"  # engine of the image tower: torch | onnxruntime | openvino (geoapp.runtime)
    precision: str = "fp32"  # fp32 | int8 (int8 only behind its quality gate)
    runtime_note: str | None = None  # the parity/gate verdict, or why torch runs instead of the engine asked for

    @property
    def weights_shown(self) -> str:
        """The weights as every consumer shows them: with the engine and precision when not torch fp32, so an
        int8 result says so in CSV, records, reports and the app alike."""
        if self.runtime == "torch" and self.precision == "fp32":
            return self.weights
        return f"{self.weights} [{self.precision} image tower on {self.runtime}]"

    def to_dict(self) -> dict:
        # "model", "backbone", "backbone_weights", "heads_sha256" are what stored analyses have always had.
        return {
            "model": self.family,
            "family": self.family,
            "label": self.label,
            "weights": self.weights_shown,
            "backbone_weights": self.weights_shown,
            "heads_sha256": self.weights_sha256,
            "device": self.device,
            "random_weights": self.random_weights,
            "candidate_space": self.candidates,
            "input_domain": self.input_domain,
            "caveat": self.caveat,
            "runtime": self.runtime,
            "precision": self.precision,
            "runtime_note": self.runtime_note,
            **dict(self.details),
        }

    def summary(self) -> str:
        """One line for the Models tab and the CLI."""
        flag = " — RANDOM WEIGHTS (test mode)" if self.random_weights else ""
        return f"{self.label} on {self.device}: {self.weights_shown}; candidates: {self.candidates}{flag}"


@dataclass(frozen=True)
class CandidateSpace:
    """The candidates a family scores for one region (or the whole world)."""

    region: Region | None
    size: int
    description: str  # "1,234 gallery points + 9,876 grid points inside France"


@dataclass(frozen=True)
class PredictOptions:
    """How to predict; family-specific options go in ``extras`` (declared in the spec's ``options``)."""

    top_k: int = 5
    region: Any = None  # anything parse_region accepts, or a Region
    tencrop: bool = False
    merge_km: float | None = None  # None: 25 km, finer inside small regions
    batch_size: int = 8
    region_points: int = REGION_EXTRA_POINTS  # continuous families: extra grid points in a region (0 = none)
    extras: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, options: PredictOptions | None = None, **overrides: Any) -> PredictOptions:
        """``options`` with keyword overrides; unknown keywords go to ``extras``; values checked."""
        base = options or cls()
        known = {f.name for f in fields(cls)}
        extras = dict(base.extras)
        direct = {}
        for name, value in overrides.items():
            if name in known and name != "extras":
                if value is not None or name in ("region", "merge_km"):
                    direct[name] = value
            elif name == "extras":
                extras.update(value or {})
            else:
                extras[name] = value
        result = replace(base, **direct, extras=extras)
        result.check()
        return result

    def check(self) -> None:
        if not 1 <= int(self.top_k) <= 1000:
            raise ValueError(f"top_k must be between 1 and 1000; got {self.top_k}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1; got {self.batch_size}")
        if int(self.region_points) < 0:
            raise ValueError(f"region_points must be 0 or more; got {self.region_points}")
        if self.merge_km is not None and not float(self.merge_km) >= 0:
            raise ValueError(f"merge_km must be 0 or more; got {self.merge_km}")


def cams_side_by_side(maps: Mapping[str, GradCamResult]) -> Image.Image:
    """The analysed crop, then every named map's overlay, in one strip (reports, case analyses)."""
    results = list(maps.values())
    if not results:
        raise ValueError("no Grad-CAM map to show")
    tiles = [results[0].crop, *[r.overlay for r in results]]
    height = max(t.height for t in tiles)
    canvas = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), height), "white")
    x = 0
    for tile in tiles:
        canvas.paste(tile, (x, 0))
        x += tile.width + 8
    return canvas


@dataclass(frozen=True)
class MapLayer:
    """Shapes an evidence item adds to the prediction map, as GeoJSON features (family-agnostic).

    Each feature's ``properties`` may set ``stroke`` / ``fill`` (CSS colours), ``fill_opacity``,
    ``weight`` (line width, px) and ``tooltip`` (plain text); the map draws them as they are.
    """

    name: str  # the layer's name in the map's layer control
    features: tuple[dict, ...]
    show: bool = True

    def to_geojson(self) -> dict:
        return {"type": "FeatureCollection", "features": list(self.features)}


class EvidenceItem(ABC):
    """Family-specific evidence attached to a prediction (segmentation map, scene, search path ...)."""

    key: str = "evidence"  # JSON key in Prediction.to_dict()
    title: str = "Evidence"

    @abstractmethod
    def to_dict(self) -> dict | list | float | str | None:
        """JSON-ready content (no pixels)."""

    @abstractmethod
    def html(self) -> str:
        """A self-contained, escaped HTML view (images inline as data: URIs)."""

    def images(self) -> dict[str, Image.Image]:
        """Named images that go with the evidence (for reports and galleries)."""
        return {}

    def map_layers(self) -> list[MapLayer]:
        """Shapes to draw on the prediction map (a search path, areas ...); none by default."""
        return []


def png_data_uri(image: Image.Image, max_side: int = 512) -> str:
    """A PIL image as an inline ``data:image/png`` URI (for EvidenceItem.html)."""
    shown = image.convert("RGB")
    if max(shown.size) > max_side:
        shown = shown.copy()
        shown.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def evidence_html(prediction: Prediction) -> str:
    """Every evidence item of a prediction as one HTML block (empty when there is none)."""
    blocks = []
    for item in getattr(prediction, "evidence", None) or []:
        blocks.append(f'<section class="geoapp-evidence" data-key="{html.escape(item.key)}">'
                      f"<h4>{html.escape(item.title)}</h4>{item.html()}</section>")
    return "".join(blocks)


Progress = Callable[[int], None]
# prepare(): (fraction 0..1, message) while a family builds its candidate caches on first use.
PrepareProgress = Callable[[float, str], None]


class Family(ABC):
    """A loaded model family. Subclasses implement the abstract methods; the rest is shared."""

    spec: FamilySpec  # set by FamilySpec.load

    # ------------------------------------------------------------------ identity
    @abstractmethod
    def describe(self) -> FamilyIdentity:
        """Model, weights, device and candidate space in use."""

    @property
    def random_weights(self) -> bool:
        return self.describe().random_weights

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def caveat(self) -> str | None:
        return self.spec.caveat

    # ------------------------------------------------------------------ candidates
    def prepare(self, progress: PrepareProgress | None = None) -> CandidateSpace:
        """Build what every prediction needs (candidate embeddings, caches) now, reporting progress; later
        predictions are fast. The default just resolves the worldwide candidates."""
        if progress:
            progress(0.0, "Preparing the candidates …")
        space = self.restrict(None)
        if progress:
            progress(1.0, "Candidates ready")
        return space

    @abstractmethod
    def restrict(self, region: Any) -> CandidateSpace:
        """The candidates inside ``region`` (None: everywhere); RegionError when there are none."""

    # ------------------------------------------------------------------ images
    @abstractmethod
    def load_image(self, image: Any, tencrop: bool = False) -> LoadedImage:
        """Decode and normalise one input at the size this family needs (ImageLoadError when unreadable)."""

    @abstractmethod
    def _predict(self, images: list, options: PredictOptions, on_error: str,
                 progress: Progress | None) -> list[Prediction]:
        """One prediction per image, in order (the shared driver is geoapp.runtime.batch.run_batched)."""

    def predict_batch(self, images: Iterable, options: PredictOptions | None = None, *, on_error: str = "record",
                      progress: Progress | None = None, **overrides: Any) -> list[Prediction]:
        """Predict many inputs; with ``on_error="record"`` unreadable ones get a record with ``.error``.

        Options as a :class:`PredictOptions` and/or keywords (``top_k=5, region="FR", tencrop=True``).
        Every result carries the family's caveat and, with random weights, the random-weights warning.
        """
        if on_error not in ("record", "raise"):
            raise ValueError("on_error must be 'record' or 'raise'")
        opts = PredictOptions.build(options, **overrides)
        if opts.tencrop and not self.spec.capabilities.tencrop:
            raise CapabilityError(f"{self.spec.label} does not support TenCrop")
        if opts.region is not None and not self.spec.capabilities.region:
            raise CapabilityError(f"{self.spec.label} cannot restrict its search to a region")
        predictions = self._predict(list(images), opts, on_error, progress)
        identity = self.describe()  # once per batch: the same for every record
        for prediction in predictions:
            self.finish(prediction, identity)
        return predictions

    def predict(self, image: Any, options: PredictOptions | None = None, **overrides: Any) -> Prediction:
        """Predict one input; an unreadable image raises ImageLoadError, a bad region RegionError."""
        return self.predict_batch([image], options, on_error="raise", **overrides)[0]

    def finish(self, prediction: Prediction, identity: FamilyIdentity | None = None) -> Prediction:
        """Identity, caveat and random-weights warning on a result (written once for every family)."""
        from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

        identity = identity or self.describe()
        prediction.model = identity.to_dict()
        if not prediction.ok:
            return prediction
        if identity.random_weights and RANDOM_WEIGHTS_WARNING not in prediction.warnings:
            prediction.warnings.append(RANDOM_WEIGHTS_WARNING)
        if identity.caveat and identity.caveat not in prediction.warnings:
            prediction.warnings.append(identity.caveat)
        return prediction

    # ------------------------------------------------------------------ optional capabilities
    def explain(self, image: Any, lat: float, lon: float) -> dict[str, GradCamResult]:
        """Named Grad-CAM maps of ``image`` towards the candidate at (lat, lon), main map first."""
        raise CapabilityError(f"{self.spec.label} has no Grad-CAM")

    def text_map(self, text: str, options: PredictOptions | None = None, **overrides: Any) -> Prediction:
        """Where on the map does a text description fit? (`python -m geoapp models` lists who can.)"""
        raise CapabilityError(f"{self.spec.label} cannot map text: choose a family that can read text "
                              "(see `python -m geoapp models`)")
