"""Regional heads: shapes, offset decoding, loss weighting, overfitting a tiny batch, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geoapp.families.regional.heads import (
    KINDS,
    Batch,
    HeadConfig,
    RegionalHead,
    decode_offsets,
    encode_offsets,
    haversine_smoothed_targets,
    loss,
)
from geoapp.families.regional.model import (
    References,
    RegionalModel,
    Tables,
    load_model,
    save_model,
)

D = 32


def head(kind: str, classes: int = 4, **kwargs) -> RegionalHead:
    torch.manual_seed(0)
    return RegionalHead(HeadConfig(kind=kind, feature_dim=D, classes=classes, hidden=64, embed_dim=32,
                                   location_hidden=32, frequencies=16, dropout=0.0, **kwargs))


def boxes(count: int) -> torch.Tensor:
    south = torch.linspace(45, 60, count)
    west = torch.linspace(5, 20, count)
    return torch.stack([south, west, south + 2, west + 3], dim=1)


@pytest.mark.parametrize("kind", KINDS)
def test_output_shapes(kind):
    out = head(kind, classes=7)(torch.randn(5, D))
    if kind == "retrieval":
        assert out["embedding"].shape == (5, 32)
        assert torch.allclose(out["embedding"].norm(dim=1), torch.ones(5))
        return
    assert out["logits"].shape == (5, 7)
    if kind in ("offset", "hybrid"):
        assert out["offsets"].shape == (5, 7, 2)


def test_location_encoders_shapes_and_sigma_presets():
    for encoder in ("rff", "mlp"):
        h = head("retrieval", location_encoder=encoder)
        assert h.encode_locations(torch.tensor([[59.3, 18.1], [46.9, 7.4]])).shape == (2, 32)
    assert [f.sigma for f in head("retrieval", sigmas=(1.0, 16.0, 256.0)).location.fourier] == [1.0, 16.0, 256.0]


def test_offset_decoding_stays_inside_the_box():
    box = boxes(6)
    offsets = torch.cat([torch.rand(100, 6, 2) * 3 - 1, torch.zeros(1, 6, 2), torch.ones(1, 6, 2)])
    decoded = decode_offsets(offsets, box)
    assert (decoded[..., 0] >= box[:, 0]).all() and (decoded[..., 0] <= box[:, 2]).all()
    assert (decoded[..., 1] >= box[:, 1]).all() and (decoded[..., 1] <= box[:, 3]).all()
    assert torch.allclose(decoded[-2], box[:, :2]) and torch.allclose(decoded[-1], box[:, 2:])
    # encode is the inverse inside the box
    points = decoded[0]
    assert torch.allclose(encode_offsets(points, box), offsets[0].clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_loss_weighting(alpha):
    h = head("offset", alpha=alpha).eval()
    features, box = torch.randn(8, D), boxes(8)
    label = torch.arange(8) % 4
    latlon = box[:, :2] + torch.rand(8, 2)
    with torch.no_grad():
        value, parts = loss(h, Batch(features, latlon, label=label, boxes=box))
        out = h(features)
    ce = F.cross_entropy(out["logits"], label)
    mse = F.mse_loss(out["offsets"][torch.arange(8), label], encode_offsets(latlon, box))
    assert parts["ce"] == pytest.approx(float(ce), rel=1e-5) and parts["mse"] == pytest.approx(float(mse), rel=1e-5)
    assert float(value) == pytest.approx(alpha * float(ce) + (1 - alpha) * float(mse), rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_overfits_a_tiny_batch(kind):
    torch.manual_seed(1)
    n = 8
    h = head(kind, classes=n).train()
    features = torch.randn(n, D)
    latlon = torch.stack([torch.linspace(55, 68, n), torch.linspace(11, 24, n)], dim=1)
    label = torch.arange(n)
    box = torch.cat([latlon - 0.5, latlon + 0.5], dim=1)
    smooth = torch.as_tensor(haversine_smoothed_targets(latlon[:, 0].numpy(), latlon[:, 1].numpy(),
                                                        latlon.double().numpy(), 65.0))
    batch = Batch(features, latlon, label=label, boxes=box, target=smooth if kind == "cells" else None)
    optimiser = torch.optim.Adam(h.parameters(), lr=1e-2)
    first = float(loss(h, batch)[0].detach())
    for _ in range(120):
        value, _ = loss(h, batch)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    h.eval()
    assert float(loss(h, batch)[0].detach()) < 0.35 * first
    out = h(features)
    if kind == "retrieval":
        scores = h.similarity(out["embedding"], h.encode_locations(latlon))
        assert (scores.argmax(dim=1) == label).all()
    else:
        assert (out["logits"].argmax(dim=1) == label).all()


def test_haversine_smoothing_targets():
    cells = np.array([[59.0, 18.0], [59.5, 18.0], [46.9, 7.4]])
    targets = haversine_smoothed_targets(np.array([59.0, 46.9]), np.array([18.0, 7.4]), cells, tau_km=65.0)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)
    assert targets[0].argmax() == 0 and targets[1].argmax() == 2
    # 55.6 km away: exp(-55.6 / 65) relative to the nearest cell
    assert targets[0, 1] / targets[0, 0] == pytest.approx(np.exp(-55.6 / 65), rel=0.01)
    assert targets[0, 2] < 1e-6


def test_checkpoint_round_trip(tmp_path):
    h = head("hybrid", classes=3).eval()
    tables = Tables(countries=["SE", "CH"], country_boxes=np.array([[55, 11, 69, 24], [45.8, 5.9, 47.8, 10.5]], float),
                    country_anchors=np.array([[59, 16], [46.8, 8.2]]), feature_mean=np.zeros(D, np.float32),
                    feature_std=np.ones(D, np.float32), cell_coords=np.array([[59, 18], [57, 12], [46.9, 7.4]]),
                    cell_boxes=np.array([[58, 17, 60, 19], [56, 11, 58, 13], [46, 6, 47.5, 8.5]], float),
                    cell_country=np.array([0, 0, 1]))
    refs = References(np.eye(3, D, dtype=np.float16), np.array([[59, 18], [57, 12], [46.9, 7.4]], float),
                      ["a.jpg", "b.jpg", "c.jpg"], ["", "", ""])
    model = RegionalModel(h, tables, refs, {"method": "hybrid"})
    sha = save_model(model, tmp_path / "model.pt")
    loaded, sha2 = load_model(tmp_path)
    assert sha == sha2 and loaded.method == "hybrid" and loaded.references.names == ["a.jpg", "b.jpg", "c.jpg"]
    features = torch.randn(4, D)
    a, b = model.decode(features), loaded.decode(features)
    np.testing.assert_allclose(a.coords, b.coords)
    np.testing.assert_allclose(a.probs, b.probs)
    # hybrid candidates sit inside their cell's box
    cb = tables.cell_boxes
    assert ((a.coords[..., 0] >= cb[:, 0]) & (a.coords[..., 0] <= cb[:, 2])).all()
    index, similarity = loaded.references.nearest(np.eye(3, D, dtype=np.float32)[[2]], 2)
    assert index[0, 0] == 2 and similarity[0, 0] == pytest.approx(1.0, abs=1e-3)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable regional model"):
        load_model(tmp_path / "bad.pt")
