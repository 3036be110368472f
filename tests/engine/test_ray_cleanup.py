"""A local Ray cluster ends with its driver (issue 26, item 7), on a real local cluster.

The driver is a subprocess that starts the cluster with ``ray_engine.connect`` (as ``predict --engine ray``
does) and runs a task. It is then killed with SIGKILL or SIGTERM, or (the fallback) killed together with
its watchdog, after which ``geoapp engine cleanup`` ends the leftovers. Every process the cluster started
must be gone: polled with a generous bound, never timed. Where the outcome must not depend on how soon
Ray's helpers would exit by themselves, they are stopped (SIGSTOP) first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geoapp.engine import ray_local

from ..conftest import REPO

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to list the cluster's processes")

GONE_WITHIN_S = 180  # a generous bound for a loaded machine; the poll ends as soon as all are gone

DRIVER = """
import os, sys, time
from geoapp.engine import ray_engine
ray_engine.connect(None, num_cpus=1)
import ray

@ray.remote
def where():
    return os.getpid()

print("READY", ray.get(where.remote()), flush=True)
time.sleep(900)
"""


def _start_driver(log: Path) -> tuple[subprocess.Popen, set]:
    with open(log, "wb") as stderr:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=REPO, stdout=subprocess.PIPE, stderr=stderr,
                                  text=True)
    line = driver.stdout.readline()  # blocks until the cluster is up (or the driver failed)
    if not line.startswith("READY"):
        driver.kill()
        pytest.fail(f"the driver did not start a cluster: {line!r}\n{log.read_text(errors='replace')[-3000:]}")
    worker = int(line.split()[1])
    cluster = ray_local.descendants(driver.pid)
    assert len(cluster) >= 4 and worker in {pid for pid, _ in cluster}, cluster  # gcs, raylet, agents, worker ...
    return driver, cluster


def _wait_until_gone(processes: set) -> set:
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := ray_local.alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _names(processes: set) -> list[str]:
    names = []
    for pid, _ in processes:
        try:
            names.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()[:80])
        except OSError:
            names.append(str(pid))
    return names


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sig, stop_helpers", [(signal.SIGKILL, True), (signal.SIGKILL, False), (signal.SIGTERM, False)],
                         ids=["kill-9-helpers-stopped", "kill-9", "sigterm"])
def test_the_cluster_ends_when_its_driver_is_killed(sig, stop_helpers, tmp_path):
    """Ray's helpers (dashboard and runtime-env agents, workers) exit by themselves some time after their raylet
    (about a minute for the agents with Ray 2.60), so the first case stops them (SIGSTOP) before the driver is
    killed: a helper that cannot exit by itself must still be ended, which only an active clean-up does."""
    driver, cluster = _start_driver(tmp_path / "driver.log")
    try:
        if stop_helpers:
            _stop_helpers(driver, cluster)
        os.kill(driver.pid, sig)
        driver.wait(timeout=120)
        left = _wait_until_gone(cluster)
        assert not left, f"orphaned after the driver got {sig.name}: {_names(left)}"
        assert not list(ray_local.records_dir().glob(f"{driver.pid}-*.json"))  # the watchdog tidied its record
    finally:
        _kill(driver, cluster)


def _stop_helpers(driver: subprocess.Popen, cluster: set) -> None:
    """SIGSTOP the cluster's processes that are not the driver's own children (the agents and workers, children
    of the raylet): stopped, they cannot exit by themselves."""
    table = ray_local.process_table()
    helpers = [pid for pid, _ in cluster if table.get(pid, (driver.pid,))[0] != driver.pid]
    assert len(helpers) >= 2, _names(cluster)
    for pid in helpers:
        os.kill(pid, signal.SIGSTOP)


def _kill(driver: subprocess.Popen, processes: set) -> None:
    """Test hygiene: whatever a failed case left is killed (these are this test's own processes)."""
    if driver.poll() is None:
        driver.kill()
        driver.wait(timeout=120)
    for pid, _ in ray_local.alive(processes):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.timeout(600)
def test_cleanup_ends_the_leftovers_when_the_watchdog_was_killed_too(tmp_path):
    driver, cluster = _start_driver(tmp_path / "driver.log")
    try:
        watchdogs = [pid for pid, _ in cluster
                     if b"geoapp.engine.ray_local" in open(f"/proc/{pid}/cmdline", "rb").read()]
        assert len(watchdogs) == 1, f"expected one watchdog among the driver's processes: {_names(cluster)}"
        deadline = time.monotonic() + GONE_WITHIN_S
        while not list(ray_local.records_dir().glob(f"{driver.pid}-*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the watchdog writes its record within a second of starting
        _stop_helpers(driver, cluster)  # so that what is left is left for cleanup, whatever the timing
        os.kill(watchdogs[0], signal.SIGKILL)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=120)
        out = subprocess.run([sys.executable, "-m", "geoapp", "engine", "cleanup"], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        left = _wait_until_gone(cluster)
        assert not left, f"left after `geoapp engine cleanup`: {_names(left)}\n{out.stdout}"
        assert "Ending" in out.stdout and not list(ray_local.records_dir().glob(f"{driver.pid}-*.json"))
    finally:
        _kill(driver, cluster)
