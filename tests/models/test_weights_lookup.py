"""geoapp's own reading of the Hugging Face cache layout agrees with ``huggingface_hub.try_to_load_from_cache``
(geoapp reads the layout itself so that ``python -m geoapp models`` does not import huggingface_hub's downloader)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import try_to_load_from_cache

from geoapp.models import weights
from geoapp.settings import Settings

REPO_ID = "timm/vit_large_patch14_clip_224.openai"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def _fake_cache(root: Path) -> Path:
    """A hub cache holding one repo: ``main`` -> COMMIT with a file, an older snapshot OTHER with another."""
    repo = root / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "open_clip_model.safetensors").write_bytes(b"weights")
    (repo / "snapshots" / OTHER).mkdir(parents=True)
    (repo / "snapshots" / OTHER / "old.bin").write_bytes(b"old")
    (repo / ".no_exist" / COMMIT).mkdir(parents=True)
    (repo / ".no_exist" / COMMIT / "absent.json").write_bytes(b"")
    return root


@pytest.mark.parametrize("name, revision", [
    ("open_clip_model.safetensors", None), ("open_clip_model.safetensors", "main"),
    ("open_clip_model.safetensors", COMMIT), ("old.bin", OTHER), ("old.bin", None),
    ("absent.json", None), ("nothing.bin", None), ("open_clip_model.safetensors", "v2"),
])
def test_cached_file_lookup_matches_huggingface_hub(tmp_path, name, revision):
    cache = _fake_cache(tmp_path / "hub")
    ours = weights._hf_cached_file(cache, REPO_ID, name, revision)
    theirs = try_to_load_from_cache(REPO_ID, name, cache_dir=str(cache), revision=revision)
    assert ours == (Path(theirs) if isinstance(theirs, str) else None)


def test_other_repos_and_empty_caches_have_no_copy(tmp_path):
    cache = _fake_cache(tmp_path / "hub")
    assert weights._hf_cached_file(cache, "timm/other", "open_clip_model.safetensors", None) is None
    assert weights._hf_cached_file(tmp_path / "missing", REPO_ID, "open_clip_model.safetensors", None) is None


def test_default_cache_follows_the_environment_like_huggingface_hub(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.hf_hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    assert weights.hf_hub_cache_dir() == tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert weights.hf_hub_cache_dir() == tmp_path / "hub-cache"


def test_weights_dir_and_default_cache_are_both_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(_fake_cache(tmp_path / "default")))
    settings = Settings(weights_dir=_fake_cache(tmp_path / "mine"))
    found = weights._hf_cached_paths(REPO_ID, ("open_clip_model.safetensors",), settings)
    assert found == [tmp_path / "mine" / ("models--" + REPO_ID.replace("/", "--")) / "snapshots" / COMMIT /
                     "open_clip_model.safetensors",
                     tmp_path / "default" / ("models--" + REPO_ID.replace("/", "--")) / "snapshots" / COMMIT /
                     "open_clip_model.safetensors"]
