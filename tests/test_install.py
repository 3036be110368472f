"""`pip install -e .` (the README's set-up): the console commands and `python -m geoapp` work from
any folder, and the files the code needs (migrations, map assets, SatWorld) are found.

The test venv borrows this environment's packages through a .pth file, so nothing is downloaded
(`--no-deps --no-build-isolation --no-index`).
"""

from __future__ import annotations

import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

CHECK = """
from geoapp.cases.db import MIGRATIONS_DIR
from geoapp.families.satworld.model import ASSET_PATH
from geoapp.ui.assets import map_asset_dir
assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file(), MIGRATIONS_DIR
assert ASSET_PATH.is_file(), ASSET_PATH
assert map_asset_dir().is_dir(), map_asset_dir()
print("ok")
"""


@pytest.mark.timeout(300)
def test_editable_install_runs_from_any_folder(tmp_path):
    pytest.importorskip("setuptools", minversion="68")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--no-index", "-e", str(REPO)], capture_output=True, text=True, timeout=240, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
           "GEOAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'cases.db'}", "GEOAPP_CASE_STORE": str(tmp_path / "store")}
    for command in ([env_dir / "bin" / "geoapp", "--help"], [python, "-m", "geoapp", "--help"],
                    [env_dir / "bin" / "geoapp-app", "--help"], [env_dir / "bin" / "geoapp", "case", "list"],
                    [python, "-c", CHECK]):
        result = subprocess.run([str(c) for c in command], cwd=elsewhere, env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"


def test_readme_set_up_uses_the_install_and_warns_of_its_size():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count("pip install -e .") >= 2  # the app's and the tests' set-up
    assert "pip install -r requirements.txt" not in readme
    assert "7 GB" in readme and "--index-url https://download.pytorch.org/whl/cpu" in readme
