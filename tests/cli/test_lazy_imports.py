"""The commands that load no model answer without the heavy libraries: checked on ``sys.modules`` in a fresh
interpreter (not by timing). scipy and huggingface_hub are listed too: each alone costs about a second here
(geoapp.geo's place and country indexes; the hub's downloader), which is what kept ``--help`` slow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO

HEAVY = ("torch", "torchvision", "open_clip", "gradio", "ray", "pandas", "pyarrow", "scipy", "shapely",
         "huggingface_hub", "transformers", "faiss", "av", "sqlalchemy")


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["models"], ["models", "--json"],
                                  ["serve", "--help"], ["serve", "--status"], ["tiles", "--help"]])
def test_commands_without_a_model_import_nothing_heavy(argv):
    code = ("import json, sys\nfrom geoapp.cli.main import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in %r if m in sys.modules)), file=sys.stderr)" % (argv, HEAVY))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
