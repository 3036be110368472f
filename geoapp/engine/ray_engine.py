"""The batch engine on Ray (``python -m geoapp predict --engine ray``), with Ray Data's pattern for
batch inference: a callable class per worker holds one loaded model (:class:`Predictor`) and
``Dataset.map_batches`` runs it on a fixed pool of actors (``concurrency=workers``).

* Images are read and decoded on the workers (local paths, or URLs through ``pyarrow.fs``); the
  driver sends only input keys and receives flat records (JSON text, one per input).
* The driver writes the records as they stream back (``iter_batches``) into a folder of parts
  (:class:`geoapp.engine.output.PartsOutput`): atomic parts, each input written once, a rerun skips
  inputs already written.
* A worker that dies is restarted and its batch retried (Ray Data's actor-pool defaults
  ``max_restarts=-1`` / ``max_task_retries=-1``);
  a retried batch can never duplicate a record because the driver writes each input once.
* A local cluster started here ends with the driver, also when the driver is killed (``kill -9``):
  see :mod:`geoapp.engine.ray_local` (a watchdog process, and ``geoapp engine cleanup``).
* Privacy: Ray's usage statistics are off (``RAY_USAGE_STATS_ENABLED=0`` is set before ray is
  imported) and a local cluster has no dashboard. Ray 2.60 cannot be told to listen on loopback only:
  it turns 127.0.0.1 into the machine's address, so its gRPC ports listen on the machine's network
  address; they require Ray's cluster token (token authentication, on by default). Firewall those ports
  on an untrusted network.

Only this module imports ray, and only ``--engine ray`` imports this module.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoapp.engine import ray_local
from geoapp.engine.inputs import load_family, predict_inputs
from geoapp.engine.output import PartsOutput
from geoapp.results.formats import to_records

# Privacy rule: no telemetry. Set before ray is imported anywhere in this process.
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

#: Test hook: when this folder holds a file ``armed``, the first worker batch to claim it (atomic
#: rename to ``fired``) kills its worker process, as a crash would.
CRASH_DIR_ENV = "GEOAPP_TEST_RAY_CRASH_DIR"
#: Environment variables a local cluster's workers get from the driver (caches, offline mode, weights).
FORWARDED_ENV_PREFIXES = ("GEOAPP_", "HF_", "TORCH_HOME", "XDG_CACHE_HOME")
#: The local cluster this process started: its watchdog and the SIGHUP handler it replaced.
_local_cluster: dict[str, Any] = {}


@dataclass(frozen=True)
class RayJob:
    """What each worker loads and how it predicts."""

    family: str  # registry key (resolved from auto on the driver)
    load: Any  # geoapp.families.LoadOptions
    predict: Any  # geoapp.families.PredictOptions
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 8


def _crash_once_for_tests() -> None:
    folder = os.environ.get(CRASH_DIR_ENV)
    if not folder:
        return
    if not os.path.exists(os.path.join(folder, "armed")):
        return
    try:  # O_EXCL: exactly one worker claims the crash, even when several see the folder at once
        os.close(os.open(os.path.join(folder, "fired"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return  # already fired by another worker
    os._exit(1)


class Predictor:
    """One per Ray actor: loads the family once, then predicts batches of input keys."""

    def __init__(self, job: RayJob):
        import torch

        # One worker = its CPUs: N workers on N cores scale instead of fighting over threads.
        torch.set_num_threads(max(1, int(job.cpus_per_worker)))
        from geoapp.families import registry

        self.job = job
        self.family = load_family(registry.get(job.family), job.load)
        self.family.prepare()  # candidate caches now, so the first batch is not the slow one

    def __call__(self, batch: dict) -> dict:
        import time

        _crash_once_for_tests()
        started = time.time()
        keys = [str(k) for k in batch["input"]]
        locations = [str(v) for v in batch["location"]]
        predictions = predict_inputs(self.family, keys, self.job.predict, locations=locations,
                                     isolate_failures=True)
        finished = time.time()
        return {"input": keys, "record": [json.dumps(r, ensure_ascii=False) for r in to_records(predictions)],
                "batch_started": [started] * len(keys), "batch_finished": [finished] * len(keys),
                "worker": [os.getpid()] * len(keys)}


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001`` ...) or start a local one for this
    run (no dashboard, no usage statistics). Returns True when this call started/joined Ray (so :func:`disconnect` should end it);
    False when Ray was already initialised in this process."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=True)
        return True
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding the geoapp package
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    guarded = os.name == "posix"  # the watchdog reads the process table (/proc or ps)
    if guarded:
        ray_local.cleanup(log=lambda message: print(f"NOTE: {message}", file=sys.stderr))  # a killed run's leftovers
        before = ray_local.descendants(os.getpid())
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": env})
    if guarded:  # the cluster ends with this process, even on kill -9 (geoapp/engine/ray_local.py)
        try:
            _local_cluster["watchdog"] = ray_local.start_watchdog(before)
        except OSError as error:  # the run goes on; only a kill -9 would leave helpers behind
            print(f"NOTE: no watchdog for the local Ray cluster ({error}): if this run is killed (kill -9), "
                  "Ray's agent processes may stay behind; `ray stop` ends them (and any other Ray of yours)",
                  file=sys.stderr)
        _local_cluster["hangup"] = ray_local.exit_on_hangup()
    return True


def disconnect() -> None:
    import ray

    ray.shutdown()
    watchdog = _local_cluster.pop("watchdog", None)
    if watchdog is not None:
        watchdog.stop()
    ray_local.restore_hangup(_local_cluster.pop("hangup", None))


def run(keys: list[str], job: RayJob, output: PartsOutput, progress: Callable[[int], None] | None = None,
        locations: list[str] | None = None) -> dict:
    """Predict ``keys`` (those not yet in ``output``) on the connected cluster; returns counts."""
    import ray

    done = output.done()
    todo = [(k, loc) for k, loc in zip(keys, locations or keys) if k not in done]
    # busy_s: first batch start to last batch end on the workers (without cluster start-up and model loading);
    # batches: (worker pid, started, finished, images) of every batch, for benchmarks
    summary = {"inputs": len(keys), "skipped": len(keys) - len(todo), "written": 0, "failed": 0, "busy_s": None,
               "batches": []}
    if not todo:
        return summary
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows one bar (images/s) fed by the records
    context.print_on_execution_start = False
    batch_size = max(1, int(job.batch_size))
    workers = max(1, int(job.workers))
    # blocks of about one batch (at least a few per worker, so every worker gets work and results stream)
    blocks = max(1, min(len(todo), max(-(-len(todo) // batch_size), 4 * workers), 5000))
    dataset = ray.data.from_items([{"input": k, "location": loc} for k, loc in todo], override_num_blocks=blocks)
    # A fixed pool of actors, one model each. Ray Data restarts a dead actor and retries its batch by
    # default for actor pools (max_restarts=-1, max_task_retries=-1); the test suite kills one to check.
    dataset = dataset.map_batches(Predictor, fn_constructor_args=(job,), batch_size=batch_size,
                                  batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                                  num_cpus=job.cpus_per_worker, num_gpus=job.gpus_per_worker or None)
    before = output.written
    first, last = float("inf"), 0.0
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            records = [json.loads(text) for text in batch["record"]]
            output.add(records)
            summary["failed"] += sum(1 for r in records if not r["ok"])
            for pid, begin, end in sorted(set(zip(batch["worker"].tolist(), batch["batch_started"].tolist(),
                                                   batch["batch_finished"].tolist()))):
                images = sum(1 for p, b in zip(batch["worker"], batch["batch_started"]) if p == pid and b == begin)
                summary["batches"].append((int(pid), float(begin), float(end), images))
            first = min(first, float(min(batch["batch_started"])))
            last = max(last, float(max(batch["batch_finished"])))
            summary["busy_s"] = last - first
            if progress:
                progress(len(records))
    finally:
        output.flush()  # whatever arrived whole is kept, even on Ctrl-C
        summary["written"] = output.written - before
    return summary
