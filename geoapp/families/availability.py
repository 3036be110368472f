"""Which models can run here, in the words every consumer shares: the app's model dropdowns, the Models tab
and ``weights status``. A file lookup only (nothing is loaded, no torch).

* A family that cannot give real results here stays listed, after the ready ones, marked "unavailable" with a
  short reason; the full reason with its fix is :meth:`FamilySpec.problem`.
* A family whose models are its variants (``variants_only``: regional models built from the analyst's photos)
  is listed by its variants once one is built; until then the bare key says "none built yet".
"""

from __future__ import annotations

from dataclasses import dataclass

from geoapp.families.registry import FamilySpec, LoadOptions, families, variants_of
from geoapp.models.weights import WeightFile
from geoapp.settings import Settings


@dataclass(frozen=True)
class ModelChoice:
    """One entry of a model dropdown."""

    key: str
    label: str
    problem: str | None = None  # why it cannot give real results here, with the fix; None: ready
    note: str | None = None  # the same in a few words, for the dropdown label

    @property
    def ready(self) -> bool:
        return self.problem is None

    @property
    def display_label(self) -> str:
        return self.label if self.ready else f"{self.label} — unavailable: {self.note}"


def _note(spec: FamilySpec, settings: Settings | None) -> str:
    if spec.variants_only and spec.variant is None:
        return "none built yet (Models tab)"
    missing = [w.filename for w in spec.missing_files(settings)]
    if len(missing) > 2:  # the Models tab lists them, with how to get each
        return f"needs {len(missing)} weight files (Models tab)"
    return f"needs {', '.join(missing)}" if missing else "see the Models tab"


def model_choices(options: LoadOptions | None = None, *, text_only: bool = False,
                  settings: Settings | None = None) -> list[ModelChoice]:
    """Every model that can be chosen: ready ones first (registry order), then the unavailable ones."""
    options = options or LoadOptions()
    ready: list[ModelChoice] = []
    unavailable: list[ModelChoice] = []
    for spec in families():
        if text_only and not spec.capabilities.text:
            continue
        if spec.variants_only and spec.variant is None and variants_of(spec.key):
            continue  # its built models are listed instead
        problem = spec.problem(options, settings)
        if problem is None:
            ready.append(ModelChoice(spec.key, spec.label))
        else:
            unavailable.append(ModelChoice(spec.key, spec.label, problem, _note(spec, settings)))
    return ready + unavailable


def family_state(spec: FamilySpec, settings: Settings | None = None) -> str:
    """One line on a family's weights: "ready", "missing FILES", or for a family whose models are its variants,
    how many are built."""
    if spec.variants_only and spec.variant is None:
        built = [variant.key for variant in variants_of(spec.key)]
        return (f"builds models from your photos: {len(built)} built ({', '.join(built)})" if built
                else "builds models from your photos: none built yet")
    missing = spec.missing_files(settings)
    return "ready" if not missing else f"missing {', '.join(w.filename for w in missing)}"


def per_variant_file(weight: WeightFile) -> str | None:
    """For the checkpoint of a family whose models are its variants: where the copies are (one per built model)
    instead of "missing"; None for every other file."""
    owners = [spec for spec in families(include_variants=False) if spec.variants_only and weight in spec.weight_files]
    if not owners:
        return None
    built = [variant.key for spec in owners for variant in variants_of(spec.key)]
    return (f"one per built model ({len(built)} built: {', '.join(built)})" if built
            else "one per built model (none built yet)")
