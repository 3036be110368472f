"""Every benchmark takes its shared set-up from ``benchmarks/_common.py`` (the machine record with its load
average, the repository on sys.path, --json/--device, writing the results) instead of repeating it, and every
benchmark's ``--help`` answers without loading torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


def offences(source: str) -> list[str]:
    """What a benchmark's source repeats of ``_common``: a missing ``_common`` import, or its own machine
    description (``platform``, ``os.getloadavg``, ``/proc/cpuinfo``). Docstrings and comments do not count."""
    tree = ast.parse(source)
    found = []
    imports_common = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imports_common |= node.module == "_common"
            if node.module == "platform":
                found.append(f"line {node.lineno}: from platform import ...")
            if node.module == "os" and any(a.name == "getloadavg" for a in node.names):
                found.append(f"line {node.lineno}: from os import getloadavg")
        elif isinstance(node, ast.Import):
            imports_common |= any(a.name == "_common" for a in node.names)
            if any(a.name == "platform" for a in node.names):
                found.append(f"line {node.lineno}: import platform")
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "platform":
                found.append(f"line {node.lineno}: platform.{node.attr}")
            if node.attr == "getloadavg":
                found.append(f"line {node.lineno}: .getloadavg")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/proc/cpuinfo"):
            found.append(f"line {node.lineno}: reads /proc/cpuinfo")
    if not imports_common:
        found.append("does not import _common")
    return found


def test_the_benchmarks_are_found():
    assert len(SCRIPTS) >= 10, SCRIPTS  # a wrong glob would make the parametrised tests below vanish


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_uses_common_setup(script: Path):
    assert offences(script.read_text(encoding="utf-8")) == [], f"{script.name}: use benchmarks/_common.py instead"


CLEAN = '''"""Mentions os.getloadavg() and /proc/cpuinfo in its docstring only."""
from _common import bench_parser, emit, machine
# platform.processor() in a comment is fine
'''


@pytest.mark.parametrize("offender, expected", [
    ("from _common import emit\nimport platform\nx = platform.processor()\n", "platform.processor"),
    ("from _common import emit\nimport os\nload = os.getloadavg()\n", ".getloadavg"),
    ("from _common import emit\nfrom os import getloadavg\n", "from os import getloadavg"),
    ("from _common import emit\ntext = open('/proc/cpuinfo').read()\n", "/proc/cpuinfo"),
    ("import json\nprint(json.dumps({}))\n", "does not import _common"),
])
def test_scanner_flags_a_synthetic_offender(offender: str, expected: str):
    assert any(expected in o for o in offences(offender)), offences(offender)


def test_scanner_passes_a_clean_script():
    assert offences(CLEAN) == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_answers_without_torch(script: Path):
    # -X importtime lists every module imported (on stderr): --help must not pay for torch
    result = subprocess.run([sys.executable, "-X", "importtime", str(script), "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage:"), result.stdout[:500]
    assert "--json" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported, f"{script.name} imports torch at --help time; import it inside main()"
