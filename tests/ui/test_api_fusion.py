"""/locate with clues through gradio_client: the credible areas (GeoJSON) and the clue table come back;
a bad clue is a readable error naming it."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO

TZ = "tz:offset=+02:00,time=2024-06-21T12:00:00"


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def test_locate_with_clues_returns_areas_and_the_clue_table(client):
    photo = handle_file(str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)))
    result = client.predict(photos=[photo], top_k=3, clues=f"{TZ}\n# drive:left\ndrive:right", api_name="/locate")
    fusion = result["results"][0]["fusion"]
    features = fusion["areas"]["features"]
    assert [f["properties"]["level"] for f in features] == [0.5, 0.8, 0.9, 0.95]
    assert all(f["properties"]["area_km2"] > 0 and f["properties"]["calibrated"] is False for f in features)
    assert [c["name"] for c in fusion["clues"]] == [TZ, "drive:right"]  # the switched-off line is not applied
    assert all(0 < c["share_of_globe"] < 1 for c in fusion["clues"])
    plain = client.predict(photos=[photo], top_k=3, api_name="/locate")["results"][0]
    assert "fusion" not in plain


def test_a_bad_clue_is_a_readable_error(client):
    photo = handle_file(str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)))
    with pytest.raises(AppError, match="drive:middle"):
        client.predict(photos=[photo], clues="drive:middle", api_name="/locate")
