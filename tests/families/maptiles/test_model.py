"""Encoders: shapes, what trains, checkpoints."""

from __future__ import annotations

import pytest
import torch

from geoapp.families.maptiles.model import (
    CheckpointMeta,
    MapTileModel,
    model_from_checkpoint,
    preset,
    read_checkpoint,
    save_checkpoint,
)


@pytest.fixture
def model() -> MapTileModel:
    torch.manual_seed(0)
    return MapTileModel(preset("tiny"), (1, 3, 5))


def test_shapes(model):
    pixels = torch.randn(3, 3, 32, 32)
    assert model.encode_photo(pixels).shape == (3, 32)
    for zoom in (1, 3, 5):
        assert model.encode_tiles(pixels, zoom).shape == (3, 32)
    with pytest.raises(ValueError, match="zooms"):
        model.encode_tiles(pixels, 2)


def test_map_encoder_equals_photo_encoder_before_training(model):
    """A level starts as a copy of the tower: same embedding as the photo encoder."""
    pixels = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model.encode_photo(pixels), model.encode_tiles(pixels, 3), atol=1e-5)


def test_only_the_last_two_blocks_norm_projection_and_scale_get_gradients(model):
    pixels = torch.randn(4, 3, 32, 32)
    photo = model.encode_photo(pixels)
    tiles = model.encode_tiles(pixels, 3)
    loss = (model.logit_scale(3) * torch.nn.functional.cosine_similarity(photo, tiles)).sum()
    loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(name.startswith("levels.3.") for name in with_grad)
    expected = {"levels.3.blocks.0", "levels.3.blocks.1", "levels.3.ln_post", "levels.3.proj", "levels.3.logit_scale"}
    assert all(any(name.startswith(part) for name in with_grad) for part in expected)
    assert len(model.levels["3"].blocks) == 2
    assert not any(p.requires_grad for p in model.tower.parameters())
    assert {id(p) for p in model.trainable_parameters(3)} == {id(p) for p in model.levels["3"].parameters()}


def test_copy_level_and_digest(model):
    before = model.level_digest(1)
    with torch.no_grad():
        model.levels["5"].proj.add_(1.0)
    assert model.level_digest(5) != model.level_digest(3)
    model.copy_level(5, 1)
    assert model.level_digest(1) != before
    assert torch.equal(model.levels["1"].proj, model.levels["5"].proj)


def test_checkpoint_round_trip(model, tmp_path):
    meta = CheckpointMeta(preset="tiny", zooms=(1, 3, 5), crossview_demo=True, training={"tile_source": "synthetic"})
    path = save_checkpoint(model, tmp_path / "m.pt", meta, include_tower=True)
    loaded, meta2 = model_from_checkpoint(read_checkpoint(path))
    pixels = torch.randn(2, 3, 32, 32)
    assert torch.allclose(loaded.encode_tiles(pixels, 5), model.encode_tiles(pixels, 5))
    assert meta2.crossview_demo and meta2.zooms == (1, 3, 5)
    levels_only = save_checkpoint(model, tmp_path / "levels.pt", meta, include_tower=False)
    with pytest.raises(ValueError, match="tower"):
        model_from_checkpoint(read_checkpoint(levels_only))
    again, _ = model_from_checkpoint(read_checkpoint(levels_only), tower=model.tower)
    assert torch.allclose(again.encode_tiles(pixels, 1), model.encode_tiles(pixels, 1))
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(Exception):
        read_checkpoint(tmp_path / "bad.pt")


class _RunsCode:
    """A pickled object that runs code when unpickled (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    """An older torch.save checkpoint is read with weights_only=True: a pickled callable is refused before it runs."""
    marker = tmp_path / "ran"
    torch.save({"format": "geoapp-maptiles-1", "config": {}, "meta": _RunsCode(marker), "state": {}},
               tmp_path / "hostile.pt")
    with pytest.raises(ValueError, match="could run code"):
        read_checkpoint(tmp_path / "hostile.pt")
    assert not marker.exists()


def test_checkpoints_are_written_as_safetensors_with_plain_metadata(model, tmp_path):
    """New checkpoints follow the one convention (safetensors + JSON); numpy numbers in the metadata become numbers."""
    import numpy as np

    meta = CheckpointMeta(preset="tiny", zooms=(1, 3, 5), training={"metrics": {"median_km": np.float64(12.5)},
                                                                    "n": np.int64(3)})
    path = save_checkpoint(model, tmp_path / "m.pt", meta, include_tower=True)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    _, loaded = model_from_checkpoint(read_checkpoint(path))
    assert loaded.training == {"metrics": {"median_km": 12.5}, "n": 3} and type(loaded.training["n"]) is int


def test_the_shipped_checkpoint_loads_weights_only():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[3] / "assets" / "maptiles" / "maptiles-crossview.pt"
    loaded, meta = model_from_checkpoint(read_checkpoint(shipped))
    assert meta.crossview_demo and meta.zooms == loaded.zooms == (1, 3, 5)
