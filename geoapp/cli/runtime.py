"""``python -m geoapp runtime status|check|gate``: the CPU inference engines' exports and verdicts on this machine.

* ``status``: installed engines, this machine, and every parity and int8-gate verdict stored in the cache.
* ``check --model KEY``: export the family's image tower and run the parity check for each installed engine now
  (what ``--runtime onnx|openvino|auto`` would otherwise do on first use).
* ``gate --model KEY --precision int8 --runtime ENGINE``: the int8 quality gate; it runs ``python -m
  training.runtime_gate`` as a subprocess (``geoapp`` never imports ``training``), with the same arguments.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_runtime_commands(sub: argparse._SubParsersAction) -> None:
    from geoapp.cli.family import add_model_arguments

    p = sub.add_parser("runtime", help="CPU inference engines (ONNX Runtime, OpenVINO): exports, parity, int8 gates")
    rsub = p.add_subparsers(dest="runtime_command", required=True)
    s = rsub.add_parser("status", help="installed engines and the verdicts stored for this machine (offline)")
    s.set_defaults(handler=_cmd_status)
    c = rsub.add_parser("check", help="export a family's image tower and check it against torch on each engine now")
    add_model_arguments(c)
    c.add_argument("--images", default=None, help="folder of photos to compare on (default: ../shared photos or "
                                                  "synthetic images)")
    c.set_defaults(handler=_cmd_check)
    # Every argument goes to the gate runner as it is (its --help documents them): "+" as the only option prefix
    # keeps argparse from reading "--model ..." here.
    g = rsub.add_parser("gate", help="int8 quality gate (runs python -m training.runtime_gate; see its --help)",
                        add_help=False, prefix_chars="+")
    g.add_argument("gate_args", nargs=argparse.REMAINDER)
    g.set_defaults(handler=_cmd_gate)


def _cmd_status(args: argparse.Namespace) -> int:
    from geoapp.runtime.engines import installed_engines
    from geoapp.runtime.gates import GATE_THRESHOLDS_KM
    from geoapp.runtime.store import machine, machine_id, onnx_dir, read_json

    print(f"Engines installed: torch, {', '.join(installed_engines()) or '(no exported-tower engine)'}")
    print(f"This machine: {machine()} (id {machine_id()})")
    print(f"Cache: {onnx_dir()}")
    for kind in ("parity", "gates"):
        files = sorted((onnx_dir() / kind).glob(f"*-{machine_id()}.json"))
        print(f"\n{kind} verdicts on this machine: {len(files) or 'none'}")
        for path in files:
            data = read_json(path) or {}
            verdict = "passed" if data.get("passed") else "FAILED"
            if kind == "parity":
                detail = (f"min cosine {data.get('min_cosine', float('nan')):.6f}; batch-1 ms torch "
                          f"{data.get('torch_ms', 0):.1f} vs {data.get('engine_ms', 0):.1f}")
            else:
                fp32, int8 = data.get("fp32_accuracy") or {}, data.get("int8_accuracy") or {}
                shown = ", ".join(f"{t} km {fp32.get(str(t), float('nan')):.2f} -> {int8.get(str(t), float('nan')):.2f}"
                                  for t in GATE_THRESHOLDS_KM)
                detail = (f"{data.get('dataset')}: accuracy % fp32 -> int8: {shown}"
                          + (" (RANDOM WEIGHTS: meaningless)" if data.get("random_weights") else ""))
            print(f"  {data.get('family')} [{str(data.get('digest'))[:12]}] {data.get('engine')}: {verdict} — {detail} "
                  f"({data.get('checked_at')})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from geoapp.cli.family import load_family_from_args
    from geoapp.runtime.engines import installed_engines
    from geoapp.runtime.towers import verdict

    args.runtime, args.precision = None, None  # load on torch: the check compares every engine with it
    family = load_family_from_args(args)
    tower = getattr(family, "tower", None)
    if tower is None:
        print(f"error: {family.spec.key} has no exported image tower", file=sys.stderr)
        return 2
    failed = 0
    for engine in installed_engines():
        result, _ = verdict(tower.source, engine, args.images)
        failed += not result.passed
        print(f"{family.spec.key} {engine}: {'passed' if result.passed else 'REFUSED'} — {result.reason}; batch-1 ms "
              f"torch {result.torch_ms:.1f}, {engine} {result.engine_ms:.1f}")
    return 1 if failed else 0


def _cmd_gate(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "training.runtime_gate", *args.gate_args]
    try:
        return subprocess.run(command, cwd=REPO_ROOT, check=False).returncode
    except OSError as error:
        print(f"error: cannot run {' '.join(command)} ({error})", file=sys.stderr)
        return 1
