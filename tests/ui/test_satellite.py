"""The Satellite view handlers, the tile-source setting and the app's tile route (no browser)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette

from geoapp.ui.maps.render import MapAssets, MapOptions, placeholder_html
from geoapp.ui import satellite
from geoapp.ui.forms import FormError


def _session(lat=48.8566, lon=2.3522):
    candidate = SimpleNamespace(rank=1, lat=lat, lon=lon)
    prediction = SimpleNamespace(ok=True, candidates=[candidate])
    located = SimpleNamespace(prediction=prediction)
    return SimpleNamespace(results=[located], get=lambda index: located)


def test_candidate_view_from_the_offline_pyramid(offline_pyramid):
    image, caption = satellite.candidate_view(_session(), 0, 1, 5, "offline", False)
    assert image.size == (satellite.VIEW_SIZE_PX, satellite.VIEW_SIZE_PX)
    assert caption.startswith("Candidate #1") and "NASA" in caption and "public domain" in caption
    assert satellite.candidate_view(None, 0, 1, 5, "offline", False) == (None, "")


def test_online_sources_need_online_tiles(offline_pyramid):
    with pytest.raises(FormError, match="online tiles are off"):
        satellite.candidate_view(_session(), 0, 1, 5, "esri-imagery", False)
    with pytest.raises(FormError, match="unknown tile source"):
        satellite.candidate_view(_session(), 0, 1, 5, "nowhere", True)


def test_settings_list_licences_and_online():
    names = [name for _, name in satellite.source_choices()]
    assert names[0] == "offline" and "esri-imagery" in names
    table = satellite.sources_table()
    assert "Esri terms of use" in table and "**yes**" in table


@pytest.mark.filterwarnings("ignore:Using `httpx`")
def test_tile_route(offline_pyramid, monkeypatch):
    # Imported here: it warns about httpx on import, filtered for this test only.
    from starlette.testclient import TestClient

    started = []
    monkeypatch.setattr(satellite, "_start_background_build", lambda: started.append(True))
    client = TestClient(Starlette(routes=satellite.tile_routes()))
    assert started == [True]  # the test pyramid (zoom 0-3) is shallower than what the app shows: deepened
    response = client.get("/geoapp-tiles/offline/3/4/2.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    assert client.get("/geoapp-tiles/offline/9/4/2.jpg").status_code == 404  # beyond the pyramid
    assert client.get("/geoapp-tiles/offline/3/99/2.jpg").status_code == 400
    assert client.get("/geoapp-tiles/offline/a/b/c.jpg").status_code == 400


def test_maps_get_the_offline_imagery_layer(offline_pyramid):
    layer = satellite.offline_tile_layer()
    assert layer.max_native_zoom >= 3 and not layer.url.startswith(("/", "http"))  # relative: the app itself
    page = placeholder_html("x", MapOptions(MapAssets.local("assets/"), online_tiles=False, offline_tiles=layer))
    assert "geoapp-tiles/offline/{z}/{x}/{y}.jpg" in page and "maxNativeZoom" in page
    assert "tile.openstreetmap.org" not in page


def test_claim_view_uses_the_claim_point_or_the_country(offline_pyramid):
    point = SimpleNamespace(id="c1", label="Paris (±10 km)", lat=48.85, lon=2.35, region_key="")
    country = SimpleNamespace(id="c2", label="France", lat=None, lon=None, region_key="country:FR")
    case = SimpleNamespace(claims=[point, country])
    workbench = SimpleNamespace(get_case=lambda case_id: case)
    session = SimpleNamespace(case_id="case")
    image, caption = satellite.claim_view(workbench, session, "c1", 5, "offline", False)
    assert image is not None and caption.startswith("Claim Paris") and "48.8500, 2.3500" in caption
    image, caption = satellite.claim_view(workbench, session, "c2", 4, "offline", False)
    assert image is not None and caption.startswith("Claim France")
    assert satellite.claim_view(workbench, session, None, 4, "offline", False) == (None, "")


def test_tile_route_follows_the_app_login():
    def request(cookies):
        app = SimpleNamespace(auth={"analyst": "pw"}, auth_dependency=None, cookie_id="c", tokens={"tok": "analyst"})
        return SimpleNamespace(app=app, cookies=cookies)

    assert satellite._logged_in(request({"access-token-c": "tok"}))
    assert not satellite._logged_in(request({}))
    assert not satellite._logged_in(request({"access-token-c": "forged"}))
    assert satellite._logged_in(SimpleNamespace(app=SimpleNamespace(auth=None, auth_dependency=None), cookies={}))


def test_start_up_build_reaches_the_default_view_and_the_shipped_map_tile_model():
    """Issue 26 item 12: the start-up pyramid used to stop at zoom 4 while the Satellite view opens at zoom 6 and
    the shipped map-tile checkpoint searches down to zoom 5 (every search then ended at zoom 3)."""
    from pathlib import Path

    from geoapp.families.maptiles import SHIPPED_ZOOMS
    from geoapp.families.maptiles.model import read_checkpoint

    shipped = read_checkpoint(Path(__file__).resolve().parents[2] / "assets/maptiles/maptiles-crossview.pt")
    assert tuple(shipped["meta"]["zooms"]) == SHIPPED_ZOOMS
    deepest = max(satellite.startup_build_zooms())
    assert deepest >= satellite.DEFAULT_ZOOM and deepest >= max(SHIPPED_ZOOMS)
    assert min(satellite.startup_build_zooms()) <= 4  # a quick first stage, so maps show within seconds


def test_start_up_build_deepens_a_shallow_pyramid(tmp_path, monkeypatch):
    from geoapp.tiles.pyramid import build_pyramid
    from geoapp.tiles.registry import built_max_zoom, default_pyramid_path

    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path))
    build_pyramid(default_pyramid_path(), max_zoom=1)
    monkeypatch.setattr(satellite, "startup_build_zooms", lambda: (1, 2))  # small stand-ins for (4, 6)
    satellite._build_quietly()
    assert built_max_zoom() == 2


@pytest.mark.filterwarnings("ignore:Using `httpx`")
def test_tile_requests_wait_for_the_quick_stage_only(tmp_path, monkeypatch):
    """On a fresh cache the first map tiles wait for the quick first stage, never for the deeper one: a tile request
    that waited for the whole build held the server's workers and the browser's connections for a minute or more."""
    import threading

    from starlette.testclient import TestClient

    monkeypatch.setenv("GEOAPP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(satellite, "startup_build_zooms", lambda: (1, 2))  # small stand-ins for (4, 6)
    monkeypatch.setattr(satellite, "_background", None)
    monkeypatch.setattr(satellite, "_first_stage", threading.Event())
    release, released = threading.Event(), []
    monkeypatch.setattr(satellite, "_deepen_in_a_process", lambda zoom: released.append(release.wait(timeout=30)))
    client = TestClient(Starlette(routes=satellite.tile_routes()))  # no pyramid here: the build starts
    response = client.get("/geoapp-tiles/offline/1/0/0.jpg")
    release.set()  # only now may the deeper stage finish: a route that waited for it got its answer too late
    satellite._background.join(timeout=60)
    assert response.status_code == 200 and released == [True]
