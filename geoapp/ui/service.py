"""The service layer between the UI and the engine: one shared model, loaded on first use.

No Gradio here: tab handlers call these methods with typed forms (:mod:`geoapp.ui.forms`)
and a plain progress callback, so the same calls are tested directly.

Concurrency: the Gradio queue runs up to ``AppConfig.concurrency_limit`` jobs at once, and they
all share one :class:`~geoapp.predict.Geolocator` per model. Model work runs under one lock:
the CPU is saturated by one forward anyway, and Grad-CAM installs hooks on the backbone that
a concurrent forward would otherwise trip over. Everything else (decoding, place names, maps)
happens outside the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from geoapp.geo.regions import RegionError
from geoapp.imaging import ImageLoadError, load_image
from geoapp.maps import ReferencePoint
from geoapp.prediction import Prediction
from geoapp.ui.forms import COMPARE_DIFFERENCE, FormError, LocateForm, TextMapForm

Progress = Callable[[float, str], None]

EXIF_COLOUR = "#111111"
CLAIM_COLOUR = "#e65100"
DISPLAY_MAX_SIDE = 1024  # the photo shown next to the results (the model gets the original file)


@dataclass(frozen=True)
class ModelFamily:
    """A model the UI offers (TransLocator plugs in here too)."""

    key: str
    label: str
    description: str


MODEL_FAMILIES: dict[str, ModelFamily] = {
    "geoclip": ModelFamily("geoclip", "GeoCLIP",
                           "CLIP ViT-L/14 image features matched against a 100K GPS gallery (Vivanco et al., 2023)"),
    "satworld": ModelFamily("satworld", "SatWorld (satellite/aerial imagery only)",
                            "Small model trained here on NASA Blue Marble satellite crops; ships with the app and "
                            "runs offline. Not made for ground-level photos."),
    "translocator": ModelFamily("translocator", "TransLocator",
                                "Dual-branch ViT over the photo and its ADE20K segmentation, classifying S2 geocells "
                                "(Pramanick et al., 2022); needs a trained checkpoint (or --backbone-weights random)"),
    "ensemble": ModelFamily("ensemble", "Ensemble: TransLocator + GeoCLIP",
                            "TransLocator cell probabilities mixed with GeoCLIP image-location similarity over the "
                            "union of both models' candidates (rule in geoapp/ensemble.py); needs both models"),
}
TEXT_MODEL = "geoclip"  # text queries need CLIP's text tower
SEGMENTATION_MODELS = ("translocator", "ensemble")  # results that carry a segmentation map and a scene


@dataclass(frozen=True)
class ModelSettings:
    """How models are built (from the app flags)."""

    backbone: str = "ViT-L-14"
    backbone_weights: str | None = None
    device: str | None = None

    @property
    def random_weights(self) -> bool:
        return self.backbone_weights == "random"


class ModelUnavailableError(RuntimeError):
    """The model cannot run here (weights missing, bad device); the message says how to fix it."""


@dataclass
class LocatedImage:
    """One analysed photo: the prediction plus what the UI shows beside it."""

    prediction: Prediction
    path: str  # the uploaded file, for Grad-CAM
    display: object | None = None  # PIL image, upright RGB, at most DISPLAY_MAX_SIDE
    references: list[ReferencePoint] = field(default_factory=list)
    model: str = "geoclip"

    @property
    def name(self) -> str:
        return str(self.prediction.image.get("name") or self.prediction.source)


@dataclass
class TextMapResult:
    """The predictions for query A (and B) on the same candidate points."""

    first: Prediction
    second: Prediction | None
    compare: str

    @property
    def difference(self) -> bool:
        return self.second is not None and self.compare == COMPARE_DIFFERENCE


@dataclass
class ModelStatus:
    """What the Models tab shows."""

    settings: ModelSettings
    weights: list  # geoapp.models.weights.WeightStatus rows
    loaded: dict[str, dict]  # model key -> locator.describe()
    problem: str | None  # why real results cannot be produced, with the fix


def _no_progress(_fraction: float, _message: str) -> None:
    return None


class GeolocationService:
    """Lazily loaded, shared geolocators and the operations the UI offers."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._locators: dict[str, object] = {}
        self._load_lock = threading.Lock()
        self._compute_lock = threading.Lock()

    # ------------------------------------------------------------------ models
    def default_model(self) -> str:
        """GeoCLIP when it can give real results here, else the offline SatWorld model."""
        return "satworld" if self.weights_problem() is not None else "geoclip"

    def weights_problem(self, model: str = "geoclip") -> str | None:
        """The reason ``model`` cannot give real results (missing CLIP weights), or None.

        Checked without loading anything (a file lookup), so the UI can say it up front.
        SatWorld ships with the app, so it never has a weights problem.
        """
        if model == "satworld":
            return None
        if model == "ensemble":
            problems = [p for p in (self.weights_problem("geoclip"), self.weights_problem("translocator")) if p]
            return " ".join(problems) or None
        if model == "translocator":
            if self.settings.random_weights or self.settings.backbone_weights not in (None, ""):
                return None
            from geoapp.translocator_predict import default_checkpoint_paths

            if any(path.is_file() for path in default_checkpoint_paths()):
                return None
            return ("No trained TransLocator checkpoint (translocator.pt) on this machine. To fix: train one with "
                    "`python -m training.translocator.train` (see training/README.md) and copy it to "
                    f"{default_checkpoint_paths()[-1]}.")
        if self.settings.random_weights or self.settings.backbone != "ViT-L-14":
            return None
        if self.settings.backbone_weights not in (None, ""):
            return None  # an explicit checkpoint: loading will tell
        from geoapp.models import weights

        missing = [row for row in weights.status(checksums=False) if not row.present]
        if not missing:
            return None
        lines = [f"Missing weights: {row.weight.filename} — {row.weight.description}. To fix: {row.weight.fix_hint()}."
                 for row in missing]
        return " ".join(lines) + " Then restart the app."

    def locator(self, model: str = "geoclip", progress: Progress = _no_progress):
        """The shared :class:`~geoapp.predict.Geolocator` for ``model``, loaded on first use."""
        if model not in MODEL_FAMILIES:
            raise FormError(f"Unknown model {model!r}; available: {', '.join(MODEL_FAMILIES)}")
        existing = self._locators.get(model)
        if existing is not None:
            return existing
        if model == "ensemble":
            return self._ensemble(progress)
        with self._load_lock:
            if model in self._locators:  # another request loaded it while we waited
                return self._locators[model]
            from geoapp import Geolocator
            from geoapp.models.weights import WeightsMissingError

            progress(0.05, "Loading the model (first use only) …")
            try:
                locator = Geolocator.load(model=model, device=self.settings.device,
                                          backbone_weights=self.settings.backbone_weights,
                                          backbone=self.settings.backbone)
            except WeightsMissingError as error:
                raise ModelUnavailableError(str(error)) from error
            except (ValueError, RuntimeError) as error:  # bad device, bad checkpoint
                raise ModelUnavailableError(f"The model could not be loaded: {error}") from error
            progress(0.4, "Preparing the location gallery (first run: encodes 100K locations, then cached) …")
            locator.candidate_set()
            self._locators[model] = locator
            return locator

    def _ensemble(self, progress: Progress):
        """The ensemble shares the already loaded (or now loaded) GeoCLIP and TransLocator instances."""
        from geoapp.ensemble import EnsembleGeolocator

        members = (self.locator("geoclip", progress), self.locator("translocator", progress))
        with self._load_lock:
            if "ensemble" not in self._locators:
                self._locators["ensemble"] = EnsembleGeolocator(*members)
            return self._locators["ensemble"]

    def adopt(self, model: str, locator) -> None:
        """Use an already loaded geolocator for ``model`` (tests, notebooks: no second load)."""
        if model not in MODEL_FAMILIES:
            raise FormError(f"Unknown model {model!r}; available: {', '.join(MODEL_FAMILIES)}")
        with self._load_lock:
            self._locators[model] = locator

    def status(self) -> ModelStatus:
        from geoapp.models import weights

        loaded = {key: locator.describe() for key, locator in self._locators.items()}
        return ModelStatus(self.settings, weights.status(checksums=False), loaded, self.weights_problem())

    def _require_model(self, model: str = "geoclip") -> None:
        problem = self.weights_problem(model)
        if problem is not None:
            raise ModelUnavailableError(problem)

    # ------------------------------------------------------------------ operations
    def locate(self, form: LocateForm, progress: Progress = _no_progress) -> list[LocatedImage]:
        """Predict every photo of the form; unreadable files come back as predictions with ``.error``."""
        self._require_model(form.model)
        region = form.region.spec()
        locator = self.locator(form.model, progress)
        self._check_region(locator, region)
        results: list[LocatedImage] = []
        total = len(form.files)
        for index, path in enumerate(form.files):
            progress(0.5 + 0.5 * index / total, f"Locating photo {index + 1} of {total} …")
            with self._compute_lock:
                prediction = locator.predict_batch([path], top_k=form.top_k, region=region, tencrop=form.tencrop,
                                                   on_error="record")[0]
            results.append(self._located(prediction, path, form.claimed, form.model))
        progress(1.0, "Done")
        return results

    def _check_region(self, locator, region: str | None) -> None:
        """Resolve the region first so a typo fails before any photo is processed."""
        if region is None:
            return
        with self._compute_lock:
            try:
                locator.candidate_set(region)
            except RegionError as error:
                raise FormError(str(error)) from error

    @staticmethod
    def _located(prediction: Prediction, path: str, claimed: tuple[float, float] | None, model: str) -> LocatedImage:
        references: list[ReferencePoint] = []
        exif = (prediction.image or {}).get("exif") or {}
        if exif.get("gps_lat") is not None and exif.get("gps_lon") is not None:
            references.append(ReferencePoint("EXIF GPS (in the file)", float(exif["gps_lat"]), float(exif["gps_lon"]),
                                             EXIF_COLOUR))
        if claimed is not None:
            references.append(ReferencePoint("Claimed location", claimed[0], claimed[1], CLAIM_COLOUR))
        display = None
        if prediction.ok:
            try:
                image = load_image(path).image
                image.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))
                display = image
            except ImageLoadError:
                display = None  # the engine read it a moment ago; without a preview the result still stands
        return LocatedImage(prediction, path, display, references, model)

    def text_map(self, form: TextMapForm, progress: Progress = _no_progress) -> TextMapResult:
        """Query A (and B) -> probability over the same candidates (GeoCLIP paper §4.4)."""
        self._require_model(TEXT_MODEL)
        region = form.region.spec()
        locator = self.locator(TEXT_MODEL, progress)
        self._check_region(locator, region)
        with self._compute_lock:
            first = locator.text_map(form.query_a, top_k=form.top_k, region=region)
            second = locator.text_map(form.query_b, top_k=form.top_k, region=region) if form.query_b else None
        return TextMapResult(first, second, form.compare)

    def gradcam(self, located: LocatedImage, rank: int):
        """Grad-CAM of the photo towards candidate ``rank`` (1-based)."""
        return self.explain(located, rank)[0]

    def explain(self, located: LocatedImage, rank: int):
        """(Grad-CAM of the photo, Grad-CAM of its segmentation map or None) towards candidate ``rank``.

        GeoCLIP and the ensemble: similarity to the candidate's location embedding (photo only).
        TransLocator: the logit of the fine cell nearest the candidate, on both branches.
        """
        from geoapp.explain import gradcam_for_location, gradcam_translocator, nearest_fine_cell

        candidates = located.prediction.candidates
        if not 1 <= rank <= len(candidates):
            raise FormError(f"There is no candidate #{rank} for this photo.")
        candidate = candidates[rank - 1]
        locator = self.locator(located.model)
        with self._compute_lock:
            if located.model == "translocator":
                maps = gradcam_translocator(locator, located.path, nearest_fine_cell(locator, candidate.lat, candidate.lon))
                return maps.rgb, maps.segmentation
            return gradcam_for_location(locator, located.path, candidate.lat, candidate.lon), None
