"""The layer rules (.importlinter) hold, each contract breaks when a forbidden import is injected, the README's
package map says the same, no family is named outside its own package, and no model load pulls in training code."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geoapp.families import registry

from .conftest import REPO

LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
CONFIG = configparser.ConfigParser()
CONFIG.read(REPO / ".importlinter", encoding="utf-8")


def _lint(cwd: Path, *contracts: str) -> subprocess.CompletedProcess:
    args = [LINT, "--no-cache", *(a for c in contracts for a in ("--contract", c))]
    env = {"PYTHONPATH": str(cwd), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_import_contracts_hold():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


# One forbidden import per contract: (contract id, file, line added at its end).
INJECTIONS = [
    ("layers", "geoapp/tiles/base.py", "import geoapp.families.registry"),  # a lower layer importing a higher one
    ("family-independence", "geoapp/families/satworld/loader.py", "import geoapp.families.ensemble.locator"),
    ("torch-free-core", "geoapp/geo/distance.py", "import torch"),
    ("no-ui-below-consumers", "geoapp/families/base.py", "import folium"),
    ("training-on-top", "geoapp/families/translocator/locator.py", "import training.translocator.loss"),
    ("no-cycles", "geoapp/geo/distance.py", "import geoapp.geo.regions"),  # regions imports distance
]


def test_every_contract_is_tested_by_an_injection():
    contracts = {s.split(":", 2)[2] for s in CONFIG.sections() if s.startswith("importlinter:contract:")}
    assert contracts == {contract for contract, _, _ in INJECTIONS}


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for package in ("geoapp", "training"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", root / ".importlinter")
    return root


@pytest.mark.parametrize("contract, path, line", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_each_contract_breaks_on_a_forbidden_import(tree_copy, contract, path, line):
    target = tree_copy / path
    original = target.read_text(encoding="utf-8")
    assert line not in original
    assert _lint(tree_copy, contract).returncode == 0  # the copy is clean before the injection
    try:
        target.write_text(original + f"\n{line}  # injected by the test\n", encoding="utf-8")
        result = _lint(tree_copy, contract)
    finally:
        target.write_text(original, encoding="utf-8")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "1 broken" in result.stdout


def test_family_independence_lists_every_builtin_family():
    """A new family package is covered by the independence contract as soon as it is registered."""
    listed = CONFIG["importlinter:contract:family-independence"]["modules"].split()
    assert sorted(listed) == sorted(registry.BUILTIN_PACKAGES)


def test_readme_package_map_states_the_contracts_layers():
    layers = [line.strip() for line in CONFIG["importlinter:contract:layers"]["layers"].strip().splitlines()]
    stated = " → ".join(f"`{layer}`" for layer in layers)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert stated in readme, f"README's architecture section must state the layers as: {stated}"


def _family_keys() -> list[str]:
    return [spec.key for spec in registry.families(include_variants=False)]


def test_no_family_is_named_outside_its_package():
    """Only the families' own packages (and the registry's list of built-in packages) name a family."""
    keys = _family_keys()
    assert len(keys) == len(registry.BUILTIN_PACKAGES) >= 6
    pattern = re.compile(r'"(' + "|".join(map(re.escape, keys)) + r')"')
    offenders = []
    for path in (REPO / "geoapp").rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("geoapp/families/") and relative != "geoapp/families/__init__.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_loading_a_family_module_imports_no_training_code():
    """The training losses and trainers stay out of the inference path (checked in a fresh interpreter)."""
    loaders = [spec.loader.partition(":")[0] for spec in registry.families(include_variants=False)]
    code = ("import importlib, sys\n"
            f"for name in {loaders!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'training' or (m.startswith('geoapp') and 'loss' in m))\n"
            "print(len(sys.modules)); print(bad)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    count, bad = result.stdout.strip().splitlines()
    assert int(count) > 100 and bad == "[]", bad
