"""A real HTTP tile server on 127.0.0.1 that renders Web-Mercator tiles from the NASA rasters on request.

``python -m training.maptiles.tileserver [--port 8765] [--max-zoom 16]`` serves
``http://127.0.0.1:PORT/{z}/{x}/{y}.jpg`` for any zoom 0..max_zoom, each tile rendered when asked
with the offline pyramid's renderer (:func:`geoapp.tiles.pyramid.render_tile`), nothing stored.
``GET /stats`` answers the requests served so far (tiles and bytes, per zoom) as JSON.

It exists to train and evaluate the map-tile family at the paper's zooms (4 … 16) through the
online client (:mod:`geoapp.tiles.online`) where no real deep imagery can be had: beyond zoom 5
the tiles are **upsampled** NASA rasters (Blue Marble is 5400 px round the equator), so they prove
memory, streaming and resumability, never accuracy. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from geoapp.geo.tiles import TileError, check_tiles
from geoapp.tiles.base import SourceInfo, encode_tile
from geoapp.tiles.online import ClientPolicy, OnlineTileSource
from geoapp.tiles.providers import OnlineProvider
from geoapp.tiles.pyramid import DEFAULT_LAYER, layer, load_raster, render_tile

HOST = "127.0.0.1"  # loopback only: nothing outside this machine can ask it for tiles
DEFAULT_MAX_ZOOM = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_PATH = re.compile(r"^/(\d{1,2})/(\d{1,10})/(\d{1,10})\.(?:jpg|jpeg)$")


class RenderingTileServer:
    """``with RenderingTileServer() as server: server.url`` — tiles rendered on request, counted in ``hits``."""

    def __init__(self, layer_key: str = DEFAULT_LAYER, *, port: int = 0, max_zoom: int = DEFAULT_MAX_ZOOM,
                 tile_size: int = 256, quality: int = 85) -> None:
        self.spec = layer(layer_key)
        self.max_zoom = int(max_zoom)
        self.tile_size = int(tile_size)
        self.quality = int(quality)
        self.hits: Counter[tuple[int, int, int]] = Counter()  # (z, x, y) -> requests served
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._raster = None
        self._httpd = ThreadingHTTPServer((HOST, int(port)), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The URL template clients use."""
        return f"http://{HOST}:{self.port}/{{z}}/{{x}}/{{y}}.jpg"

    def render(self, z: int, x: int, y: int) -> bytes:
        if self._raster is None:
            with self._lock:
                if self._raster is None:
                    self._raster = load_raster(self.spec.key)
        pixels = render_tile(self._raster, z, x, y, self.tile_size)
        return encode_tile(Image.fromarray(pixels), "jpeg", self.quality)

    def stats(self) -> dict:
        with self._lock:
            per_zoom = Counter()
            for (z, _, _), count in self.hits.items():
                per_zoom[z] += count
            return {"requests": int(sum(self.hits.values())), "distinct_tiles": len(self.hits),
                    "bytes": self.bytes_sent, "per_zoom": {str(z): n for z, n in sorted(per_zoom.items())}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "geoapp-loopback-tiles/1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/stats":
                    self._send(200, json.dumps(server.stats()).encode(), "application/json")
                    return
                match = _PATH.match(self.path)
                if match is None:
                    self._send(404, b"not a tile path: use /{z}/{x}/{y}.jpg", "text/plain")
                    return
                z, x, y = (int(v) for v in match.groups())
                try:
                    check_tiles(z, x, y)
                except TileError as error:
                    self._send(400, str(error).encode(), "text/plain")
                    return
                if z > server.max_zoom:
                    self._send(404, b"beyond this server's deepest zoom", "text/plain")
                    return
                data = server.render(z, x, y)
                with server._lock:
                    server.hits[(z, x, y)] += 1
                    server.bytes_sent += len(data)
                self._send(200, data, "image/jpeg")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet: a training run asks for many thousand tiles
                pass

        return Handler

    def start(self) -> RenderingTileServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-tiles", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RenderingTileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def is_loopback_template(name: str | None) -> bool:
    """An ``http(s)://127.0.0.1:PORT/{z}/{x}/{y}…`` template: a tile server on this machine."""
    if not name or not name.startswith(("http://", "https://")) or not all(f"{{{k}}}" in name for k in "zxy"):
        return False
    return urlsplit(name).hostname in LOOPBACK_HOSTS


def loopback_source(url: str, *, cache_dir: Path | None = None, policy: ClientPolicy | None = None,
                    max_zoom: int = DEFAULT_MAX_ZOOM) -> OnlineTileSource:
    """This machine's own tile server, read through the polite online client (retries, timeouts, size cap).

    Its tiles are NASA renderings (public domain), so the client's disk cache may keep them (``cache_dir``);
    nothing leaves the machine, so the request rate is not limited unless ``policy`` says so."""
    if not is_loopback_template(url):
        raise ValueError(f"{url!r} is not a loopback tile template (http://127.0.0.1:PORT/{{z}}/{{x}}/{{y}}.jpg)")
    info = SourceInfo(name=url, title="NASA rasters rendered on request (loopback tile server)", max_zoom=int(max_zoom),
                      attribution="NASA Blue Marble NG (rendered by geoapp; deep zooms are upsampled)",
                      licence="public domain (NASA)", caching_allowed=True, online=True, image_format="jpeg")
    return OnlineTileSource(OnlineProvider(url, info), allow_network=True, cache_dir=cache_dir,
                            policy=policy or ClientPolicy(requests_per_second=0.0, concurrency=8))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--layer", default=DEFAULT_LAYER)
    parser.add_argument("--max-zoom", type=int, default=DEFAULT_MAX_ZOOM)
    args = parser.parse_args(argv)
    server = RenderingTileServer(args.layer, port=args.port, max_zoom=args.max_zoom)
    print(server.url, flush=True)  # the first line of output: what a client (or the benchmark) reads
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
