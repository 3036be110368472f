"""The browser tests' app starter must not mistake another server on its port for the app it started
(CI once got a 200 from another test's app on a reused free port, then 'connection refused')."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.ui import conftest as ui


class _Impostor(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b"not geoapp"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.timeout(600)
def test_a_port_answered_by_another_server_is_not_taken_for_the_app(tmp_path, monkeypatch):
    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    taken = impostor.server_address[1]
    ports = iter([taken])
    real_free_port = ui.free_port
    monkeypatch.setattr(ui, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        app = ui.start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map",
                            "--no-preload"], tmp_path / "app.log")
        try:
            assert app.url != f"http://127.0.0.1:{taken}/", "the impostor's 200 was taken for the app"
            assert app.process.poll() is None
            assert f"geoapp is running on {app.url.rstrip('/')}" in app.log()
        finally:
            ui.stop_app(app)
    finally:
        impostor.shutdown()
        impostor.server_close()
