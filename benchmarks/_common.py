"""What every benchmark shares: the repository on sys.path, the machine description (with its load average, since
figures taken on a busy machine must say so), the --json / --device flags, and writing the results.

Usage in a script::

    from _common import REPO, bench_parser, emit, machine   # benchmarks/ is on sys.path when a script runs

    parser = bench_parser(__doc__)              # --json OUT, --device cpu|cuda
    args = parser.parse_args()
    results = {"machine": machine(args.device), ...}
    emit(results, args.json)

Timing helpers that do not import torch until used: ``pick_device`` (``--device auto``), ``sync`` and
``time_calls``. A benchmark imports torch inside ``main()``, so that ``--help`` stays light
(``tests/test_benchmarks.py`` checks both: this module used, and no torch at ``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def cpu_model() -> str:
    """The CPU's marketing name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (what else was running while we measured)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine(device: str | None = None) -> dict[str, Any]:
    """The machine a figure was measured on; torch details only when torch is already imported."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "load_average": load_average()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device and str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if device:
        info["device"] = str(device)
    return info


def machine_line(device: str | None = None) -> str:
    """One line for logs and RESULTS tables."""
    m = machine(device)
    parts = [f"{m['cpu']}, {m['cores']} cores"]
    if "torch_threads" in m:
        parts.append(f"{m['torch_threads']} torch threads, torch {m['torch']}")
    if m.get("gpu"):
        parts.append(m["gpu"])
    parts.append("load average " + "/".join(f"{v:.1f}" for v in m["load_average"]))
    return "; ".join(parts)


def bench_parser(doc: str | None, *, device: bool = True, default_device: str = "cpu") -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark has (--json, and --device unless ``device=False``).

    ``default_device="auto"``: cuda when torch sees a GPU, else cpu, decided by :func:`pick_device` in the script's
    main (so that ``--help`` does not import torch)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here (JSON)")
    if device:
        parser.add_argument("--device", default=default_device,
                            help="cpu, cuda, cuda:1 ... (default %(default)s" +
                                 (": cuda when available)" if default_device == "auto" else ")"))
    return parser


def pick_device(name: str):
    """The torch device for --device (``auto``: cuda when available, else cpu)."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def sync(device) -> None:
    """Wait for the GPU's queued work, so that a timer stops when the work is done (no-op on CPU)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def time_calls(fn, runs: int, device, cpu: list[float] | None = None) -> list[float]:
    """Wall ms of each call; the process CPU ms of each call go to ``cpu`` when given."""
    times = []
    for _ in range(runs):
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - start_cpu) * 1000)
    return times


def emit(results: Any, path: str | Path | None = None, *, indent: int = 2) -> str:
    """Print the results as JSON and, with ``path``, write them there too (atomically)."""
    text = json.dumps(results, indent=indent, default=str)
    print(text)
    if path:
        from geoapp.fileio import atomic_write

        atomic_write(Path(path), text + "\n")
    return text
