"""A local Ray cluster ends with its driver (issue 26, item 7), on a real local cluster.

The driver is a subprocess that starts the cluster with ``ray_engine.connect`` (as ``predict --engine ray``
does) and runs a task. It is then killed with SIGKILL or SIGTERM, or (the fallback) killed together with
its watchdog, after which ``geoapp engine cleanup`` ends the leftovers. Every process the cluster started
must be gone: polled with a generous bound, never timed.
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
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_the_cluster_ends_when_its_driver_is_killed(sig, tmp_path):
    driver, cluster = _start_driver(tmp_path / "driver.log")
    os.kill(driver.pid, sig)
    driver.wait(timeout=120)
    left = _wait_until_gone(cluster)
    assert not left, f"orphaned after the driver got {sig.name}: {_names(left)}"
    assert not list(ray_local.records_dir().glob(f"{driver.pid}-*.json"))  # the watchdog tidied its record


@pytest.mark.timeout(600)
def test_cleanup_ends_the_leftovers_when_the_watchdog_was_killed_too(tmp_path):
    driver, cluster = _start_driver(tmp_path / "driver.log")
    watchdogs = [pid for pid, _ in cluster if b"geoapp.engine.ray_local" in open(f"/proc/{pid}/cmdline", "rb").read()]
    if len(watchdogs) != 1:
        os.kill(driver.pid, signal.SIGTERM)  # Ray's own handler ends the cluster; leave nothing behind
        driver.wait(timeout=120)
        pytest.fail(f"expected one watchdog among the driver's processes: {_names(cluster)}")
    deadline = time.monotonic() + GONE_WITHIN_S
    while not list(ray_local.records_dir().glob(f"{driver.pid}-*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the watchdog writes its record within a second of starting
    os.kill(watchdogs[0], signal.SIGKILL)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=120)
    out = subprocess.run([sys.executable, "-m", "geoapp", "engine", "cleanup"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    left = _wait_until_gone(cluster)
    assert not left, f"left after `geoapp engine cleanup`: {_names(left)}\n{out.stdout}"
    assert "Ending" in out.stdout and not list(ray_local.records_dir().glob(f"{driver.pid}-*.json"))
