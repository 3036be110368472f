"""The one checkpoint convention: safetensors + JSON config, older weights-only .pt files through the same loader,
nothing that could run code, the shipped models and users' old variants still loading."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch

from geoapp.families import registry
from geoapp.families.satworld.model import ASSET_PATH, load_satworld
from geoapp.families.variants import write_manifest
from geoapp.models.checkpoint import CheckpointError, convert_checkpoint, load_checkpoint, save_checkpoint
from geoapp.models.weights import WeightsMissingError

from ..conftest import REPO


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"layer.weight": torch.randn(4, 3, generator=generator), "layer.bias": torch.randn(4, generator=generator),
            "steps": torch.tensor(7)}


def test_round_trip_keeps_tensors_config_and_meta(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", "geoapp.test.v1", _state(), {"width": 3},
                           {"metrics": {"acc": 0.5}, "seed": torch.tensor(3), "run": tmp_path})
    checkpoint = load_checkpoint(path, "geoapp.test.v1")
    assert checkpoint.format == "geoapp.test.v1" and checkpoint.config == {"width": 3} and not checkpoint.legacy
    assert checkpoint.meta == {"metrics": {"acc": 0.5}, "seed": 3, "run": str(tmp_path)}  # scalars/paths as JSON
    for key, value in _state().items():
        assert torch.equal(checkpoint.state[key], value)
    assert checkpoint.sub_state("layer").keys() == {"weight", "bias"}
    assert path.read_bytes()[8:9] == b"{"  # a safetensors file, not a pickle
    assert not list(tmp_path.glob(".*"))  # the atomic writer left no temporary file


def test_legacy_pt_maps_onto_the_same_fields(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "geoapp.test.v1", "config": {"width": 3}, "state": _state(),
                "head": {"w": torch.ones(2)}, "scale": torch.tensor(2.0), "extra": {"epoch": 4}}, path)
    checkpoint = load_checkpoint(path, "geoapp.test.v1")
    assert checkpoint.legacy and checkpoint.config == {"width": 3} and checkpoint.meta == {"extra": {"epoch": 4}}
    assert set(checkpoint.state) == {"layer.weight", "layer.bias", "steps", "head.w", "scale"}
    new = convert_checkpoint(path, tmp_path / "new.safetensors")
    assert not new.legacy and new.config == checkpoint.config and new.meta == checkpoint.meta
    assert all(torch.equal(new.state[k], v) for k, v in checkpoint.state.items())


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "geoapp.test.v1", "state": {}, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)


def test_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(WeightsMissingError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors", what="SatWorld checkpoint")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "junk.pt")
    other = save_checkpoint(tmp_path / "other.safetensors", "geoapp.other.v1", _state())
    with pytest.raises(CheckpointError, match="not a SatWorld checkpoint"):
        load_checkpoint(other, "geoapp.satworld.v1", what="SatWorld checkpoint")
    from safetensors.torch import save

    (tmp_path / "foreign.safetensors").write_bytes(save(_state()))
    with pytest.raises(CheckpointError, match="not written by geoapp"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_shipped_satworld_loads_through_the_one_loader():
    checkpoint = load_checkpoint(ASSET_PATH, "geoapp.satworld.v1")
    assert checkpoint.legacy and checkpoint.config["layers"] == 4 and "location_encoder_sha256" in checkpoint.meta


def test_an_old_format_user_variant_still_loads(tmp_path, monkeypatch):
    """A variant folder written before the convention (a torch.save .pt) loads as `satworld:tag`, and its
    safetensors conversion gives the same network."""
    monkeypatch.setenv("GEOAPP_VARIANTS_DIR", str(tmp_path / "variants"))
    legacy = torch.load(io.BytesIO(ASSET_PATH.read_bytes()), weights_only=True)
    legacy["extra"] = {"note": "trained by an analyst in 2025"}
    folder = tmp_path / "variants" / "old"
    folder.mkdir(parents=True)
    torch.save(legacy, folder / "satworld.pt")
    write_manifest(folder, "satworld", "old", "satworld.pt", label="Old SatWorld")
    family = registry.get("satworld:old").load()
    assert family.describe().family == "satworld:old"
    converted = convert_checkpoint(folder / "satworld.pt", tmp_path / "new.safetensors")
    old_model, _ = load_satworld(folder / "satworld.pt")
    new_model, _ = load_satworld(converted.path)
    assert all(torch.equal(a, b) for a, b in zip(old_model.state_dict().values(), new_model.state_dict().values()))


def test_weights_convert_command(tmp_path):
    target = tmp_path / "satworld.safetensors"
    result = subprocess.run([sys.executable, "-m", "geoapp", "weights", "convert", str(ASSET_PATH), str(target)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "geoapp.satworld.v1" in result.stdout and load_checkpoint(target).format == "geoapp.satworld.v1"
    header = json.loads(target.read_bytes()[8:8 + int.from_bytes(target.read_bytes()[:8], "little")])
    assert json.loads(header["__metadata__"]["geoapp"])["config"]["width"] == 128


def unsafe_loads(source: str) -> list[int]:
    """Lines calling ``torch.load`` without ``weights_only=True`` (a pickle that may run code)."""
    import ast

    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
            and not any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)]


def test_every_torch_load_is_weights_only():
    assert unsafe_loads("torch.load(a)\ntorch.load(a, weights_only=False)\ntorch.load(a, weights_only=True)\n") == [1, 2]
    files = [p for root in ("geoapp", "training", "benchmarks") for p in sorted((REPO / root).rglob("*.py"))]
    offenders = [f"{p.relative_to(REPO)}:{line}" for p in files + [REPO / "app.py"]
                 for line in unsafe_loads(p.read_text(encoding="utf-8"))]
    assert offenders == [], "load checkpoints through geoapp.models.checkpoint (weights only): " + ", ".join(offenders)
