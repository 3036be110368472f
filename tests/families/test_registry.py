"""A family registered from a test appears everywhere families are listed, with no other file changed;
variants from manifests; lookup errors; `auto`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from geoapp.families import registry
from geoapp.families.variants import write_manifest

from ..conftest import REPO, shared_path


@pytest.fixture
def toy(monkeypatch, tmp_path):
    from tests.families import toy as module

    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    registry.register(module.SPEC)
    yield module
    registry.unregister("toy")


def run_main(*args: str) -> tuple[int, str, str]:
    from geoapp.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def photo() -> str:
    return str(sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[0])


def test_toy_family_everywhere(toy, tmp_path):
    from geoapp.cli.main import build_parser
    from geoapp.ui.locate_tab import family_options
    from geoapp.ui.service import GeolocationService, ModelSettings

    # CLI choices and help; the family's own option becomes a flag.
    args = build_parser().parse_args(["predict", "x.jpg", "--model", "toy", "--toy-bias", "2"])
    assert args.model == "toy" and args.family_option_toy_bias == 2.0
    args = build_parser().parse_args(["case", "analyze", "CASE", "--model", "toy"])
    assert args.model == "toy"
    # `models` and `weights status`
    code, out, _ = run_main("models")
    assert code == 0 and "toy: Toy family (tests)" in out and "caveat: Toy family: for tests only." in out
    code, out, _ = run_main("models", "--json")
    record = next(r for r in json.loads(out) if r["key"] == "toy")
    assert record["input"] == "satellite/aerial image" and record["capabilities"] == ["region"]
    code, out, _ = run_main("weights", "status", "--no-checksums")
    assert code == 0 and "toy-table.json" in out and "used by: toy" in out
    # UI dropdowns and options
    service = GeolocationService(ModelSettings(device="cpu"))
    assert ("Toy family (tests)", "toy") in service.model_choices()
    assert ("Toy family (tests)", "toy") not in service.model_choices(text_only=True)
    assert "toy_bias" in [option.name for option in family_options(service)]
    # Predictions through the CLI, with the caveat in the output.
    output = tmp_path / "out.json"
    code, _, err = run_main("predict", photo(), str(tmp_path / "missing.jpg"), "--model", "toy", "--output", str(output))
    records = json.loads(output.read_text())
    assert code == 0 and len(records) == 2 and records[0]["ok"] and not records[1]["ok"]
    assert toy.TOY_CAVEAT in records[0]["warnings"] and records[0]["model"]["family"] == "toy"
    assert "CAVEAT: Toy family" in err


def test_variant_from_manifest_appears_and_loads(toy, tmp_path):
    folder = tmp_path / "variants" / "mine"
    (folder).mkdir(parents=True)
    (folder / "table.json").write_text("{}")
    write_manifest(folder, "toy", "mine", "table.json", label="My toy", extra={"metrics": {"acc": 1.0}})
    (tmp_path / "variants" / "broken").mkdir()
    (tmp_path / "variants" / "broken" / "manifest.json").write_text("{not json")
    assert "toy:mine" in registry.keys()
    spec = registry.get("toy:mine")
    assert spec.label == "My toy" and spec.variant.manifest["metrics"] == {"acc": 1.0}
    family = spec.load()
    assert family.checkpoint == folder / "table.json" and family.describe().family == "toy:mine"
    code, out, _ = run_main("models")
    assert "toy:mine: My toy" in out


def test_unknown_family_lists_valid_keys():
    with pytest.raises(registry.UnknownFamilyError) as error:
        registry.get("geoclpi")
    assert "geoclip" in str(error.value) and "Did you mean 'geoclip'" in str(error.value)
    with pytest.raises(SystemExit):  # argparse refuses a model that is not registered
        from geoapp.cli.main import build_parser

        build_parser().parse_args(["predict", "x.jpg", "--model", "nope"])


def test_auto_prefers_the_best_ready_family(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))
    spec, notice = registry.choose()
    ranked = sorted((s for s in registry.families(include_variants=False) if s.auto_priority is not None),
                    key=lambda s: -s.auto_priority)
    if spec.key == ranked[0].key:
        assert notice is None
    else:
        assert notice and "weights download" in notice and (spec.caveat or "") in notice
    random_spec, random_notice = registry.choose(options=registry.LoadOptions(backbone_weights="random"))
    assert random_spec.key == ranked[0].key and random_notice is None


def test_plugin_package_from_the_environment_in_a_subprocess():
    env = {**os.environ, "GEOAPP_FAMILY_PACKAGES": "tests.families.toy", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "geoapp", "models"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "toy: Toy family (tests)" in result.stdout and "geoclip: GeoCLIP" in result.stdout


def test_models_command_is_fast_and_offline():
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "geoapp", "models"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    for key in ("geoclip", "satworld", "translocator", "ensemble"):
        assert f"] {key}:" in result.stdout
    assert "input: satellite/aerial image" in result.stdout and "text, tencrop, region, gradcam" in result.stdout
    assert "torch" not in result.stderr
    print(f"python -m geoapp models: {elapsed:.2f} s")
