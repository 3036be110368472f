"""GeoCLIP scored through a vector index: same answers as the exact matrix product where they must agree."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.families.retrieval.locator import GeoCLIPLocator
from geoapp.galleries.gallery import Gallery, PrebuiltGallery
from geoapp.index import IndexSpec

from ..conftest import shared_path

SMALL = 5_000


@pytest.fixture(scope="module")
def photo():
    return shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg")


@pytest.fixture(scope="module")
def small_gallery(tiny_locator) -> Gallery:
    coords = tiny_locator.gallery.coords[:: len(tiny_locator.gallery) // SMALL][:SMALL]
    return Gallery("mp16-5k", np.ascontiguousarray(coords), "test")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("index-cache")  # one embedding cache: the small gallery is embedded once


def locator_like(tiny_locator, gallery, cache_dir, **kwargs) -> GeoCLIPLocator:
    return GeoCLIPLocator(tiny_locator.model, tiny_locator.identity, gallery, tiny_locator.device,
                          cache_dir / "embeddings", spec=tiny_locator.spec, **kwargs)


def test_small_gallery_stays_exact(tiny_locator, small_gallery, cache):
    locator = locator_like(tiny_locator, small_gallery, cache)
    cands = locator.candidate_set()
    assert cands.index is None and cands.embeddings is not None and locator.index_spec().kind == "exact"


def test_forced_ivf_matches_exact(tiny_locator, small_gallery, cache, tmp_path, photo):
    exact = locator_like(tiny_locator, small_gallery, cache, index="exact")
    spec = IndexSpec("ivf-flat", nlist=32, nprobe=32)  # every cell visited: the retrieval is exact
    everything = locator_like(tiny_locator, small_gallery, cache, index=spec, index_top=SMALL)
    top = locator_like(tiny_locator, small_gallery, cache, index=spec, index_top=256)
    a, b = (loc.predict(photo, top_k=5) for loc in (exact, everything))
    assert "scoring" not in a.parameters and not any("retrieved" in w for w in a.warnings)
    # The whole gallery retrieved: the same softmax, so the same candidates and probabilities.
    assert [(x.lat, x.lon) for x in b.candidates] == [(x.lat, x.lon) for x in a.candidates]
    assert [x.probability for x in b.candidates] == pytest.approx([x.probability for x in a.candidates], rel=1e-4)
    # Top 256 only: the same best point (unmerged: merging sums nearby mass, which a top-N set truncates);
    # the record says the probabilities are over the retrieved set.
    a0, c = (loc.predict(photo, top_k=1, merge_km=0) for loc in (exact, top))
    assert (c.candidates[0].lat, c.candidates[0].lon) == (a0.candidates[0].lat, a0.candidates[0].lon)
    assert c.parameters["scoring"] == "probabilities over the top 256 retrieved gallery points"
    assert c.parameters["index"].startswith("ivf-flat") and any("top 256 retrieved" in w for w in c.warnings)
    # Per-call override of the locator's choice, and TenCrop (mean of the crops' logits) through the index.
    d = exact.predict(photo, top_k=5, index=spec)
    assert d.parameters["index"].startswith("ivf-flat")
    e, f = exact.predict(photo, top_k=3, tencrop=True), everything.predict(photo, top_k=3, tencrop=True)
    assert [(x.lat, x.lon) for x in e.candidates] == [(x.lat, x.lon) for x in f.candidates]
    assert list(cache.joinpath("embeddings", "indexes").glob("*.faiss"))  # cached next to the embeddings


def test_region_on_an_indexed_gallery(tiny_locator, small_gallery, cache, tmp_path, photo):
    exact = locator_like(tiny_locator, small_gallery, cache, index="exact")
    indexed = locator_like(tiny_locator, small_gallery, cache, index=IndexSpec("flat"), index_top=SMALL)
    for points in (0, 300):
        a = exact.predict(photo, top_k=3, region="FR", region_points=points)
        b = indexed.predict(photo, top_k=3, region="FR", region_points=points)
        assert [(x.lat, x.lon) for x in b.candidates] == [(x.lat, x.lon) for x in a.candidates]
        assert [x.probability for x in b.candidates] == pytest.approx([x.probability for x in a.candidates],
                                                                        rel=1e-4)
        cands = indexed.candidate_set("FR", extra_points=points)
        inside = cands.subset
        assert len(inside) == cands.gallery_points and (0 < cands.extra_points <= 300 if points else
                                                        cands.extra_points == 0)
        _, ids = cands.index.search(np.random.default_rng(0).standard_normal((4, 512)).astype(np.float32), 50,
                                    subset=inside)
        assert np.isin(ids[ids >= 0], inside).all()


def test_prebuilt_gallery_is_not_embedded_at_load(tiny_locator, small_gallery, cache, tmp_path, photo):
    exact = locator_like(tiny_locator, small_gallery, cache, index="exact")
    embeddings = exact.candidate_set().embeddings.cpu().numpy()
    from geoapp.index import build_index

    index = build_index(embeddings, IndexSpec("ivf-flat", nlist=32, nprobe=32))
    folder = tmp_path / "dense"
    PrebuiltGallery.create(folder, "dense-test", small_gallery.coords, embeddings, exact.encoder_id, index=index)
    prebuilt = PrebuiltGallery.open(folder)
    assert len(prebuilt) == SMALL and prebuilt.digest == small_gallery.digest
    assert prebuilt.embeddings().dtype == np.float16
    locator = locator_like(tiny_locator, prebuilt, tmp_path, index="ivf-flat", index_top=64)
    locator.encode_locations = None  # nothing may be embedded: the gallery brings its embeddings and index
    loaded = locator.gallery_index(locator.index_spec())
    assert loaded.kind == "ivf-flat" and loaded.size == SMALL and loaded.vectors is not None
    prediction = locator.predict(photo, top_k=3, merge_km=0, refine_km=0)  # refinement encodes new points by design
    best = exact.predict(photo, top_k=3, merge_km=0, refine_km=0).candidates[0]
    assert (prediction.candidates[0].lat, prediction.candidates[0].lon) == pytest.approx((best.lat, best.lon),
                                                                                            abs=1e-4)
    with pytest.raises(ValueError, match="rebuild it"):
        PrebuiltGallery.create(tmp_path / "stale", "stale", small_gallery.coords[:10], embeddings[:10], "geoclip:old")
        locator_like(tiny_locator, PrebuiltGallery.open(tmp_path / "stale"), cache)
