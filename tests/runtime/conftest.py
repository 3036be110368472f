"""Tiny image towers and an empty engine cache per test (exports, parity and gate verdicts never leak)."""

from __future__ import annotations

import socket

import pytest
import torch


@pytest.fixture
def runtime_cache(tmp_path, monkeypatch):
    """A fresh $GEOAPP_CACHE_DIR: no stored export or verdict from another test."""
    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def tiny_vit(seed: int = 0) -> torch.nn.Module:
    """A 3-block open_clip ViT at 32 px (the map-tile family's ``tiny`` preset), seeded."""
    from geoapp.families.maptiles.model import build_tower, preset

    torch.manual_seed(seed)
    return build_tower(preset("tiny")).eval()


def tiny_source(seed: int = 0, family: str = "tiny"):
    from geoapp.families.maptiles.model import preset
    from geoapp.models.preprocess import centre_crop_tensor
    from geoapp.runtime.engines import TowerSource

    prep = preset("tiny").preprocess()
    return TowerSource(family, tiny_vit(seed), prep.image_size, lambda image: centre_crop_tensor(image, prep))


@pytest.fixture
def source(runtime_cache):
    return tiny_source()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
