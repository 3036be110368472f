"""The layer rules (.importlinter) hold, and no family is named outside its own package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from geoapp.families import registry

from .conftest import REPO

# Every registered family (built-ins and plugins), not a hand-kept list.
FAMILY_KEYS = tuple(spec.key for spec in registry.families(include_variants=False))


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_family_is_named_outside_its_package():
    """Only the families' own packages (and the registry's list of built-in packages) name a family."""
    assert {"geoclip", "satworld", "translocator", "ensemble", "regional", "maptiles"} <= set(FAMILY_KEYS)
    pattern = re.compile(r"""["'](""" + "|".join(map(re.escape, FAMILY_KEYS)) + r""")["']""")
    offenders = []
    for path in (REPO / "geoapp").rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("geoapp/families/") and relative != "geoapp/families/__init__.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
