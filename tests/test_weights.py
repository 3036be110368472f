"""Weight lookup never touches the network and fails fast with the fix."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geoapp.models import weights
from geoapp.models.backbones import VIT_L14_OPENAI, build_clip_backbone
from geoapp.settings import Settings

from .conftest import REPO


def test_geoclip_package_files_present_with_published_digests():
    from geoapp.families import registry

    rows = weights.status(tuple(w for w in registry.all_weight_files() if w.source.startswith("pypi:")))
    assert rows
    assert all(r.present for r in rows)
    assert all(r.checksum_ok for r in rows)


def test_missing_backbone_fails_fast_with_file_and_command(tmp_path, monkeypatch, no_network):
    import open_clip

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setattr(weights, "_hf_cached_paths", lambda *args, **kwargs: [])  # whatever this machine holds

    def built(**_config):
        raise AssertionError("the 300 M-parameter model was built before the missing file was noticed")

    monkeypatch.setattr(open_clip, "CLIP", built)
    with pytest.raises(weights.WeightsMissingError) as info:
        build_clip_backbone(VIT_L14_OPENAI, "pretrained")
    assert no_network == []  # fast: no request, no model; the file lookup alone
    message = str(info.value)
    assert "open_clip_model.safetensors" in message
    assert "python -m geoapp weights download" in message
    assert "GEOAPP_WEIGHTS_DIR" in message


def test_weights_dir_is_searched_first(tmp_path):
    fake = tmp_path / weights.CLIP_VIT_L14_OPENAI.filename
    fake.write_bytes(b"x")
    settings = Settings(cache_dir=tmp_path, weights_dir=tmp_path)
    assert weights.find(weights.CLIP_VIT_L14_OPENAI, settings) == fake


def test_status_command_offline_explains_what_is_missing(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(tmp_path / "hf"), "GEOAPP_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "geoapp", "weights", "status"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MISSING" in out.stdout and "open_clip_model.safetensors" in out.stdout
    assert "python -m geoapp weights download" in out.stdout
    assert "location_encoder_weights.pth" in out.stdout and "matches the published digest" in out.stdout

    as_json = subprocess.run([sys.executable, "-m", "geoapp", "weights", "status", "--json", "--no-checksums"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    rows = json.loads(as_json.stdout)
    assert {r["key"] for r in rows} >= {"geoclip/location_encoder", "clip/ViT-L-14/openai"}


def test_download_offline_fails_with_the_reason(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-m", "geoapp", "weights", "download", "--weights-dir", str(tmp_path / "w")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Cannot download open_clip_model.safetensors" in out.stderr
