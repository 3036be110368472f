"""The service layer between the UI and the engine: one shared model, loaded on first use.

No Gradio here: tab handlers call these methods with typed forms (:mod:`geoapp.ui.forms`)
and a plain progress callback, so the same calls are tested directly.

Which models exist is the family registry's business (:mod:`geoapp.families.registry`): this module
lists, loads and runs whatever is registered, without naming any family.

Concurrency: the Gradio queue runs up to ``AppConfig.concurrency_limit`` jobs at once, and they
all share one loaded family per model key (each key loads under its own lock, so a long first load, or the
warm-up started with the app (:mod:`geoapp.ui.warmup`), never holds up another model). Model work runs under one lock:
the CPU is saturated by one forward anyway, and Grad-CAM installs hooks on the backbone that
a concurrent forward would otherwise trip over. Everything else (decoding, place names, maps)
happens outside the lock.
"""

from __future__ import annotations

import threading
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field

from geoapp.families import (
    AUTO,
    FamilyIdentity,
    FamilySpec,
    LoadOptions,
    UnknownFamilyError,
    availability,
    registry,
    variants,
)
from geoapp.geo.regions import RegionError
from geoapp.imaging import ImageLoadError, load_image
from geoapp.results.prediction import Prediction
from geoapp.ui.forms import COMPARE_DIFFERENCE, ClaimedLocation, FormError, LocateForm, TextMapForm
from geoapp.ui.maps.render import ReferencePoint
from geoapp.ui.warmup import Warmup

Progress = Callable[[float, str], None]

EXIF_COLOUR = "#111111"
CLAIM_COLOUR = "#e65100"
DISPLAY_MAX_SIDE = 1024  # the photo shown next to the results (the model gets the original file)


@dataclass(frozen=True)
class ModelSettings:
    """How models are built (from the app flags)."""

    backbone: str = "ViT-L-14"
    backbone_weights: str | None = None
    device: str | None = None
    gallery: str | None = None  # CSV of candidate points for retrieval families (None: their default)
    runtime: str | None = None  # image-tower engine (geoapp.runtime; None: torch); Grad-CAM stays on torch
    precision: str | None = None  # None: fp32; int8 only where its quality gate passed on this machine

    @property
    def random_weights(self) -> bool:
        return self.backbone_weights == "random"

    def load_options(self) -> LoadOptions:
        extras = {} if self.backbone == "ViT-L-14" else {"backbone": self.backbone}
        if self.gallery:
            extras["gallery"] = self.gallery
        extras.update({k: v for k, v in (("runtime", self.runtime), ("precision", self.precision)) if v})
        return LoadOptions(device=self.device, backbone_weights=self.backbone_weights or None, extras=extras)


class ModelUnavailableError(RuntimeError):
    """The model cannot run here (weights missing, bad device); the message says how to fix it."""


@dataclass
class LocatedImage:
    """One analysed photo: the prediction plus what the UI shows beside it."""

    prediction: Prediction
    path: str  # the uploaded file, for Grad-CAM
    display: object | None = None  # PIL image, upright RGB, at most DISPLAY_MAX_SIDE
    references: list[ReferencePoint] = field(default_factory=list)
    model: str = AUTO  # the family key that produced it
    fusion: object | None = None  # geoapp.ui.fusion_service.FusedMap, when clues or "same place" were given

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
    weights: list  # geoapp.models.weights.WeightStatus rows, every family's files
    loaded: dict[str, FamilyIdentity]  # model key -> family.describe()
    problem: str | None  # why the best family cannot give real results, with the fix
    families: list[FamilySpec] = field(default_factory=list)
    problems: dict[str, str | None] = field(default_factory=dict)  # per family key
    active: str = AUTO  # what `auto` resolves to here


def _no_progress(_fraction: float, _message: str) -> None:
    return None


LOADING_SHARE = 0.85  # of a run's progress bar when the model loads first (the gallery encoding is the long part)


def progress_span(progress: Progress, start: float, end: float) -> Progress:
    """``progress`` for one stage of a run: 0..1 within the stage becomes start..end of the whole bar."""

    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * min(max(float(fraction), 0.0), 1.0), message)

    return report


class GeolocationService:
    """Lazily loaded, shared geolocators and the operations the UI offers."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self._locators: dict[str, object] = {}
        self._load_lock = threading.Lock()  # guards the dicts below
        self._model_locks: dict[str, threading.Lock] = {}  # one per model key: loads of different models overlap
        self._warmups: dict[str, Warmup] = {}
        self._compute_lock = threading.Lock()

    # ------------------------------------------------------------------ models
    @staticmethod
    def families() -> list[FamilySpec]:
        return registry.families()

    @staticmethod
    def spec(model: str) -> FamilySpec:
        try:
            return registry.get(model)
        except UnknownFamilyError as error:
            raise FormError(str(error)) from error

    def model_choices(self, text_only: bool = False) -> list[tuple[str, str]]:
        """(label, key) for the dropdowns: every family and variant that can be chosen (text-capable ones for
        Text → Map); those that cannot run here come last, labelled "unavailable" with the reason."""
        return [(choice.display_label, choice.key)
                for choice in availability.model_choices(self.settings.load_options(), text_only=text_only)]

    @staticmethod
    def models_signature() -> tuple:
        """Changes when trained variants appear, change or vanish on disk (the dropdowns then list them again)."""
        return variants.signature()

    def default_model(self, text_only: bool = False) -> str | None:
        """The best family that can give real results here (``auto``); among text-capable ones if asked.

        None when ``text_only`` and no text-capable family can run (the caller disables the action).
        """
        if not text_only:
            return registry.choose(AUTO, self.settings.load_options())[0].key
        able = [spec for spec in registry.text_families() if spec.problem(self.settings.load_options()) is None]
        return able[0].key if able else None

    def weights_problem(self, model: str | None = None) -> str | None:
        """The reason ``model`` (default: the best family, as ``auto`` ranks them) cannot give real results
        here, with the fix; None when it can. A file lookup, nothing is loaded."""
        if model is None:
            ranked = sorted((s for s in registry.families(include_variants=False) if s.auto_priority is not None),
                            key=lambda s: -s.auto_priority)
            model = ranked[0].key
        spec = self.spec(model)
        problem = spec.problem(self.settings.load_options())
        if problem is None:
            return None
        # Files fetched while the app runs are found at the next load, but the page's notices are drawn at start.
        return f"{spec.label}: {problem}" + ("" if spec.variants_only else " Then restart the app.")

    def locator(self, model: str = AUTO, progress: Progress = _no_progress):
        """The shared loaded family for ``model`` (``auto`` resolves first), loaded on first use."""
        if model in (AUTO, "", None):
            model = self.default_model()
        existing = self._locators.get(model)
        if existing is not None:
            return existing
        warmup = self._warmups.get(model)
        if warmup is not None and not warmup.done:
            warmup.wait(progress)  # started with the app: show its progress rather than load a second copy
            if model in self._locators:
                return self._locators[model]
        return self._load(model, progress)  # (a failed warm-up: load here, so this request gets the reason)

    def _load(self, model: str, progress: Progress):
        """Load ``model`` under its own lock (the warm-up calls this directly: it must not wait for itself)."""
        spec = self.spec(model)
        # A combining family reuses the members already loaded here (no second copy of a big model).
        members = {member: self.locator(member, progress) for member in spec.members}
        with self._model_lock(model):
            if model in self._locators:  # another request loaded it while we waited
                return self._locators[model]
            from geoapp.models.weights import WeightsMissingError

            progress(0.0, f"Loading {spec.label} (first use only) …")
            options = self.settings.load_options()
            if members:
                options = LoadOptions(options.device, options.backbone_weights, options.checkpoint,
                                      {**options.extras, "members": members})
            try:
                locator = spec.load(options)
            except WeightsMissingError as error:
                raise ModelUnavailableError(str(error)) from error
            except (ValueError, RuntimeError) as error:  # bad device, bad checkpoint
                raise ModelUnavailableError(f"The model could not be loaded: {error}") from error
            progress(0.05, f"{spec.label} loaded; preparing its candidates …")
            locator.prepare(progress_span(progress, 0.05, 1.0))
            self._locators[model] = locator
            return locator

    def _model_lock(self, model: str) -> threading.Lock:
        with self._load_lock:
            return self._model_locks.setdefault(model, threading.Lock())

    def start_warmup(self, model: str | None = None, announce=None) -> Warmup | None:
        """Load ``model`` (default: what ``auto`` picks) and prepare its candidates in a background thread, so
        the first result does not wait for them; None when it is loaded already or cannot run here."""
        model = model or self.default_model()
        if model is None or model in self._locators or self.weights_problem(model) is not None:
            return None
        with self._load_lock:
            if model in self._warmups:
                return self._warmups[model]
            warmup = Warmup(model, lambda progress: self._load(model, progress), announce, self.spec(model).label)
            self._warmups[model] = warmup
        return warmup.start()

    def is_loaded(self, model: str | None) -> bool:
        """Whether ``model`` (``auto`` resolved) is loaded already (the next run is fast)."""
        if model in (AUTO, "", None):
            model = self.default_model()
        return model in self._locators

    def adopt(self, model: str, locator) -> None:
        """Use an already loaded family for ``model`` (tests, notebooks: no second load)."""
        self.spec(model)
        with self._load_lock:
            self._locators[model] = locator

    def status(self) -> ModelStatus:
        from geoapp.models import weights

        loaded = {key: locator.describe() for key, locator in self._locators.items()}
        specs = registry.families()
        problems = {spec.key: spec.problem(self.settings.load_options()) for spec in specs}
        return ModelStatus(self.settings, weights.status(tuple(registry.all_weight_files()), checksums=False), loaded,
                           self.weights_problem(), specs, problems, self.default_model())

    def _require_model(self, model: str) -> None:
        problem = self.weights_problem(model)
        if problem is not None:
            raise ModelUnavailableError(problem)

    # ------------------------------------------------------------------ operations
    def locate(self, form: LocateForm, progress: Progress = _no_progress) -> list[LocatedImage]:
        """Predict every photo of the form; unreadable files come back as predictions with ``.error``."""
        model = self.default_model() if form.model in (AUTO, "", None) else form.model
        self._require_model(model)
        region = form.region.spec()
        # One bar for the whole run: loading (with the gallery encoding) first when needed, then the photos.
        start = 0.0 if self.is_loaded(model) else LOADING_SHARE
        locator = self.locator(model, progress_span(progress, 0.0, start))
        self._check_region(locator, region)
        results: list[LocatedImage] = []
        total = len(form.files)
        photos = progress_span(progress, start, 1.0)
        for index, path in enumerate(form.files):
            photos(index / total, f"Locating photo {index + 1} of {total} …")
            with self._compute_lock:
                prediction = locator.predict_batch([path], top_k=form.top_k, region=region, tencrop=form.tencrop,
                                                   on_error="record", extras=form.extras)[0]
            results.append(self._located(prediction, path, form.claimed, model))
        if form.fusion_requested:
            from geoapp.ui.fusion_service import fuse_located

            progress(0.95, "Fusing the photo maps with the clues …")
            for located, fused in zip(results, fuse_located(results, form.clues, form.same_place, region,
                                                                   apply_exif=form.exif_clues)):
                located.fusion = fused
        progress(1.0, "Done")
        return results

    def _check_region(self, locator, region: str | None) -> None:
        """Resolve the region first so a typo fails before any photo is processed."""
        if region is None:
            return
        with self._compute_lock:
            try:
                locator.restrict(region)
            except RegionError as error:
                raise FormError(str(error)) from error

    @staticmethod
    def _located(prediction: Prediction, path: str, claimed: ClaimedLocation | None, model: str) -> LocatedImage:
        if not prediction.ok:
            # Uploads live at /tmp/gradio/<hash>/<original name>: show the analyst their file's name, not our path.
            prediction.source = Path(path).name
        references: list[ReferencePoint] = []
        exif = (prediction.image or {}).get("exif") or {}
        if exif.get("gps_lat") is not None and exif.get("gps_lon") is not None:
            references.append(ReferencePoint("EXIF GPS (in the file)", float(exif["gps_lat"]), float(exif["gps_lon"]),
                                             EXIF_COLOUR))
        if claimed is not None:
            references.append(ReferencePoint(claimed.label, claimed.lat, claimed.lon, CLAIM_COLOUR))
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
        model = form.model if form.model not in (AUTO, "", None) else self.default_model(text_only=True)
        if model is None:
            raise ModelUnavailableError(self.text_unavailable_reason() or "No model here can map text.")
        if not self.spec(model).capabilities.text:
            raise FormError(f"{self.spec(model).label} cannot map text; choose one of: "
                            f"{', '.join(label for label, _ in self.model_choices(text_only=True))}")
        self._require_model(model)
        region = form.region.spec()
        locator = self.locator(model, progress)
        self._check_region(locator, region)
        with self._compute_lock:
            first = locator.text_map(form.query_a, top_k=form.top_k, region=region)
            second = locator.text_map(form.query_b, top_k=form.top_k, region=region) if form.query_b else None
        return TextMapResult(first, second, form.compare)

    def text_unavailable_reason(self) -> str | None:
        """Why Text → Map cannot run here (one line), or None when a text-capable family can."""
        if self.default_model(text_only=True) is not None:
            return None
        specs = registry.text_families()
        if not specs:
            return "No installed model can map text."
        return self.weights_problem(specs[0].key)

    def gradcam(self, located: LocatedImage, rank: int):
        """The main Grad-CAM map of the photo towards candidate ``rank`` (1-based)."""
        return next(iter(self.explain(located, rank).values()))

    def explain(self, located: LocatedImage, rank: int) -> dict:
        """Named Grad-CAM maps (one per branch, main first) of the photo towards candidate ``rank``."""
        candidates = located.prediction.candidates
        if not 1 <= rank <= len(candidates):
            raise FormError(f"There is no candidate #{rank} for this photo.")
        candidate = candidates[rank - 1]
        locator = self.locator(located.model)
        if not locator.spec.capabilities.gradcam:
            raise FormError(f"{locator.spec.label} has no Grad-CAM.")
        with self._compute_lock:
            return locator.explain(located.path, candidate.lat, candidate.lon)
