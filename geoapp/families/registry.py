"""The family registry: one :class:`FamilySpec` per family, registered next to its code.

Like timm's ``@register_model`` + ``PretrainedCfg`` and open_clip's configs-as-data: a family is
described by data (key, label, input domain, caveat, weight files, capabilities, options, how
``auto`` picks it) and *names* its loader as ``"module:function"``, so listing families (``--help``,
``python -m geoapp models``, ``weights status``, the UI's dropdowns) never imports torch.

* Built-in families are the packages in :data:`BUILTIN_PACKAGES`; each registers its spec when
  imported. Extra packages (plugins) can be named in ``$GEOAPP_FAMILY_PACKAGES`` (comma-separated).
* User-trained variants: a folder ``<variants dir>/<tag>/manifest.json`` (see :mod:`.variants`)
  appears as ``family:tag`` with no code change.
* Lookup errors list the valid keys (and the closest one).
"""

from __future__ import annotations

import difflib
import importlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from geoapp.families.base import GROUND_PHOTO, Capabilities, CapabilityError, Family
from geoapp.families.variants import Variant, discover
from geoapp.models.weights import WeightFile, find
from geoapp.runtime.request import check_family_runtime
from geoapp.settings import Settings

# The only place that lists the built-in families (order = display order).
BUILTIN_PACKAGES = (
    "geoapp.families.geoclip",
    "geoapp.families.satworld",
    "geoapp.families.translocator",
    "geoapp.families.ensemble",
    "geoapp.families.regional",
    "geoapp.families.maptiles",
)
PLUGINS_ENV = "GEOAPP_FAMILY_PACKAGES"
AUTO = "auto"
DEFAULT_KEY = "geoclip"  # what Geolocator.load() loads when no model is named (the paper's model)


class UnknownFamilyError(ValueError):
    """No family of that name; the message lists the valid ones."""


@dataclass(frozen=True)
class FamilyOption:
    """A family-specific prediction option (CLI ``--name``, a UI field, ``PredictOptions.extras``)."""

    name: str  # python identifier, e.g. "beam_k"; CLI flag --beam-k
    type: type = int
    default: Any = None
    help: str = ""
    choices: tuple = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class FamilyBuilder:
    """How analysts build a variant of the family from their own geotagged photos.

    The builder is a command run as a subprocess (``geoapp`` never imports ``training``):
    ``python -m <module> build SOURCE --countries CODES --method METHOD --name NAME [--backbone B]``; it writes
    the variant folder with its manifest (which holds the held-out metrics).
    """

    module: str  # e.g. "training.regional"
    methods: tuple[str, ...]
    default_method: str
    help: str = ""
    backbones: tuple[tuple[str, str], ...] = ()  # (label, value) of the feature extractors offered, if a choice
    default_backbone: str = ""


@dataclass(frozen=True)
class LoadOptions:
    """How to load a family (typed; family-specific knobs in ``extras``)."""

    device: str | None = None  # None: CUDA when available, else CPU
    backbone_weights: str | None = None  # None: pretrained; "random": test run (flagged); or a backbone checkpoint path
    checkpoint: str | Path | None = None  # the family's own trained checkpoint (None: its default / the variant's)
    extras: Mapping[str, Any] = field(default_factory=dict)  # e.g. backbone, gallery, cache_dir, segmenter

    @property
    def random(self) -> bool:
        return self.backbone_weights == "random"


@dataclass(frozen=True)
class FamilySpec:
    """Everything known about a family without loading it."""

    key: str
    label: str
    description: str
    loader: str  # "package.module:function", called as function(spec, LoadOptions) -> Family
    input_domain: str = GROUND_PHOTO
    caveat: str | None = None  # shown with every result (set for non-ground-photo models)
    capabilities: Capabilities = field(default_factory=Capabilities)
    weight_files: tuple[WeightFile, ...] = ()  # needed for real results (optional=True: extras)
    members: tuple[str, ...] = ()  # families this one combines (their files count too)
    auto_priority: int | None = None  # `auto` picks the highest ready family; None: never
    options: tuple[FamilyOption, ...] = ()
    builder: FamilyBuilder | None = None  # analysts can build variants from their photos (Models tab)
    # The bare key never runs by itself: its models are the variants family:tag (a regional model is built from
    # the analyst's photos). It is offered as a choice only until one is built; random test runs still load it.
    variants_only: bool = False
    # "module:function" adding the family's own commands, called as function(groups) with the CLI's subparser
    # groups by name ({"root": ..., "tiles": ...}); imported only when the CLI parser is built.
    cli_commands: str | None = None
    # "module:function" giving this family's frozen image encoder to other families as a backbone (a family never
    # imports another): function(weights) -> (torch module with encode_image / embed_dim / config.preprocess(),
    # description of its weights); weights None = the family's trained ones, "random" = seeded random, or a path.
    image_encoder: str | None = None
    test_options: Mapping[str, Any] = field(default_factory=dict)  # LoadOptions extras for a tiny random instance
    paper: str = ""
    variant: Variant | None = None

    # ------------------------------------------------------------------ weights
    def required_files(self) -> list[WeightFile]:
        """Non-optional files of this family and its members (deduplicated, in order)."""
        files: list[WeightFile] = []
        for member in self.members:
            files += get(member).required_files()
        files += [w for w in self.weight_files if not w.optional]
        return _unique(files)

    def all_files(self) -> list[WeightFile]:
        files: list[WeightFile] = []
        for member in self.members:
            files += get(member).all_files()
        return _unique([*files, *self.weight_files])

    def missing_files(self, settings: Settings | None = None) -> list[WeightFile]:
        """Required files not on this machine (a variant's own checkpoint replaces the default one)."""
        missing = [w for w in self.required_files() if find(w, settings) is None]
        if self.variant is not None:
            missing = [w for w in missing if not w.source.startswith("local:")]
            if self.variant.checkpoint is None or not self.variant.checkpoint.is_file():
                missing.append(WeightFile(key=f"{self.key}/checkpoint", description=f"checkpoint of {self.label}",
                                          filename=str(self.variant.manifest.get("checkpoint", "?")),
                                          source=f"local:{self.variant.folder}", licence="yours",
                                          how_to_get=f"the variant folder {self.variant.folder} is incomplete"))
        return missing

    def problem(self, options: LoadOptions | None = None, settings: Settings | None = None) -> str | None:
        """Why this family cannot give real results here (with the fix), or None. A file lookup only."""
        options = options or LoadOptions()
        if options.random or options.checkpoint is not None:
            return None  # random test run, or an explicit checkpoint that loading will check
        if self.variants_only and self.variant is None:
            built = [spec.key for spec in variants_of(self.key)]
            if built:
                return f"{self.label} never runs by itself: choose one of its models ({', '.join(built)})."
            hints = " ".join(f"To fix: {w.fix_hint()}." for w in self.missing_files(settings))
            return f"No {self.label.lower()} has been built yet. {hints}".strip()
        missing = self.missing_files(settings)
        if not missing:
            return None
        return " ".join(f"Missing: {w.filename} — {w.description}. To fix: {w.fix_hint()}." for w in missing)

    # ------------------------------------------------------------------ loading
    def load(self, options: LoadOptions | None = None, **kwargs: Any) -> Family:
        """Import the loader and build the family (heavy imports happen here, not before)."""
        options = options or LoadOptions()
        if kwargs:
            options = replace(options, extras={**options.extras, **kwargs})
        if options.checkpoint is None and self.variant is not None:
            options = replace(options, checkpoint=self.variant.checkpoint)
        module_name, _, function = self.loader.partition(":")
        loader: Callable[[FamilySpec, LoadOptions], Family] = getattr(importlib.import_module(module_name), function)
        family = loader(self, options)
        family.spec = self
        check_family_runtime(family, options.extras)  # int8 asked for and not delivered is an error
        return family


    def load_image_encoder(self, weights: str | None = None) -> tuple[Any, str]:
        """This family's image encoder as another family's backbone (see ``image_encoder``)."""
        if not self.image_encoder:
            raise CapabilityError(f"{self.label} offers no image encoder to other families")
        module_name, _, function = self.image_encoder.partition(":")
        return getattr(importlib.import_module(module_name), function)(weights)


def _unique(files: list[WeightFile]) -> list[WeightFile]:
    seen: dict[str, WeightFile] = {}
    for weight in files:
        seen.setdefault(weight.key, weight)
    return list(seen.values())


# ---------------------------------------------------------------------------------------------- the registry
_SPECS: dict[str, FamilySpec] = {}
_LOCK = threading.RLock()
_LOADED = False


def register(spec: FamilySpec) -> FamilySpec:
    """Add (or replace) a family; returns the spec so a package can write ``SPEC = register(...)``."""
    if ":" in spec.key or not spec.key or spec.key == AUTO:
        raise ValueError(f"invalid family key {spec.key!r}: no ':' (reserved for variants), not {AUTO!r}")
    with _LOCK:
        _SPECS[spec.key] = spec
    return spec


def unregister(key: str) -> None:
    with _LOCK:
        _SPECS.pop(key, None)


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        extra = [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
        for package in (*BUILTIN_PACKAGES, *extra):
            try:
                importlib.import_module(package)
            except ImportError as error:
                if package in BUILTIN_PACKAGES:
                    raise
                raise ImportError(f"family package {package!r} named in ${PLUGINS_ENV} cannot be imported: {error}") \
                    from error
        _LOADED = True


def families(include_variants: bool = True) -> list[FamilySpec]:
    """Every registered family (built-ins first, in registration order), then user variants."""
    _ensure_loaded()
    with _LOCK:
        specs = list(_SPECS.values())
    if include_variants:
        specs += discover(_SPECS)
    return specs


def keys(include_variants: bool = True) -> list[str]:
    return [spec.key for spec in families(include_variants)]


def get(key: str) -> FamilySpec:
    """The spec for ``key`` (``family`` or ``family:tag``); UnknownFamilyError lists the valid keys."""
    _ensure_loaded()
    key = str(key or "").strip()
    with _LOCK:
        if key in _SPECS:
            return _SPECS[key]
    if ":" in key:
        for spec in families(include_variants=True):
            if spec.key == key:
                return spec
    valid = keys()
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownFamilyError(f"Unknown model {key!r}.{hint} Available: {', '.join(valid)} (or {AUTO!r}).")


def variants_of(key: str) -> list[FamilySpec]:
    """The user-trained variants ``key:tag`` found on disk now."""
    return [spec for spec in families() if spec.variant is not None and spec.key.split(":", 1)[0] == key]


def buildable_families() -> list[FamilySpec]:
    return [spec for spec in families(include_variants=False) if spec.builder is not None]


def text_families() -> list[FamilySpec]:
    return [spec for spec in families() if spec.capabilities.text]


def all_weight_files() -> list[WeightFile]:
    """Every family's files, deduplicated (what ``weights status`` lists)."""
    files: list[WeightFile] = []
    for spec in families(include_variants=False):
        files += spec.all_files()
    return _unique(files)


def download_targets() -> dict[str, WeightFile]:
    """``weights download TARGET`` -> file, from every family's downloadable files."""
    targets: dict[str, WeightFile] = {}
    for weight in all_weight_files():
        if weight.download_target:
            targets.setdefault(weight.download_target, weight)
    return targets


def choose(key: str = AUTO, options: LoadOptions | None = None,
           settings: Settings | None = None) -> tuple[FamilySpec, str | None]:
    """Resolve ``auto``: the highest-priority family that can give real results here.

    Returns (spec, notice); the notice says why a lower-priority family was chosen and how to get
    the better one. An explicit key is returned as is (missing weights then fail at load).
    """
    if key not in (AUTO, "", None):
        return get(key), None
    options = options or LoadOptions()
    ranked = sorted((s for s in families(include_variants=False) if s.auto_priority is not None),
                    key=lambda s: -s.auto_priority)
    if not ranked:
        raise UnknownFamilyError("no family can be chosen automatically; name one with --model")
    if options.random or options.backbone_weights not in (None, ""):
        return ranked[0], None  # a test run or an explicit backbone: the caller wants the main family
    skipped: list[str] = []
    for spec in ranked:
        problem = spec.problem(options, settings)
        if problem is None:
            if not skipped:
                return spec, None
            notice = f"{' '.join(skipped)} So {spec.label} is used instead."
            return spec, notice + (f" {spec.caveat}" if spec.caveat else "")
        skipped.append(f"{spec.label} cannot run here ({problem}).")
    return ranked[0], None  # nothing is ready: the first one fails at load with its fix
