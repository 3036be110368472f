"""Online tile templates (issue 26, items 6 and 20): https only (http for a server on this machine), a
decompression-bomb tile from a real HTTP server on 127.0.0.1 is a per-tile error, and the privacy notice
is printed once."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from geoapp.tiles import online
from geoapp.tiles.base import TileSourceError
from geoapp.tiles.online import ClientPolicy, OnlineTileSource
from geoapp.tiles.providers import resolve_provider

from ..conftest import REPO

POLICY = ClientPolicy(timeout_s=5.0, retries=0, requests_per_second=100.0)


def _bomb_png(side: int = 30_000) -> bytes:
    """A PNG whose header declares side x side RGB pixels (900 M at 30 000): a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000)))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb_server():
    """Serves the bomb PNG for every tile and counts requests."""
    body = _bomb_png()
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png", requests
    server.shutdown()
    server.server_close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoapp", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "GEOAPP_OFFLINE"})


@pytest.mark.parametrize("template", ["http://tiles.example/{z}/{x}/{y}.png", "http://10.0.0.5/{z}/{x}/{y}.png",
                                      "ftp://tiles.example/{z}/{x}/{y}.png"])
def test_plain_http_templates_are_refused(template):
    if template.startswith("http"):
        with pytest.raises(TileSourceError, match="must start with https://"):
            resolve_provider(template)
    out = _cli("tiles", "info", template)  # opening a source contacts nothing
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr


def test_https_and_loopback_http_templates_are_accepted():
    assert resolve_provider("https://tiles.example/{z}/{x}/{y}.png").info.online
    assert resolve_provider("http://127.0.0.1:8080/{z}/{x}/{y}.png").info.online
    assert resolve_provider("http://localhost:8080/{z}/{x}/{y}.png").info.online


def test_a_bomb_tile_is_a_per_tile_error(bomb_server, tmp_path, monkeypatch):
    template, requests = bomb_server
    monkeypatch.setattr(online, "_announced", set())
    source = OnlineTileSource(resolve_provider(template), allow_network=True, policy=POLICY)
    results = source.tiles([(1, 0, 0), (1, 1, 0)])  # nothing raises per tile
    assert [r.ok for r in results] == [False, False] and all("too large" in r.error for r in results)
    assert len(requests) >= 2


def test_show_of_a_bomb_tile_is_one_error_line_and_the_notice_is_said_once(bomb_server, tmp_path):
    template, _ = bomb_server
    one = _cli("tiles", "show", "48.85,2.35", "--zoom", "2", "--source", template, "-o", str(tmp_path / "a.png"))
    assert one.returncode == 1 and "Traceback" not in one.stderr
    errors = [line for line in one.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "too large" in errors[0]
    assert one.stderr.count("will see which tiles are requested") == 1, one.stderr
    mosaic = _cli("tiles", "show", "48.85,2.35", "--zoom", "2", "--size", "256", "--source", template,
                  "-o", str(tmp_path / "b.png"))
    assert mosaic.returncode == 0 and "Traceback" not in mosaic.stderr
    assert "tile(s) failed" in mosaic.stdout and "**" not in mosaic.stdout  # plain text on the terminal
    assert mosaic.stderr.count("will see which tiles are requested") == 1, mosaic.stderr
