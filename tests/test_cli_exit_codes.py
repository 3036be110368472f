"""The command line as scripts see it (issue 26, item 20): the usage line names the command that was run,
and ``predict`` exits non-zero when nothing was predicted (documented in --help)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geoapp.cli.main import program_name

from .conftest import REPO, shared_path

TINY = ["--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu"]


def _run(command: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _installed_command() -> list[str]:
    """The `geoapp` console script of this environment; where it is not installed (or was installed for an
    older layout), the same entry point run under that name (what the script does)."""
    script = Path(sys.executable).parent / "geoapp"
    if script.is_file() and "geoapp.cli.main" in script.read_text(errors="replace"):
        return [str(script)]
    return [sys.executable, "-c", "import sys; sys.argv[0] = '/usr/local/bin/geoapp'; "
                                  "from geoapp.cli.main import main; sys.exit(main())"]


@pytest.fixture(scope="module", autouse=True)
def _warm_gallery_cache(tiny_locator):
    tiny_locator.candidate_set()


def test_usage_names_the_command_that_was_run():
    installed = _run(_installed_command(), "--help")
    assert installed.returncode == 0 and installed.stdout.startswith("usage: geoapp "), installed.stdout[:80]
    assert "Exit status: 0" in installed.stdout
    module = _run([sys.executable, "-m", "geoapp"], "tiles", "--help")
    assert module.stdout.startswith("usage: python -m geoapp tiles")
    assert program_name("/opt/venv/bin/geoapp") == "geoapp"
    assert program_name("/src/geoapp/__main__.py") == "python -m geoapp"


def test_predict_exits_1_when_nothing_was_predicted(tmp_path):
    missing = str(tmp_path / "missing.jpg")
    none = _run([sys.executable, "-m", "geoapp"], "predict", missing, *TINY)
    assert none.returncode == 1, none.stderr
    assert "0 predicted, 1 failed" in none.stderr
    photo = str(sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[0])
    some = _run([sys.executable, "-m", "geoapp"], "predict", photo, missing, *TINY, "--top-k", "2")
    assert some.returncode == 0, some.stderr
    strict = _run([sys.executable, "-m", "geoapp"], "predict", photo, missing, *TINY, "--top-k", "2", "--strict")
    assert strict.returncode == 1
    records = _run([sys.executable, "-m", "geoapp"], "predict", missing, *TINY, "-o", str(tmp_path / "r.jsonl"))
    assert records.returncode == 1, records.stderr  # the same rule for record outputs
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    frames = _run([sys.executable, "-m", "geoapp"], "predict", str(empty), "--keyframes-only", str(tmp_path / "kf"))
    assert frames.returncode == 1 and "the file is empty" in frames.stderr  # no video written: 1 as well
    helptext = _run([sys.executable, "-m", "geoapp"], "predict", "--help").stdout
    assert "every input failed" in " ".join(helptext.split())
