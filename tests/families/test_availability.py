"""Which models can be chosen, and how their state reads: unavailable families marked with the reason, a family
whose models are its variants listed by them once one is built (never "missing" again), the same words in the
dropdowns, the Models tab and `weights status`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from geoapp.families import availability, registry
from geoapp.families.registry import LoadOptions
from geoapp.families.variants import signature, write_manifest
from geoapp.models.weights import WeightFile

from .test_registry import run_main

BUILT_FILE = WeightFile(key="toybuilt/checkpoint", description="Toy model built from your photos (tests only)",
                        filename="toy-built.json", source="local:toybuilt", licence="yours",
                        how_to_get="build one with `python -m tests.families.toy build`")
NEEDY_FILE = WeightFile(key="toyneedy/weights", description="Toy weights nobody has (tests only)",
                        filename="toy-needy.bin", source="local:toyneedy", licence="test",
                        how_to_get="there is no way to get it")


@pytest.fixture
def toys(monkeypatch, tmp_path):
    """Three toy families: ready (optional file only), one that needs a missing file, one whose models are built."""
    from tests.families import toy

    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "weights"))
    specs = [toy.SPEC,
             replace(toy.SPEC, key="toyneedy", label="Needy toy", weight_files=(NEEDY_FILE,)),
             replace(toy.SPEC, key="toybuilt", label="Built toy", weight_files=(BUILT_FILE,), variants_only=True)]
    for spec in specs:
        registry.register(spec)
    yield tmp_path / "variants"
    for spec in specs:
        registry.unregister(spec.key)


def build_variant(variants, tag: str) -> None:
    folder = variants / tag
    folder.mkdir(parents=True)
    (folder / "toy-built.json").write_text("{}")
    write_manifest(folder, "toybuilt", tag, "toy-built.json", label=f"Built toy — {tag}")


def choice(key: str, **kwargs) -> availability.ModelChoice | None:
    return next((c for c in availability.model_choices(**kwargs) if c.key == key), None)


def test_unavailable_models_are_marked_with_the_reason_and_listed_last(toys):
    choices = availability.model_choices()
    keys = [c.key for c in choices]
    needy = choice("toyneedy")
    assert needy is not None and not needy.ready
    assert needy.display_label == "Needy toy — unavailable: needs toy-needy.bin"
    assert "there is no way to get it" in needy.problem
    assert choice("toy").ready and choice("toy").display_label == "Toy family (tests)"
    first_unavailable = next(i for i, c in enumerate(choices) if not c.ready)
    assert all(not c.ready for c in choices[first_unavailable:]), keys  # ready ones first
    # A random test run can load every family: nothing is unavailable then.
    assert choice("toyneedy", options=LoadOptions(backbone_weights="random")).ready


def test_a_family_of_built_models_says_none_built_then_lists_its_models_instead(toys):
    base = choice("toybuilt")
    assert base.display_label == "Built toy — unavailable: none built yet (Models tab)"
    assert base.problem.startswith("No built toy has been built yet.") and "Missing" not in base.problem
    spec = registry.get("toybuilt")
    assert availability.family_state(spec) == "builds models from your photos: none built yet"
    assert availability.per_variant_file(BUILT_FILE) == "one per built model (none built yet)"

    build_variant(toys, "north")
    keys = [c.key for c in availability.model_choices()]
    assert "toybuilt:north" in keys and "toybuilt" not in keys  # no generic entry once a model exists
    assert choice("toybuilt:north").ready
    assert "never runs by itself" in spec.problem() and "toybuilt:north" in spec.problem()
    assert availability.family_state(spec) == "builds models from your photos: 1 built (toybuilt:north)"
    assert availability.per_variant_file(BUILT_FILE) == "one per built model (1 built: toybuilt:north)"
    assert availability.per_variant_file(NEEDY_FILE) is None  # an ordinary file stays "missing"


def test_weights_status_says_built_models_not_missing(toys):
    build_variant(toys, "north")
    code, out, _ = run_main("weights", "status", "--no-checksums")
    assert code == 0
    assert "[absent ] Toy model built from your photos (tests only)" in out  # not [MISSING]
    assert "one per built model (1 built: toybuilt:north): build one with" in out
    assert "[MISSING] Toy weights nobody has (tests only)" in out
    assert "toybuilt               builds models from your photos: 1 built (toybuilt:north)" in out
    assert "toyneedy               missing toy-needy.bin" in out


def test_the_variants_signature_changes_when_a_model_is_built_or_removed(toys):
    import shutil

    before = signature()
    build_variant(toys, "north")
    built = signature()
    assert built != before and built[0][0] == "north"
    assert signature() == built  # unchanged folder, same signature
    shutil.rmtree(toys / "north")
    assert signature() == before
