"""Analyst experience on the maps: pins never hide each other's ranks, #1 stays on top, the view takes
in the search region, and a family's caveat is drawn on the map."""

from __future__ import annotations

import re

import numpy as np

from geoapp.geo.regions import parse_region
from geoapp.ui.maps.render import MapAssets, MapOptions, _marker_shifts, prediction_map_html
from geoapp.results.prediction import build_prediction

OPTIONS = MapOptions(assets=MapAssets.local("gradio_api/file=/srv/map-assets/"), online_tiles=False)


def clustered_prediction():
    lat = np.array([48.8566, 48.8570, 48.8600, 45.7640, 43.2965])
    lon = np.array([2.3522, 2.3530, 2.3400, 4.8357, 5.3698])
    return build_prediction("p.jpg", lat, lon, np.array([0.4, 0.3, 0.1, 0.1, 0.1]), top_k=5, merge_km=0.0)


def test_overlapping_pins_are_fanned_out_and_ranked_on_top():
    prediction = clustered_prediction()
    shifts = _marker_shifts(prediction.candidates)
    by_rank = {c.rank: shift for c, shift in zip(prediction.candidates, shifts)}
    assert by_rank[1] == (0, 0) and by_rank[2] != (0, 0) and by_rank[3] != (0, 0) and by_rank[2] != by_rank[3]
    page = prediction_map_html(prediction, OPTIONS)
    offsets = [int(v) for v in re.findall(r'"zIndexOffset": (\d+)', page)]
    assert len(offsets) >= 5 and offsets[:5] == sorted(offsets[:5], reverse=True)  # #1 highest
    assert offsets[0] - offsets[1] >= 10_000  # more than any screen-position difference


def test_view_takes_in_a_country_region_with_the_candidates():
    region = parse_region("CH")
    lat, lon = np.array([46.95, 46.2]), np.array([7.45, 6.14])
    prediction = build_prediction("p.jpg", lat, lon, np.array([0.6, 0.4]), top_k=2, merge_km=0.0)
    prediction.region = region
    page = prediction_map_html(prediction, OPTIONS)
    fitted = re.search(r"fitBounds\(\s*\[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]", page)
    south, west, north, east = (float(v) for v in fitted.groups())
    r_south, r_west, r_north, r_east = region.bounds
    assert south <= r_south and west <= r_west and north >= r_north and east >= r_east


def test_caveat_is_drawn_on_the_map():
    prediction = clustered_prediction()
    prediction.model = {"caveat": "Not made for ground-level photos."}
    assert 'class="geoapp-caveat"' in prediction_map_html(prediction, OPTIONS)
