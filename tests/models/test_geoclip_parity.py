"""Numerical parity with the reference `geoclip` package (its code is the reference, not our implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoapp.models.geoclip import ImageHead, build_geoclip
from geoapp.models.weights import GEOCLIP_IMAGE_HEAD, GEOCLIP_LOCATION_ENCODER, require
from geoapp.models.location_encoder import LocationEncoder, convert_reference_location_state_dict, equal_earth_projection

reference = pytest.importorskip("geoclip", reason="the reference geoclip package is in requirements.txt")


def _coordinates(n_random: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(1234)
    random = np.c_[rng.uniform(-90, 90, n_random), rng.uniform(-180, 180, n_random)]
    special = [
        [90, 0], [-90, 0], [90, 180], [-90, -180], [0, 180], [0, -180], [0, 0],
        [89.9999, 179.9999], [-89.9999, -179.9999], [45, 180], [45, -180], [-33.9, 179.99], [-33.9, -179.99],
        [51.5074, -0.1278], [48.8566, 2.3522], [35.6762, 139.6503], [-22.9068, -43.1729],
    ]
    return np.concatenate([random, special]).astype(np.float32)


@pytest.fixture(scope="module")
def models():
    ours, _ = build_geoclip("tiny-test", "random")  # heads: the published geoclip weights
    ref = reference.LocationEncoder()  # loads the same published weights with the reference code
    return ours, ref.eval()


def test_location_embeddings_match_reference(models):
    ours, ref = models
    coords = torch.from_numpy(_coordinates())
    assert coords.shape[0] >= 1000
    with torch.no_grad():
        expected = ref(coords)
        actual = ours.encode_locations(coords)
    assert actual.dtype == torch.float32 and actual.shape == (coords.shape[0], 512)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_equal_earth_projection_matches_reference():
    from geoclip.model.location_encoder import equal_earth_projection as ref_projection

    coords = torch.from_numpy(_coordinates())
    assert torch.equal(equal_earth_projection(coords), ref_projection(coords))


def test_image_head_matches_reference_on_identical_clip_features(models):
    ours, _ = models
    ref_head = torch.nn.Sequential(torch.nn.Linear(768, 768), torch.nn.ReLU(), torch.nn.Linear(768, 512))
    ref_head.load_state_dict(torch.load(require(GEOCLIP_IMAGE_HEAD), map_location="cpu", weights_only=True))
    features = torch.randn(64, 768, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours.image_head(features), ref_head(features), atol=1e-6, rtol=0)


def test_reference_image_encoder_mlp_matches(models):
    """The reference ImageEncoder's own mlp (as its GeoCLIP class loads it) against ours."""
    ours, _ = models
    ref = reference.GeoCLIP(from_pretrained=True, clip_pretrained=False)
    features = torch.randn(16, 768, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours.image_head(features), ref.image_encoder.mlp(features), atol=1e-6, rtol=0)
    assert ours.logit_scale.item() == ref.logit_scale.item()


def test_random_heads_differ_and_are_flagged(models):
    pretrained, _ = models
    _, pretrained_identity = build_geoclip("tiny-test", "random")
    model, identity = build_geoclip("tiny-test", "random", heads="random")
    assert identity.random_weights
    assert isinstance(model.image_head, ImageHead)
    assert identity.heads_sha256 != pretrained_identity.heads_sha256
    features = torch.randn(8, 768, generator=torch.Generator().manual_seed(2))
    coords = torch.from_numpy(_coordinates(8)[:8])
    with torch.no_grad():
        # not the published heads: image features and location embeddings both come out different
        assert (model.image_head(features) - pretrained.image_head(features)).abs().max() > 1e-2
        assert (model.encode_locations(coords) - pretrained.encode_locations(coords)).abs().max() > 1e-2


def test_key_conversion_rejects_foreign_checkpoints():
    with pytest.raises(KeyError):
        convert_reference_location_state_dict({"encoder.weight": torch.zeros(1)})
    # every reference key maps to one of ours, and the result loads strictly
    state = torch.load(require(GEOCLIP_LOCATION_ENCODER), map_location="cpu", weights_only=True)
    LocationEncoder().load_state_dict(convert_reference_location_state_dict(state), strict=True)


@pytest.mark.parametrize("texts", [["a photo taken in Paris"], ["beach", "a long description of snowy mountains with pine trees"]])
def test_short_text_encoding_equals_full_clip_encode_text(models, texts):
    from geoapp.models.backbones import clip_tokenizer

    ours, _ = models
    tokens = clip_tokenizer()(texts)
    with torch.no_grad():
        torch.testing.assert_close(ours.backbone.encode_text(tokens), ours.backbone.clip.encode_text(tokens),
                                   atol=1e-5, rtol=1e-5)
