"""``python -m geoapp runtime status|gate``: the stored verdicts, and the gate forwarded to its runner."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

from geoapp.runtime.parity import ParityResult, store_parity
from tests.conftest import REPO


def run_main(*args: str) -> tuple[int, str]:
    from geoapp.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_status_lists_this_machines_verdicts(runtime_cache):
    store_parity(ParityResult("satworld", "ab" * 32, "onnx", "fp32", True, 0.999999, "test photos", 20.0, 5.0))
    store_parity(ParityResult("geoclip", "cd" * 32, "openvino", "fp32", False, 0.42, "test photos", 20.0, 5.0))
    code, out = run_main("runtime", "status")
    assert code == 0
    assert "satworld [abababababab] onnx: passed — min cosine 0.999999" in out
    assert "geoclip [cdcdcdcdcdcd] openvino: FAILED — min cosine 0.420000" in out
    assert "gates verdicts on this machine: none" in out


def test_gate_arguments_reach_the_runner():
    out = subprocess.run([sys.executable, "-m", "geoapp", "runtime", "gate", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "--dataset" in out.stdout and "--calibration" in out.stdout and "held-out" in out.stdout
