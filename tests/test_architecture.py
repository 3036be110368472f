"""The layer rules (.importlinter) hold, and no family is named outside its own package."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

BUILTIN_KEYS = ("translocator", "satworld", "ensemble")


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_family_is_named_outside_its_package():
    """Only the families' own packages (and the registry's list of built-in packages) name a family."""
    pattern = re.compile(r'"(' + "|".join(BUILTIN_KEYS) + r')"')
    offenders = []
    for path in (REPO / "geoapp").rglob("*.py"):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("geoapp/families/") and relative != "geoapp/families/__init__.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
