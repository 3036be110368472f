"""DNS rebinding and forged client addresses (issue 26, items 3 and 4): unit tests of the rules
(geoapp.ui.access) through the middleware, then the real app started on 127.0.0.1 with a login."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import warnings

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

with warnings.catch_warnings():  # Starlette would rather have httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from geoapp.ui.access import HostRule, LoginBackoff, client_address, login_username, parse_networks  # noqa: I001
from geoapp.ui.config import ConfigError, config_from_args
from geoapp.ui.guard import GuardPolicy, RequestGuard
from tests.ui.conftest import start_app, stop_app

USER, PASSWORD = "analyst", "correct horse battery"


async def _upload(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"got {len(await request.body())} from {request.client.host}")


async def _login(request: Request) -> JSONResponse:
    form = await request.form()
    if form.get("username") == USER and form.get("password") == PASSWORD:
        return JSONResponse({"success": True})
    return JSONResponse({"detail": "Incorrect credentials."}, status_code=400)


async def _socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def _client(peer: str = "127.0.0.1", **policy) -> TestClient:
    app = Starlette(routes=[Route("/upload", _upload, methods=["POST"]), Route("/login", _login, methods=["POST"]),
                            WebSocketRoute("/socket", _socket)],
                    middleware=[Middleware(RequestGuard, policy=GuardPolicy(**policy))])
    return TestClient(app, base_url="http://127.0.0.1:7860", client=(peer, 50000))


# ---------------------------------------------------------------------------------------- item 3
def test_a_rebinding_request_is_refused_before_any_handler():
    client = _client()
    foreign = client.post("/upload", content=b"x", headers={"Host": "evil.example:7860",
                                                             "Origin": "http://evil.example:7860"})
    assert foreign.status_code == 403 and "DNS rebinding" in foreign.text
    assert client.post("/upload", content=b"x", headers={"Host": "evil.example"}).status_code == 403
    for host in ("127.0.0.1:7860", "localhost:7860", "[::1]:7860", "app.localhost:7860", "192.168.1.20:7860"):
        assert client.post("/upload", content=b"x", headers={"Host": host}).status_code == 200, host
    with client.websocket_connect("/socket", headers={"Host": "localhost:7860"}) as socket:
        assert socket.receive_text() == "hello"
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/socket", headers={"Host": "evil.example:7860"}) as socket:
            socket.receive_text()
    assert closed.value.code == 1008


def test_the_hosts_follow_the_configuration():
    rule = HostRule.for_app("127.0.0.1", ("https://proxy.example",))
    assert rule.allows("proxy.example") and rule.allows("localhost:80") and not rule.allows("evil.example")
    assert HostRule.for_app("geo.internal").allows("geo.internal:7860")
    assert HostRule.for_app("0.0.0.0", share=True).allows("abc123.gradio.live")
    assert not HostRule.for_app("0.0.0.0").allows("abc123.gradio.live")


# ---------------------------------------------------------------------------------------- item 4
def test_forwarded_for_counts_only_from_trusted_proxies():
    proxies = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_address("127.0.0.1", ["203.0.113.9"], ()) == "127.0.0.1"  # nobody trusted: the header is noise
    assert client_address("198.51.100.7", ["203.0.113.9"], proxies) == "198.51.100.7"
    assert client_address("127.0.0.1", ["1.2.3.4, 203.0.113.9"], proxies) == "203.0.113.9"  # right-most untrusted
    assert client_address("127.0.0.1", ["203.0.113.9, 10.1.1.1"], proxies) == "203.0.113.9"
    with pytest.raises(ValueError, match="--trusted-proxy"):
        parse_networks(["proxy.example"])
    with pytest.raises(ConfigError, match="--trusted-proxy"):
        config_from_args(["--trusted-proxy", "not-an-address"])
    assert config_from_args(["--trusted-proxy", "127.0.0.1"]).trusted_proxies == ("127.0.0.1",)


def test_the_login_form_names_its_account():
    assert login_username("application/x-www-form-urlencoded", b"username=+analyst+&password=x") == "analyst"
    body = (b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\nanalyst\r\n'
            b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\nx\r\n--b--\r\n')
    assert login_username("multipart/form-data; boundary=b", body) == "analyst"


def _login_as(client: TestClient, password: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/login", data={"username": USER, "password": password}, headers=headers).status_code


def test_rotating_forwarded_for_does_not_reset_the_backoff_unless_the_proxy_is_trusted():
    now = [0.0]
    untrusted = _client(login=LoginBackoff(clock=lambda: now[0]))
    codes = [_login_as(untrusted, "wrong", f"198.51.100.{i}") for i in range(10)]
    assert codes[:4] == [400] * 4 and set(codes[4:]) == {429}
    assert untrusted.post("/upload", content=b"", headers={"X-Forwarded-For": "198.51.100.1"}).text == "got 0 from 127.0.0.1"
    trusted = _client(login=LoginBackoff(clock=lambda: now[0]), trusted_proxies=parse_networks(["127.0.0.1"]))
    codes = [_login_as(trusted, "wrong", f"198.51.100.{i}") for i in range(10)]
    assert codes == [400] * 10  # ten clients behind the proxy, one failure each: nobody waits yet
    assert trusted.post("/upload", content=b"", headers={"X-Forwarded-For": "198.51.100.1"}).text == (
        "got 0 from 198.51.100.1")  # handlers see the real client


def test_account_backoff_grows_slowly_and_never_locks_out_a_clean_address():
    now = [0.0]
    backoff = LoginBackoff(clock=lambda: now[0])
    for i in range(20):  # a password sprayer with 20 addresses, one guess each
        assert backoff.wait_s(f"attacker-{i}", USER) == 0  # a new address always gets its first try
        backoff.failed(f"attacker-{i}", USER)
    assert 0 < backoff.wait_s("attacker-0", USER) <= 60  # now each of them waits (account rule, bounded)
    assert "this account" in backoff.reason("attacker-0", USER)
    assert backoff.wait_s("analyst-laptop", USER) == 0  # the analyst's address has no failures: no wait
    backoff.succeeded("analyst-laptop", USER)
    assert backoff.wait_s("attacker-0", USER) == 0  # a correct password clears the account
    for _ in range(40):
        backoff.failed("attacker-0", USER)
        now[0] += 0.001
    assert backoff.wait_s("attacker-0", "") <= 300 and backoff._accounts.wait(USER, now[0]) <= 60


# ---------------------------------------------------------------------------------------- the real app
def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def _app_login(app, password: str, forwarded: str) -> int:
    form = urllib.parse.urlencode({"username": USER, "password": password}).encode()
    return _post(app.url + "login", form, {"Content-Type": "application/x-www-form-urlencoded",
                                           "X-Forwarded-For": forwarded})[0]


@pytest.fixture(scope="module")
def app_with_login(tiny_locator, tmp_path_factory):
    tiny_locator.candidate_set()
    app = start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map"],
                    tmp_path_factory.mktemp("login-app") / "app.log", timeout_s=180,
                    env_extra={"GEOAPP_AUTH": f"{USER}:{PASSWORD}"})
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def app_behind_proxy(tiny_locator, tmp_path_factory):
    tiny_locator.candidate_set()
    app = start_app(["--backbone", "tiny-test", "--backbone-weights", "random", "--offline-map",
                     "--trusted-proxy", "127.0.0.1"], tmp_path_factory.mktemp("proxy-app") / "app.log",
                    timeout_s=180, env_extra={"GEOAPP_AUTH": f"{USER}:{PASSWORD}"})
    yield app
    stop_app(app)


def test_the_real_app_refuses_a_rebinding_upload(app_with_login):
    body = (b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\nxx\r\n--b--\r\n")
    port = app_with_login.url.rstrip("/").rsplit(":", 1)[1]
    status, text = _post(app_with_login.url + "gradio_api/upload", body, {
        "Content-Type": "multipart/form-data; boundary=b", "Host": f"evil.example:{port}",
        "Origin": f"http://evil.example:{port}"})
    assert status == 403 and "DNS rebinding" in text
    request = urllib.request.Request(app_with_login.url, headers={"Host": f"localhost:{port}"})
    with urllib.request.urlopen(request, timeout=60) as response:  # a known name reaches the app
        assert response.status == 200


def test_the_real_app_ignores_forwarded_for_from_an_untrusted_peer(app_with_login):
    """60 tries with rotating addresses used to get no 429; now the address (127.0.0.1) backs off.
    The delays double (2, 4, 8 … s), so some try lands inside one however slow the machine is."""
    codes = []
    for i in range(12):
        codes.append(_app_login(app_with_login, "wrong", f"203.0.113.{i}"))
        if codes[-1] == 429:
            break
    assert codes[:3] == [400, 400, 400] and codes[-1] == 429, codes


def test_the_real_app_behind_a_trusted_proxy_counts_clients_and_accounts(app_behind_proxy):
    # One client behind the proxy: its own backoff (the proxy's address is not what is counted).
    codes = []
    for _ in range(12):
        codes.append(_app_login(app_behind_proxy, "wrong", "198.51.100.1"))
        if codes[-1] == 429:
            break
    assert codes[-1] == 429, codes
    assert _app_login(app_behind_proxy, PASSWORD, "198.51.100.2") == 200  # another client is not affected
    # A sprayer with one guess per address: each new address gets its guess, then the account backs off
    # for every address that failed (20 failures since the correct login: 2**((20 - 10) / 2) = 32 s).
    assert all(_app_login(app_behind_proxy, "wrong", f"203.0.113.{i}") == 400 for i in range(20))
    assert _app_login(app_behind_proxy, "wrong", "203.0.113.0") == 429
    assert _app_login(app_behind_proxy, PASSWORD, "192.0.2.77") == 200  # the analyst's clean address logs in
