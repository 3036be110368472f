"""Hostile inputs to the running app's API: each gets a clear message, no traceback, no server path."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from geoapp.geo.regions import RegionError, parse_region
from geoapp.ui.forms import MAX_QUERY_CHARS, FormError, RegionForm, TextMapForm
from tests.conftest import shared_path
from tests.ui.conftest import IM2GPS_PHOTO

DEPTH = 200_000


def _nested(path):
    path.write_text('{"type": "FeatureCollection", "features": ' + "[" * DEPTH + "]" * DEPTH + "}")
    return path


def test_nested_and_broken_geojson_files_give_clear_messages(tmp_path):
    with pytest.raises(RegionError, match="nested too deeply") as error:
        parse_region(f"geojson:{_nested(tmp_path / 'deep.geojson')}")
    assert str(tmp_path) not in str(error.value)
    (tmp_path / "broken.geojson").write_text("{not json")
    with pytest.raises(RegionError, match="'broken.geojson' is not valid JSON") as error:
        parse_region(f"geojson:{tmp_path / 'broken.geojson'}")
    assert str(tmp_path) not in str(error.value)
    deep = {"type": "Feature", "geometry": None}
    for _ in range(5000):
        deep = {"type": "FeatureCollection", "features": [deep]}
    with pytest.raises(RegionError, match="nested too deeply"):
        parse_region(deep)


def test_long_text_queries_are_a_form_error():
    with pytest.raises(FormError, match=f"at most {MAX_QUERY_CHARS}"):
        TextMapForm.from_values("x" * (MAX_QUERY_CHARS + 1), None, None, 5, RegionForm())
    with pytest.raises(FormError, match="Query B"):
        TextMapForm.from_values("beach", "y" * 10_000, None, 5, RegionForm())


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def _app_error(call) -> str:
    with pytest.raises(AppError) as error:
        call()
    return str(error.value)


def test_api_errors_are_plain_readable_and_logged_without_traceback(running_app, client, tmp_path):
    photo = handle_file(str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)))
    log_start = len(running_app.log())
    deep = _app_error(lambda: client.predict(photos=[photo], region_mode="GeoJSON file",
                                             region_geojson=handle_file(str(_nested(tmp_path / "deep.geojson"))),
                                             api_name="/locate"))
    (tmp_path / "it's broken.geojson").write_text("{not json")
    broken = _app_error(lambda: client.predict(photos=[photo], region_mode="GeoJSON file",
                                               region_geojson=handle_file(str(tmp_path / "it's broken.geojson")),
                                               api_name="/locate"))
    long = _app_error(lambda: client.predict(query_a="a beach " * 200, top_k=3, api_name="/text_map"))
    typo = _app_error(lambda: client.predict(photos=[photo], region_mode="Country", country="Frnace",
                                             api_name="/locate"))
    assert "nested too deeply" in deep
    assert "it's broken.geojson" in broken and "/tmp" not in broken and "gradio" not in broken.lower()
    assert f"at most {MAX_QUERY_CHARS}" in long
    for message in (deep, broken, long, typo):
        assert "Unexpected error" not in message and "&#" not in message and "&quot;" not in message, message
    new_log = running_app.log()[log_start:]
    assert "Traceback" not in new_log and "RecursionError" not in new_log, new_log[-3000:]
    assert json.dumps(client.predict(query_a="a harbour", top_k=1, api_name="/text_map"))  # still serving
