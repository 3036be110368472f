"""The trainer under torchrun: 2 CPU processes (gloo), a few steps on toy pre-computed features."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from training.train_geoclip import STATE_NAME

REPO = Path(__file__).resolve().parents[2]


def test_two_process_ddp_run(toy_store, tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "training.train_geoclip", "--features", str(toy_store), "--out", str(out),
        "--init", "random", "--batch-size", "16", "--queue-size", "64", "--max-steps", "3",
        "--workers", "0", "--device", "cpu", "--log-every", "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world 2" in result.stderr  # rank 0's log line

    # Only rank 0 wrote: one log line, one checkpoint set.
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 1
    assert sorted(p.name for p in out.glob("heads-*.safetensors")) == ["heads-epoch001.safetensors", "heads-last.safetensors"]
    state = torch.load(out / STATE_NAME, weights_only=True)
    assert state["step"] == 3
    # Each rank takes 16 / 2 = 8 samples a step; the queue receives the whole global batch
    # (both ranks' GPS), so after 3 steps it holds 48 points, not 24.
    assert int(state["queue"]["filled"]) == 48
    assert not any(k.startswith("module.") for k in state["heads"])  # saved unwrapped from DDP
