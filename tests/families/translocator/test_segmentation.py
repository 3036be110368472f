"""ADE20K segmenter: tiny random model shapes, palette helpers, checkpoint loading, fast offline failure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from geoapp.models import weights
from geoapp.families.translocator.ade20k import ADE20K_CLASSES, ADE20K_PALETTE, classes_from_colours
from geoapp.families.translocator.segmentation import (
    SEGFORMER_B2,
    SEGMENTERS,
    class_shares,
    colourise,
    colourise_tensor,
    legend,
    load_segmenter,
)
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

from ...conftest import REPO


@pytest.fixture(scope="module")
def tiny():
    return load_segmenter("tiny-test", weights="random", device="cpu")


def _no_real_segmenter(monkeypatch, tmp_path):
    """Point every lookup at empty folders; skip if the real checkpoint is installed anyway."""
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "weights"))
    if weights.find(weights.SEGFORMER_B2_ADE20K) is not None:
        pytest.skip("the real SegFormer checkpoint is installed on this machine")


def test_tiny_random_segmenter_shapes_and_flags(tiny):
    assert tiny.random_weights and tiny.identity["sha256"] == "random" and tiny.identity["random_weights"]
    assert tiny.warnings == [RANDOM_WEIGHTS_WARNING]
    images = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8)
    class_map = tiny.segment(images)
    assert class_map.shape == (2, 37, 53) and class_map.dtype == torch.long
    assert 0 <= int(class_map.min()) and int(class_map.max()) < 150
    # Float input in [0, 1] gives the same map as the same pixels in uint8.
    assert torch.equal(tiny.segment(images.float() / 255), class_map)


def test_segment_pil_any_mode(tiny):
    result = tiny.segment_pil(Image.new("L", (40, 30), 128))
    assert result.shape == (30, 40) and result.dtype == np.uint8 and result.max() < 150


@pytest.mark.parametrize("bad, error", [
    (torch.zeros(3, 8, 8, dtype=torch.uint8), ValueError),  # no batch axis
    (torch.zeros(1, 4, 8, 8, dtype=torch.uint8), ValueError),  # RGBA
    (torch.zeros(1, 3, 8, 8, dtype=torch.int32), ValueError),  # neither uint8 nor float
    (np.zeros((1, 3, 8, 8), dtype=np.uint8), TypeError),  # numpy, not a tensor
])
def test_bad_inputs_are_readable_errors(tiny, bad, error):
    with pytest.raises(error, match="images|tensor"):
        tiny.segment(bad)


def test_palette_is_distinct_and_invertible():
    assert len(ADE20K_CLASSES) == 150 and ADE20K_CLASSES[:5] == ("wall", "building", "sky", "floor", "tree")
    assert len({tuple(c) for c in ADE20K_PALETTE}) == 150
    ids = np.arange(150).reshape(10, 15)
    assert np.array_equal(classes_from_colours(colourise(ids)), ids)


def test_colourise_shares_legend_on_hand_made_map():
    # 20 pixels: wall (0) x10, sky (2) x6, tree (4) x4.
    class_map = np.array([[0] * 5, [0] * 5, [2] * 5, [2, 4, 4, 4, 4]], dtype=np.int64)
    coloured = colourise(class_map)
    assert coloured.shape == (4, 5, 3) and coloured.dtype == np.uint8
    assert tuple(coloured[0, 0]) == (120, 120, 120) and tuple(coloured[2, 0]) == (6, 230, 230)
    shares = class_shares(class_map)
    assert shares == [("wall", 0.5), ("sky", 0.3), ("tree", 0.2)]
    assert sum(s for _, s in shares) == pytest.approx(1.0)
    assert legend(class_map, top=2) == [("wall", (120, 120, 120), 0.5), ("sky", (6, 230, 230), 0.3)]
    # Batched and torch inputs.
    batch = torch.from_numpy(np.stack([class_map, class_map[::-1]]))
    assert colourise(batch).shape == (2, 4, 5, 3)
    assert np.array_equal(colourise(batch)[1], coloured[::-1])
    as_channels = colourise_tensor(batch)
    assert as_channels.shape == (2, 3, 4, 5) and as_channels.dtype == torch.uint8
    assert np.array_equal(as_channels.permute(0, 2, 3, 1).numpy(), colourise(batch))
    with pytest.raises(ValueError, match="0..149"):
        colourise(np.array([[0, 150]]))
    with pytest.raises(ValueError, match="integer"):
        class_shares(np.zeros((2, 2), dtype=np.float32))


def test_real_checkpoint_fails_fast_offline_naming_repo_and_fix(monkeypatch, tmp_path, no_network):
    _no_real_segmenter(monkeypatch, tmp_path)
    with pytest.raises(weights.WeightsMissingError) as info:
        load_segmenter()
    assert no_network == []  # a local lookup only: nothing waits on the network
    message = str(info.value)
    assert "smp-hub/segformer-b2-512x512-ade-160k" in message
    assert "python -m geoapp weights download segmenter" in message


def test_real_checkpoint_fails_fast_without_hf_offline_flag(tmp_path):
    """No HF_HUB_OFFLINE and no network: the lookup is local-only, so it still fails at once (no
    connection is even tried)."""
    script = textwrap.dedent("""
        import socket
        tried = []
        def refuse(sock, address, *args):
            tried.append(address)
            raise OSError("no network in this test")
        socket.socket.connect = socket.socket.connect_ex = refuse
        from geoapp.models import weights
        from geoapp.families.translocator.segmentation import load_segmenter
        try:
            load_segmenter()
        except weights.WeightsMissingError as error:
            print(len(tried), "segmenter" in str(error))
    """)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(tmp_path / "hf"), GEOAPP_WEIGHTS_DIR=str(tmp_path / "w"),
               HF_ENDPOINT="http://10.255.255.1")  # unroutable: a request would hang, not fail
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    attempts, named = out.stdout.split()
    assert attempts == "0" and named == "True"


def _save_smp_folder(model: torch.nn.Module, folder) -> None:
    model.save_pretrained(str(folder))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def test_hub_checkpoint_loads_from_weights_dir_and_hf_cache_layouts(tiny, monkeypatch, tmp_path):
    """The real loading path (smp.from_pretrained on the cached folder), with a tiny stand-in checkpoint."""
    weights_dir = tmp_path / "weights"
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(weights_dir))
    if weights.find(weights.SEGFORMER_B2_ADE20K) is not None:
        pytest.skip("the real SegFormer checkpoint is installed on this machine")
    images = torch.randint(0, 256, (1, 3, 32, 48), dtype=torch.uint8)
    expected = tiny.logits(images)
    # 1) weights_dir/<repo name>/ (a copied save_pretrained folder); without config.json it is ignored.
    folder = weights_dir / "segformer-b2-512x512-ade-160k"
    _save_smp_folder(tiny.model, folder)
    (folder / "config.json").rename(folder / "config.moved")
    with pytest.raises(weights.WeightsMissingError):
        load_segmenter(device="cpu")
    (folder / "config.moved").rename(folder / "config.json")
    loaded = load_segmenter(device="cpu")
    assert not loaded.random_weights and loaded.identity["source"] == SEGFORMER_B2.weights.source
    assert len(loaded.identity["sha256"]) == 64
    # Same network, but fed at the spec's 512 px: compare the module outputs on the same pixels.
    assert torch.equal(loaded.model(tiny._pixels(images)), expected)
    # 2) a Hugging Face cache layout (models--org--name/snapshots/<commit>/...) inside the weights dir.
    import shutil

    shutil.rmtree(folder)
    snapshot = weights_dir / "models--smp-hub--segformer-b2-512x512-ade-160k" / "snapshots" / ("a" * 40)
    _save_smp_folder(tiny.model, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    assert weights.find(weights.SEGFORMER_B2_ADE20K) == snapshot / "model.safetensors"
    assert torch.equal(load_segmenter(device="cpu").model(tiny._pixels(images)), expected)


def test_checkpoint_path_round_trip(tiny, tmp_path):
    images = torch.randint(0, 256, (1, 3, 40, 40), dtype=torch.uint8)
    _save_smp_folder(tiny.model, tmp_path / "folder")
    from_folder = load_segmenter("tiny-test", weights=tmp_path / "folder", device="cpu")
    torch.save(tiny.model.state_dict(), tmp_path / "state.pt")
    from_state = load_segmenter("tiny-test", weights=tmp_path / "state.pt", device="cpu")
    for loaded in (from_folder, from_state):
        assert not loaded.random_weights
        assert torch.equal(loaded.segment(images), tiny.segment(images))
    with pytest.raises(weights.WeightsMissingError, match="not found"):
        load_segmenter("tiny-test", weights=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_segmenter("tiny-test", weights=tmp_path / "junk.pt")


def test_unknown_segmenter_lists_choices():
    with pytest.raises(ValueError, match="segformer-ade20k"):
        load_segmenter("nope")


def test_hrnet_variant_builds_random_and_with_cached_imagenet_encoder(monkeypatch, tmp_path):
    weights_dir = tmp_path / "weights"
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(weights_dir))
    spec = SEGMENTERS["hrnet-w18-ade20k"]
    assert spec.encoder == "tu-hrnet_w18" and spec.num_classes == 150
    if weights.find(weights.HRNET_W18_IMAGENET) is None:
        random_model = load_segmenter("hrnet-w18-ade20k", device="cpu")
        assert random_model.random_weights and random_model.identity["source"] == "random"
        out = random_model.model(torch.zeros(1, 3, 64, 64))
        assert out.shape == (1, 150, 64, 64)
    # A cached ImageNet encoder checkpoint is loaded by timm itself (a random stand-in file here).
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("hrnet_w18", pretrained=False)
    torch.nn.init.normal_(reference.conv1.weight)
    target = weights_dir / "hrnet_w18.ms_aug_in1k" / "model.safetensors"
    target.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(target))
    initialised = load_segmenter("hrnet-w18-ade20k", device="cpu")
    assert initialised.random_weights  # decoder and head are still untrained
    assert initialised.identity["source"] == "encoder:hf-hub:timm/hrnet_w18.ms_aug_in1k"
    assert torch.equal(initialised.model.encoder.model.conv1.weight, reference.conv1.weight)


def test_weights_cli_lists_and_refuses_offline_downloads(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")}
    status = subprocess.run([sys.executable, "-m", "geoapp", "weights", "status", "--no-checksums"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "(optional)" in status.stdout and "smp-hub/segformer-b2-512x512-ade-160k" in status.stdout
    assert "used by: translocator, ensemble" in status.stdout
    assert "python -m geoapp weights download segmenter" in status.stdout
    download = subprocess.run([sys.executable, "-m", "geoapp", "weights", "download", "segmenter"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)
    assert download.returncode == 1 and "Cannot download model.safetensors" in download.stderr
    unknown = subprocess.run([sys.executable, "-m", "geoapp", "weights", "download", "nope"], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "segmenter" in unknown.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_segmenter_matches_cpu(tiny):
    gpu = load_segmenter("tiny-test", weights="random", device="cuda")
    images = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8)
    on_gpu = gpu.segment(images.cuda())
    assert on_gpu.device.type == "cuda" and colourise_tensor(on_gpu).device.type == "cuda"
    assert (on_gpu.cpu() == tiny.segment(images)).float().mean() > 0.99  # argmax ties may flip a pixel
