"""TransLocator on tiny random models: shapes, MFF, attentive fusion, loss (eq. 8), training, checkpoints, loading."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from geoapp.geo.geocells import GeocellHierarchy
from geoapp.families.translocator.network import (AttentiveFusion, TransLocatorConfig, build_translocator,
                                                 load_translocator_checkpoint, save_translocator_checkpoint)
from geoapp.models.weights import WeightsMissingError
from training.translocator.loss import TransLocatorTargets, translocator_loss

CLUSTERS = np.array([[48.8, 2.3], [40.7, -74.0], [35.7, 139.7], [-33.9, 151.2]])


def tiny_cells() -> GeocellHierarchy:
    """A small real geocell hierarchy (S2 cells around four cities), built with the partitioner."""
    rng = np.random.default_rng(0)
    points = np.concatenate([centre + rng.normal(0, 3, (400, 2)) for centre in CLUSTERS])
    return GeocellHierarchy.build(points[:, 0], points[:, 1], min_count=5, max_counts=(800, 400, 200))


def tiny_model(**overrides):
    torch.manual_seed(0)
    return build_translocator(TransLocatorConfig.tiny(**overrides), "random")


def inputs(batch: int = 2, size: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator), torch.randn(batch, 3, size, size, generator=generator)


def test_output_shapes_and_heads():
    model = tiny_model()
    config = model.config
    out = model(*inputs(batch=3))
    assert [tuple(t.shape) for t in out.cell_logits] == [(3, 4), (3, 8), (3, 16)]
    assert [tuple(t.shape) for t in out.scene_logits] == [(3, 3), (3, 16), (3, 365)]
    assert out.features.shape == (3, 2 * config.embed_dim)
    assert out.branch_weights.shape == (3, 2)
    assert torch.allclose(out.branch_weights.sum(dim=1), torch.ones(3))
    # Table A.2 reconciled: every head's first layer reads f_mm (2 x d wide).
    coarse, middle, fine = model.cell_heads
    assert isinstance(coarse, nn.Linear) and coarse.in_features == 2 * config.embed_dim
    assert [m.in_features for m in middle if isinstance(m, nn.Linear)] == [2 * config.embed_dim, 32]
    assert fine[-1].out_features == 16
    assert len(model.fusions) == config.depth - 1  # per layer, not shared; none after the last layer
    assert model.fusions[0].project_rgb is not model.fusions[1].project_rgb
    assert model.random_weights


def test_paper_config_defaults():
    config = TransLocatorConfig()
    assert (config.embed_dim, config.depth, config.patch_size, config.img_size) == (768, 12, 16, 224)
    assert config.cell_counts == (3298, 7202, 12893) and config.scene_counts == (3, 16, 365)
    assert config.feature_dim == 1536 and config.drop_path_rate == 0.1
    assert TransLocatorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        TransLocatorConfig.from_dict({"depth": 2, "bogus": 1})


def test_attentive_fusion_weights_and_scaling():
    fusion = AttentiveFusion(dim=6, hidden=8)
    cls_rgb, cls_seg = torch.randn(4, 6), torch.randn(4, 6)
    fused, weights = fusion(cls_rgb, cls_seg)
    assert torch.allclose(weights.sum(dim=1), torch.ones(4))
    scores = torch.cat([fusion.scorer(cls_rgb), fusion.scorer(cls_seg)], dim=1)  # one scorer for both branches
    assert torch.allclose(weights, scores.softmax(dim=1))
    assert torch.allclose(fused[:, :6], (1 + weights[:, :1]) * cls_rgb)
    assert torch.allclose(fused[:, 6:], (1 + weights[:, 1:]) * cls_seg)


def test_mff_replaces_cls_tokens_of_both_branches_after_each_layer():
    model = tiny_model().eval()
    seen: dict[tuple[str, int], torch.Tensor] = {}
    hooks = []
    for name, branch in (("rgb", model.rgb_branch), ("seg", model.seg_branch)):
        for layer, block in enumerate(branch.blocks):
            hooks.append(block.register_forward_pre_hook(  # __setitem__ returns None: the input is left alone
                lambda module, args, key=(name, layer): seen.__setitem__(key, args[0][:, 0].detach().clone())))
    out = model(*inputs(), record_cls=True)
    for hook in hooks:
        hook.remove()
    assert len(out.cls_history) == model.config.depth - 1
    for layer, record in enumerate(out.cls_history):
        fused = record["fused"]
        # The fused token differs from both branches' own CLS tokens ...
        assert not torch.allclose(fused, record["rgb_before"]) and not torch.allclose(fused, record["seg_before"])
        # ... and is what both branches carry into the next layer.
        assert torch.equal(seen[("rgb", layer + 1)], fused) and torch.equal(seen[("seg", layer + 1)], fused)


def test_mff_lets_the_segmentation_reach_the_rgb_branch():
    model = tiny_model().eval()
    rgb, seg = inputs()
    other_seg = torch.randn_like(seg)

    def rgb_cls(m: nn.Module, seg_input: torch.Tensor) -> torch.Tensor:
        captured = {}

        def keep(module, args, output) -> None:  # must return None, or it would replace the output
            captured["cls"] = output[:, 0]

        hook = m.rgb_branch.norm.register_forward_hook(keep)
        with torch.no_grad():
            m(rgb, seg_input)
        hook.remove()
        return captured["cls"]

    assert not torch.allclose(rgb_cls(model, seg), rgb_cls(model, other_seg))
    model.fusions = nn.ModuleList()  # fusion disabled: the branches no longer talk
    assert torch.allclose(rgb_cls(model, seg), rgb_cls(model, other_seg))


def test_gradients_reach_both_branches_and_fusion():
    model = tiny_model()
    out = model(*inputs())
    targets = TransLocatorTargets((torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])))
    loss, _ = translocator_loss(out, targets, alpha=0.3, beta=0.3, gamma=0.0)
    loss.backward()
    for name in ("rgb_branch.patch_embed.proj.weight", "seg_branch.patch_embed.proj.weight", "rgb_branch.blocks.0.attn.qkv.weight",
                 "seg_branch.blocks.0.attn.qkv.weight", "fusions.0.project_seg.1.weight", "fusions.1.back_project.weight",
                 "attentive_fusion.scorer.0.weight", "cell_heads.1.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def _smoothed_ce(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> float:
    """Hand-written label-smoothed cross-entropy over the labelled rows."""
    keep = labels >= 0
    log_p = logits[keep].log_softmax(dim=1)
    nll = -log_p[torch.arange(int(keep.sum())), labels[keep]]
    uniform = -log_p.mean(dim=1)
    return float(((1 - eps) * nll + eps * uniform).mean())


def test_loss_matches_eq8_by_hand():
    model = tiny_model().eval()
    with torch.no_grad():
        out = model(*inputs(batch=4))
    coarse, middle, fine = torch.tensor([0, 1, 2, 3]), torch.tensor([1, -1, 5, 7]), torch.tensor([15, 0, 3, 9])
    scenes = (torch.tensor([0, 2, -1, 1]), torch.tensor([-1, -1, -1, -1]), torch.tensor([364, 0, 10, -1]))
    alpha, beta, gamma, eps = 0.25, 0.5, 0.7, 0.1
    loss, parts = translocator_loss(out, TransLocatorTargets((coarse, middle, fine), scenes), alpha, beta, gamma, eps)
    l_c, l_m, l_f = (_smoothed_ce(lo, la, eps) for lo, la in zip(out.cell_logits, (coarse, middle, fine)))
    l_s = (_smoothed_ce(out.scene_logits[0], scenes[0], eps) + _smoothed_ce(out.scene_logits[2], scenes[2], eps)) / 2
    expected = (1 - alpha - beta) * l_c + alpha * l_m + beta * l_f + gamma * l_s
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert parts["scene"] == pytest.approx(l_s, rel=1e-5) and parts["fine"] == pytest.approx(l_f, rel=1e-5)
    # Same targets as a [B, 3 + scene levels] tensor and as a mapping.
    table = torch.stack([coarse, middle, fine, *scenes], dim=1)
    assert float(translocator_loss(out, table, alpha, beta, gamma, eps)[0]) == pytest.approx(expected, rel=1e-5)
    mapping = {"coarse": coarse, "middle": middle, "fine": fine, "scenes": torch.stack(scenes, dim=1)}
    assert float(translocator_loss(out, mapping, alpha, beta, gamma, eps)[0]) == pytest.approx(expected, rel=1e-5)
    no_scene, parts = translocator_loss(out, TransLocatorTargets((coarse, middle, fine)), alpha, beta, gamma, eps)
    assert parts["scene"] == 0.0 and float(no_scene) == pytest.approx(expected - gamma * l_s, rel=1e-5)
    with pytest.raises(ValueError, match="α"):
        translocator_loss(out, table, 0.7, 0.5, 0.0)


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = build_translocator(TransLocatorConfig.tiny(depth=2), "random").train()
    rgb, seg = inputs(batch=8, seed=3)
    fine = torch.arange(8) * 2  # eight different fine cells
    targets = TransLocatorTargets((fine // 4, fine // 2, fine), (torch.arange(8) % 3, torch.arange(8), torch.arange(8) * 40))
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        optimiser.zero_grad()
        loss, _ = translocator_loss(model(rgb, seg), targets, alpha=0.3, beta=0.5, gamma=0.5)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        predicted = model(rgb, seg).cell_logits[2].argmax(dim=1)
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(predicted, fine)


def test_checkpoint_round_trip(tmp_path):
    cells = tiny_cells()
    model = tiny_model(cell_counts=cells.sizes).eval()
    path = save_translocator_checkpoint(model, tmp_path / "tl.pt", cells, {"epoch": 3})
    loaded, loaded_cells, meta = load_translocator_checkpoint(path)
    rgb, seg = inputs()
    with torch.no_grad():
        before, after = model(rgb, seg), loaded(rgb, seg)
    for a, b in zip(before.cell_logits + before.scene_logits, after.cell_logits + after.scene_logits):
        assert torch.equal(a, b)
    assert loaded.config == model.config and meta["extra"] == {"epoch": 3} and meta["random_weights"]
    assert loaded_cells.fine.tokens == cells.fine.tokens
    assert np.array_equal(loaded_cells.fine_to_middle, cells.fine_to_middle)
    assert np.array_equal(loaded_cells.fine_to_coarse, cells.fine_to_coarse)
    assert np.allclose(loaded_cells.fine.lat, cells.fine.lat)
    # build_translocator accepts the same file for the same architecture, refuses another one.
    assert torch.equal(build_translocator(model.config, path).cell_heads[0].weight, model.cell_heads[0].weight)
    with pytest.raises(ValueError, match="different TransLocator architecture"):
        build_translocator(TransLocatorConfig.tiny(depth=2, cell_counts=cells.sizes), path)
    # A trainer marks trained weights; a wrong cell table is refused.
    trained = save_translocator_checkpoint(model, tmp_path / "trained.pt", cells, random_weights=False)
    assert not load_translocator_checkpoint(trained)[0].random_weights
    with pytest.raises(ValueError, match="cell table"):
        save_translocator_checkpoint(tiny_model(), tmp_path / "bad.pt", cells)


def test_checkpoint_errors_are_readable(tmp_path):
    with pytest.raises(WeightsMissingError, match="not found"):
        load_translocator_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="damaged"):
        load_translocator_checkpoint(broken)
    other = tmp_path / "other.pt"
    torch.save({"format": "something else"}, other)
    with pytest.raises(ValueError, match="not a TransLocator checkpoint"):
        load_translocator_checkpoint(other)


def test_vit_mt_single_branch():
    model = tiny_model(dual_branch=False).eval()
    assert model.seg_branch is None and model.attentive_fusion is None and len(model.fusions) == 0
    rgb, _ = inputs()
    out = model(rgb)
    assert out.features.shape == (2, model.config.embed_dim)
    assert model.cell_heads[0].in_features == model.config.embed_dim  # Table A.2 holds exactly for ViT-MT
    assert torch.equal(out.branch_weights, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert list(model.gradcam_layers()) == ["rgb"]
    # The segmentation input is ignored, and the dual model refuses to run without one.
    assert torch.equal(model(rgb, torch.randn_like(rgb)).cell_logits[2], out.cell_logits[2])
    with pytest.raises(ValueError, match="segmentation map"):
        tiny_model()(rgb)


def _empty_weight_caches(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path / "weights"))


def test_real_weights_fail_fast_offline_with_the_fix(monkeypatch, tmp_path, no_network):
    _empty_weight_caches(monkeypatch, tmp_path)
    with pytest.raises(WeightsMissingError) as error:
        build_translocator(TransLocatorConfig())
    assert no_network == []
    message = str(error.value)
    assert "model.safetensors" in message and "vit_base_patch16_224.augreg_in21k" in message
    assert "hf download timm/vit_base_patch16_224.augreg_in21k model.safetensors" in message


def test_in21k_init_loads_through_timm_from_the_local_copy(monkeypatch, tmp_path):
    """The real loading path (timm pretrained loader, local file) on a tiny stand-in file."""
    from safetensors.torch import save_file

    _empty_weight_caches(monkeypatch, tmp_path)
    config = TransLocatorConfig.tiny()
    reference = build_translocator(config, "random").rgb_branch
    folder = tmp_path / "weights" / "vit_base_patch16_224.augreg_in21k"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(folder / "model.safetensors"))
    model = build_translocator(config)
    for branch in (model.rgb_branch, model.seg_branch):
        assert torch.equal(branch.pos_embed, reference.pos_embed)
        assert torch.equal(branch.blocks[-1].mlp.fc2.weight, reference.blocks[-1].mlp.fc2.weight)
    assert model.random_weights and "untrained heads" in model.weights_description
    with pytest.raises(ValueError, match="does not fit"):
        build_translocator(TransLocatorConfig.tiny(embed_dim=32))
