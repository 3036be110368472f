"""The engine's trimmed text encoding equals open_clip's full 77-token text tower."""

import torch

from geoapp.models.backbones import TINY_TEST, build_clip_backbone, clip_tokenizer


def test_trimmed_text_encoding_matches_full_tower():
    torch.manual_seed(0)
    backbone, description = build_clip_backbone(TINY_TEST, weights="random")
    assert description == "random"
    tokens = clip_tokenizer()(["a snowy mountain village", "desert", "a red double-decker bus in front of old brick buildings"])
    with torch.no_grad():
        trimmed = backbone.encode_text(tokens)
        full = backbone.clip.encode_text(tokens)
    assert trimmed.shape == full.shape == (3, 768)
    assert torch.allclose(trimmed, full, atol=1e-5)
    # Not trivially equal: different texts give different features.
    assert not torch.allclose(trimmed[0], trimmed[1], atol=1e-3)
