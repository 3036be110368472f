"""One contract test over every registered family, each built tiny and random from its spec's test options.

A new family is picked up here by registering it: nothing else to write for the contract.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from geoapp.results import formats
from geoapp.families import CapabilityError, LoadOptions, registry
from geoapp.geo.countries import get_country_index
from geoapp.geo.regions import RegionError
from geoapp.results.prediction import RANDOM_WEIGHTS_WARNING

from ..conftest import shared_path

SPECS = registry.families(include_variants=False)


@pytest.fixture(scope="module")
def small_gallery(tmp_path_factory) -> str:
    """3000 points worldwide plus 400 in France (so a French region has gallery points)."""
    rng = np.random.default_rng(3)
    lat = np.concatenate([rng.uniform(-55, 70, 3000), rng.uniform(43.5, 49.5, 400)])
    lon = np.concatenate([rng.uniform(-180, 180, 3000), rng.uniform(-1.0, 7.0, 400)])
    path = tmp_path_factory.mktemp("contract") / "gallery.csv"
    path.write_text("LAT,LON\n" + "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(lat, lon)))
    return str(path)


@pytest.fixture(scope="module", params=[spec.key for spec in SPECS])
def family(request, small_gallery):
    import torch

    torch.manual_seed(0)
    spec = registry.get(request.param)
    options = LoadOptions(device="cpu", backbone_weights="random",
                          extras={**spec.test_options, "gallery": small_gallery})
    return spec.load(options)


@pytest.fixture(scope="module")
def photo():
    return str(shared_path("im2gps3k-dev", "1008845063_ace4ef829f_1204_97522422@N00.jpg"))


def test_batch_keeps_order_and_records_errors(family, photo, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    results = family.predict_batch([photo, str(broken)], top_k=3)
    assert [r.ok for r in results] == [True, False] and results[1].error and str(broken) in results[1].source
    good = results[0]
    assert 1 <= len(good.candidates) <= 3 and good.candidates[0].rank == 1
    assert good.random_weights and RANDOM_WEIGHTS_WARNING in good.warnings
    assert good.model["family"] == family.spec.key and results[1].model["family"] == family.spec.key
    if family.spec.caveat:
        assert family.spec.caveat in good.warnings and good.caveats == [family.spec.caveat]
    # Every writer takes the results, evidence included.
    data = json.loads(formats.to_json(results))
    assert data[0]["model"]["label"] == family.spec.label
    for item in good.evidence:
        assert item.key in data[0] and item.html()
    assert "source" in formats.to_csv(results).splitlines()[0]
    assert json.loads(formats.to_geojson(results))["type"] == "FeatureCollection"


def covered_region(spec) -> str:
    """A country the tiny test instance covers: the first of its ``countries`` (regional models), else France."""
    countries = str(spec.test_options.get("countries", "FR"))
    return countries.split(",")[0].strip()


def test_restrict_to_a_covered_region(family, photo):
    region = covered_region(family.spec)
    if not family.spec.capabilities.region:
        with pytest.raises(CapabilityError):
            family.predict(photo, region=region)
        return
    space = family.restrict(region)
    assert space.size > 0 and space.region is not None and space.description
    result = family.predict(photo, top_k=3, region=region)
    country = get_country_index().get(region)
    assert result.ok and result.candidates
    for candidate in result.candidates:
        assert country.geometry.buffer(0.05).contains(_point(candidate.lon, candidate.lat))
    if "countries" in family.spec.test_options:
        # A model of a few countries refuses a region outside them, naming the ones it covers.
        outside = "BR"
        with pytest.raises(RegionError) as refused:
            family.restrict(outside)
        covers = str(family.spec.test_options["countries"]).replace(",", ", ")
        assert "Brazil holds none of this model's" in str(refused.value)
        assert f"it covers {covers} only" in str(refused.value)


def _point(lon, lat):
    from shapely.geometry import Point

    return Point(lon, lat)


def test_text_map_as_declared(family):
    if family.spec.capabilities.text:
        result = family.text_map("a sandy beach with palm trees", top_k=4)
        assert result.ok and 1 <= len(result.candidates) <= 4 and result.random_weights
    else:
        with pytest.raises(CapabilityError):
            family.text_map("a sandy beach")


def test_explain_as_declared(family, photo):
    if not family.spec.capabilities.gradcam:
        with pytest.raises(CapabilityError):
            family.explain(photo, 48.85, 2.35)
        return
    maps = family.explain(photo, 48.85, 2.35)
    assert maps and all(np.isfinite(m.heatmap).all() and m.random_weights for m in maps.values())


def test_describe_renders_in_the_models_tab(family):
    from geoapp.ui.models_tab import family_markdown, weights_table
    from geoapp.ui.service import GeolocationService, ModelSettings

    service = GeolocationService(ModelSettings(device="cpu", backbone_weights="random"))
    service.adopt(family.spec.key, family)
    status = service.status()
    text = family_markdown(status)
    assert f"(`{family.spec.key}`)" in text and "loaded —" in text
    assert html.escape(family.describe().summary()) in text  # the identity formats without knowing the family
    assert len(weights_table(status)) >= 1
