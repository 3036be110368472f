"""The online client against a real HTTP server on 127.0.0.1 that serves the pyramid and injects faults."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from geoapp.tiles import online
from geoapp.tiles.archives import open_archive
from geoapp.tiles.base import OfflineModeError
from geoapp.tiles.online import ClientPolicy, OnlineTileSource, retry_after_seconds
from geoapp.tiles.providers import resolve_provider

POLICY = ClientPolicy(timeout_s=0.5, retries=2, backoff_s=0.05, max_retry_after_s=3.0, requests_per_second=200.0,
                      concurrency=4)

# Faults by tile, consumed one per request; when the list is used up the tile is served normally.
FAULTS = {
    "2/0/0": ["429"],  # rate limited once (Retry-After: 1), then fine
    "2/1/0": ["500", "503"],  # two server errors, then fine
    "2/2/0": ["slow", "slow", "slow"],  # slower than the timeout on every attempt
    "2/3/0": ["404"] * 5,  # no tile here
    "2/0/1": ["corrupt"] * 5,  # 200 with bytes that are not an image
    "2/1/1": ["500"] * 5,  # never recovers
    "2/2/1": ["429-long"],  # asks to wait longer than the client accepts
}


class TileServer:
    """ThreadingHTTPServer on a free port; counts requests per path and records User-Agents."""

    def __init__(self, pyramid) -> None:
        self.archive = open_archive(pyramid)
        self.counts: Counter[str] = Counter()
        self.agents: set[str] = set()
        self.faults = {k: list(v) for k, v in FAULTS.items()}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                key = self.path.strip("/").removesuffix(".jpg")
                with server.lock:
                    server.counts[key] += 1
                    server.agents.add(self.headers.get("User-Agent", ""))
                    fault = server.faults.get(key, []).pop(0) if server.faults.get(key) else None
                if fault == "slow":
                    time.sleep(1.5)
                if fault in ("429", "429-long"):
                    self.send_response(429)
                    self.send_header("Retry-After", "1" if fault == "429" else "120")
                    self.end_headers()
                    return
                if fault in ("500", "503"):
                    self.send_error(int(fault))
                    return
                if fault == "404":
                    self.send_error(404)
                    return
                z, x, y = (int(v) for v in key.split("/"))
                data = b"\xff\xd8\xff garbage, not a jpeg" if fault == "corrupt" else server.archive.tile(z, x, y).data
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def template(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{{z}}/{{x}}/{{y}}.jpg"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.archive.close()


@pytest.fixture
def tile_server(offline_pyramid):
    server = TileServer(offline_pyramid)
    yield server
    server.close()


def _source(server: TileServer, tmp_path, notices: list[str] | None = None) -> OnlineTileSource:
    provider = resolve_provider(server.template)
    # A URL template's licence is unknown (never cached); this test server allows storing.
    provider = replace(provider, info=replace(provider.info, caching_allowed=True, max_zoom=3))
    return OnlineTileSource(provider, allow_network=True, cache_dir=tmp_path / "cache", policy=POLICY,
                            notice=None if notices is None else notices.append)


def test_faults_give_results_or_clear_errors_and_cache_is_used(tile_server, tmp_path, monkeypatch):
    monkeypatch.setattr(online, "_announced", set())
    notices: list[str] = []
    source = _source(tile_server, tmp_path, notices)
    wanted = [(2, x, y) for y in range(2) for x in range(4)]
    results = {r.key: r for r in source.tiles(wanted)}
    assert len(results) == len(wanted)
    assert results["2/0/0"].ok and tile_server.counts["2/0/0"] == 2  # waited Retry-After, then got it
    assert results["2/1/0"].ok and tile_server.counts["2/1/0"] == 3
    assert "no answer within 0.5 s" in results["2/2/0"].error and "3 attempts" in results["2/2/0"].error
    assert results["2/3/0"].missing and tile_server.counts["2/3/0"] == 1  # 404 is not retried
    assert "not a readable image" in results["2/0/1"].error
    assert "HTTP 500" in results["2/1/1"].error and tile_server.counts["2/1/1"] == 3
    assert "wait 120 s" in results["2/2/1"].error and tile_server.counts["2/2/1"] == 1
    assert results["2/3/1"].ok and results["2/3/1"].image().size == (256, 256)
    assert all(r.ok or r.missing or r.error for r in results.values())
    # The privacy notice comes once, naming the server, before the first request.
    assert len(notices) == 1 and "127.0.0.1" in notices[0] and "area" in notices[0]
    assert any(agent.startswith("geoapp/") for agent in tile_server.agents)

    before = Counter(tile_server.counts)
    again = {r.key: r for r in _source(tile_server, tmp_path).tiles(wanted)}
    for key in ("2/0/0", "2/1/0", "2/3/1"):
        assert again[key].ok and again[key].from_cache
        assert tile_server.counts[key] == before[key]  # served from the disk cache
    assert tile_server.counts["2/3/0"] == before["2/3/0"] + 1  # misses are asked again


def test_no_cache_when_the_licence_forbids_storing(tile_server, tmp_path):
    provider = replace(resolve_provider(tile_server.template))
    provider = replace(provider, info=replace(provider.info, max_zoom=3))
    assert provider.info.caching_allowed is False
    source = OnlineTileSource(provider, allow_network=True, cache_dir=tmp_path / "cache", policy=POLICY)
    assert source.tile(2, 3, 1).ok and source.tile(2, 3, 1).ok
    assert tile_server.counts["2/3/1"] == 2
    assert not (tmp_path / "cache").exists()


def test_offline_mode_makes_no_request(tile_server, tmp_path):
    with pytest.raises(OfflineModeError, match="online tiles are off"):
        OnlineTileSource(resolve_provider(tile_server.template), allow_network=False, cache_dir=tmp_path)
    assert sum(tile_server.counts.values()) == 0


def test_unreachable_server_is_a_quick_clear_error(tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    provider = resolve_provider(f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png")
    source = OnlineTileSource(provider, allow_network=True, policy=POLICY)
    attempts = []
    once = OnlineTileSource._once
    monkeypatch.setattr(OnlineTileSource, "_once", lambda self, url: (attempts.append(url), once(self, url))[1])
    result = source.tile(1, 0, 0)
    assert len(attempts) == 1  # quick: a refused connection is not retried (no backoff waits)
    assert result.error and "cannot reach" in result.error and "offline" in result.error


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.001  # in the past: no wait
