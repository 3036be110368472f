"""Real local workers (``python -m geoapp serve``) for the tests: started as processes, polled until ready (with a
bound), stopped afterwards. Each worker lives in its own serve folder (``GEOAPP_SERVE_DIR``), so tests never see
each other's workers whatever their order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import REPO

READY_BOUND_S = 900.0  # a bound, not a timing: loading on a busy 2-core machine takes a minute at most
TINY_GEOCLIP = ["--model", "geoclip", "--backbone", "tiny-test", "--backbone-weights", "random"]


def env_for(serve_dir: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GEOAPP_SERVE_DIR": str(serve_dir)}


def geoapp(*args: str, env: dict, cwd: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoapp", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class RunningWorker:
    process: subprocess.Popen
    serve_dir: Path
    name: str
    log: Path

    @property
    def env(self) -> dict:
        return env_for(self.serve_dir)

    @property
    def state_file(self) -> Path:
        return self.serve_dir / f"{self.name}.json"

    def requests(self) -> int:
        """Calls served so far, as `serve --status --json` reports them."""
        import json

        status = geoapp("serve", "--status", "--json", env=self.env, timeout=120)
        rows = {row["name"]: row for row in json.loads(status.stdout or "[]")}
        return rows[self.name]["requests"]

    def stop(self) -> None:
        if self.process.poll() is None:
            geoapp("serve", "--stop", "--name", self.name, env=self.env, timeout=120)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(serve_dir: Path, *args: str, name: str = "default") -> RunningWorker:
    """``geoapp serve ARGS --name NAME`` in the foreground; returns once its state file names its pid."""
    serve_dir.mkdir(parents=True, exist_ok=True)
    log = serve_dir.parent / f"{name}-worker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "geoapp", "serve", *args, "--name", name], cwd=REPO,
                                   env=env_for(serve_dir), stdout=out, stderr=subprocess.STDOUT)
    worker = RunningWorker(process, serve_dir, name, log)
    deadline = time.monotonic() + READY_BOUND_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) while starting:\n{log.read_text()[-3000:]}")
        if worker.state_file.exists():
            import json

            try:
                if json.loads(worker.state_file.read_text())["pid"] == process.pid:
                    return worker
            except (ValueError, KeyError):
                pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the worker was not ready within {READY_BOUND_S:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def satworld_worker(tmp_path_factory):
    worker = start_worker(tmp_path_factory.mktemp("satworld") / "serve", "--model", "satworld")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def tiny_geoclip_worker(tmp_path_factory, tiny_locator):
    tiny_locator.candidate_set()  # the 100K gallery's embeddings are in the session's cache: no worker encodes them
    worker = start_worker(tmp_path_factory.mktemp("tiny") / "serve", *TINY_GEOCLIP)
    yield worker
    worker.stop()
