"""RequestGuard (geoapp.ui.guard): headers, cross-origin refusal, upload caps, login backoff.

Unit tests drive the middleware around a tiny Starlette app; the last tests check that the
real app (``running_app``: offline map, no login) answers with the same rules.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import warnings

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():  # Starlette would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from geoapp.ui.guard import GuardPolicy, LoginBackoff, RequestGuard, content_security_policy  # noqa: I001


async def _upload(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"got {len(body)}")


async def _login(request: Request) -> JSONResponse:
    form = await request.form()
    if form.get("password") == "right":
        return JSONResponse({"success": True})
    return JSONResponse({"detail": "Incorrect credentials."}, status_code=400)


def _client(**policy) -> TestClient:
    app = Starlette(routes=[Route("/upload", _upload, methods=["POST"]), Route("/login", _login, methods=["POST"]),
                            Route("/", lambda request: PlainTextResponse("page"))],
                    middleware=[Middleware(RequestGuard, policy=GuardPolicy(**policy))])
    return TestClient(app, base_url="http://127.0.0.1:7860")


def test_every_response_carries_the_security_headers():
    response = _client(online_tiles=False).get("/")
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "default-src 'self'" in csp and "openstreetmap" not in csp
    assert "tile.openstreetmap.org" in content_security_policy(online_tiles=True)
    assert "arcgisonline" in content_security_policy(online_tiles=True)
    assert "https://tiles.example" in content_security_policy(True, ("https://tiles.example",))
    assert "tiles.example" not in content_security_policy(False, ("https://tiles.example",))


def test_cross_origin_calls_are_refused_unless_allowed():
    client = _client()
    refused = client.post("/upload", content=b"x", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and "--allowed-origin https://evil.example" in refused.text
    assert client.post("/upload", content=b"x", headers={"Origin": "null"}).status_code == 403
    assert client.post("/upload", content=b"x", headers={"Origin": "http://127.0.0.1:7860"}).status_code == 200
    assert client.post("/upload", content=b"x").status_code == 200  # scripts and gradio_client send no Origin
    allowed = _client(allowed_origins=frozenset({"https://proxy.example"}))
    assert allowed.post("/upload", content=b"x", headers={"Origin": "https://proxy.example"}).status_code == 200


def test_request_size_is_capped_by_header_and_while_streaming():
    client = _client(max_request_bytes=1000)
    assert client.post("/upload", content=b"x" * 1000).text == "got 1000"
    declared = client.post("/upload", content=b"x" * 1001)
    assert declared.status_code == 413 and "--max-upload-mb" in declared.text

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * 400

    streamed = client.post("/upload", content=chunks())
    assert streamed.status_code == 413


def test_files_per_upload_request_are_capped():
    client = _client(max_files=3)

    def form(count: int) -> bytes:
        part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\nxx\r\n'
        return part * count + b"--b--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    assert client.post("/upload", content=form(3), headers=headers).status_code == 200
    refused = client.post("/upload", content=form(4), headers=headers)
    assert refused.status_code == 413 and "more than 3 files" in refused.text

    def one_byte_chunks():  # markers split across chunks are still counted
        yield from (bytes([b]) for b in form(4))

    assert client.post("/upload", content=one_byte_chunks(), headers=headers).status_code == 413


def test_wrong_passwords_back_off_per_client():
    now = [0.0]
    backoff = LoginBackoff(free_failures=3, clock=lambda: now[0])
    client = _client(login=backoff)
    codes = [client.post("/login", data={"username": "a", "password": "wrong"}).status_code for _ in range(10)]
    assert codes[:4] == [400, 400, 400, 400] and set(codes[4:]) == {429}
    locked = client.post("/login", data={"username": "a", "password": "right"})
    assert locked.status_code == 429 and "try again in" in locked.text and int(locked.headers["retry-after"]) >= 1
    now[0] += 3.0  # the 4th failure cost 2 s
    assert client.post("/login", data={"username": "a", "password": "right"}).status_code == 200
    assert backoff.wait_s("testclient") == 0


def test_backoff_delay_doubles_and_is_bounded():
    now = [0.0]
    backoff = LoginBackoff(free_failures=1, max_delay_s=30, max_clients=2, clock=lambda: now[0])
    waits = []
    for _ in range(8):
        backoff.failed("c")
        waits.append(backoff.wait_s("c"))
    assert waits[:4] == [0, 2, 4, 8] and waits[-1] == 30
    backoff.failed("d")
    backoff.failed("e")  # only the newest two clients are remembered
    assert backoff.wait_s("c") == 0


# ---------------------------------------------------------------------------- the real app
def _request(url: str, **kwargs) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, **kwargs)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode("utf-8", "replace")


def test_the_app_sends_headers_and_refuses_foreign_uploads(running_app):
    status, headers, _ = _request(running_app.url)
    assert status == 200 and "frame-ancestors 'self'" in headers["content-security-policy"]
    assert "openstreetmap" not in headers["content-security-policy"]  # started with --offline-map
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\nxx\r\n--b--\r\n")
    upload = running_app.url + "gradio_api/upload"
    status, _, text = _request(upload, data=body, method="POST",
                               headers={"Content-Type": "multipart/form-data; boundary=b", "Origin": "https://evil.example"})
    assert status == 403 and "Cross-origin" in text
    status, _, _ = _request(upload, data=body, method="POST", headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 200


@pytest.mark.parametrize("size_mb", [301])
def test_the_app_refuses_an_oversized_upload_request(running_app, size_mb):
    upload = running_app.url + "gradio_api/upload"
    request = urllib.request.Request(upload, data=b"", method="POST", headers={
        "Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(size_mb * 1024 * 1024)})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 413
