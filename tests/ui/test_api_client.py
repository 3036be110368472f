"""The public API of a running app (127.0.0.1, random port, tiny random backbone) via gradio_client."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.conftest import shared_path
from tests.ui.conftest import GPS_PHOTO, IM2GPS_PHOTO


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def test_app_serves_its_page_on_loopback(running_app):
    """How fast it starts is a benchmark (benchmarks/bench_budgets.py), not a test."""
    print(f"app.py answered HTTP 200 after {running_app.startup_s:.1f} s")
    assert running_app.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(running_app.url, timeout=30) as response:
        assert response.status == 200 and "gradio" in response.read().decode("utf-8", "replace").lower()


def test_api_lists_locate_and_text_map(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/locate", "/text_map"} <= set(endpoints)


def test_locate_returns_flagged_json(client):
    result = client.predict(photos=[handle_file(str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)))], top_k=3,
                            api_name="/locate")
    assert result["random_weights"] is True and "RANDOM WEIGHTS" in result["warning"]
    record = result["results"][0]
    assert record["ok"] and record["source"] == IM2GPS_PHOTO and len(record["candidates"]) == 3
    assert record["candidates"][0]["rank"] == 1 and 0 < record["candidates"][0]["probability"] <= 1


def test_text_map_returns_places(client):
    result = client.predict(query_a="a sandy beach with palm trees", top_k=4, api_name="/text_map")
    assert result["random_weights"] is True
    assert result["queries"][0]["query"] == "a sandy beach with palm trees"
    assert len(result["queries"][0]["places"]) == 4


def test_errors_are_readable_and_the_app_keeps_serving(client, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(AppError) as error:
        client.predict(photos=[handle_file(str(broken))], api_name="/locate")
    assert "broken.jpg" in str(error.value)
    with pytest.raises(AppError) as error:
        client.predict(photos=[handle_file(str(shared_path("im2gps3k-dev", IM2GPS_PHOTO)))], region_mode="Country",
                       country="Frnace", api_name="/locate")
    assert "Did you mean" in str(error.value) and "France" in str(error.value)
    assert client.predict(query_a="a harbour", top_k=1, api_name="/text_map")["queries"]


def test_two_users_at_once_get_their_own_results(running_app):
    photos = {IM2GPS_PHOTO: shared_path("im2gps3k-dev", IM2GPS_PHOTO), "DSCN0010.jpg": shared_path(*GPS_PHOTO)}

    def one_user(name: str) -> dict:
        user = Client(running_app.url, verbose=False)  # its own session
        return user.predict(photos=[handle_file(str(photos[name]))], top_k=2, api_name="/locate")

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = dict(zip(photos, pool.map(one_user, photos)))
    for name, answer in answers.items():
        assert [r["source"] for r in answer["results"]] == [name]
    gps = answers["DSCN0010.jpg"]["results"][0]["image"]["exif"]
    assert gps["gps_lat"] == pytest.approx(43.467448, abs=1e-4)
    assert answers[IM2GPS_PHOTO]["results"][0]["image"]["exif"]["gps_lat"] is None
    assert answers[IM2GPS_PHOTO]["results"][0]["image"]["sha256"] != answers["DSCN0010.jpg"]["results"][0]["image"]["sha256"]
