"""RequestGuard: one ASGI middleware in front of the Gradio app for what Gradio leaves open.

- **Security headers** on every response: a Content-Security-Policy that fits the app (Gradio
  needs inline scripts and styles; Leaflet and the basemap are served by the app itself; map
  tiles from OpenStreetMap and Esri only when online tiles are enabled), frame-ancestors /
  X-Frame-Options, X-Content-Type-Options and Referrer-Policy.
- **Cross-origin refusal**: a request whose ``Origin`` is neither the app's own nor one given
  with ``--allowed-origin`` is answered 403, so another web page open in the analyst's browser
  cannot upload files or call the API. Clients that send no ``Origin`` (scripts,
  ``gradio_client``) are not browsers acting for another site and pass.
- **Upload cap per request**: a body larger than ``max_request_bytes`` (all files together) is
  answered 413, by ``Content-Length`` at once, or while streaming when the length is not given;
  so is an upload of more than ``max_files`` files. Gradio itself enforces the per-file limit
  (``max_file_size``).
- **Host names** (DNS rebinding): a request naming a host this app does not answer to is refused
  (403) before any handler runs; see :mod:`geoapp.ui.access` for the names allowed.
- **Login backoff**: wrong passwords slow down their address and, more gently, their account
  (``/login`` answers 429 with ``Retry-After``); ``X-Forwarded-For`` counts only from ``--trusted-proxy``
  proxies. The rules are in :mod:`geoapp.ui.access`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoapp.ui.access import MAX_LOGIN_BODY, HostRule, LoginBackoff, client_address, host_name, login_username

TILE_HOSTS = ("https://tile.openstreetmap.org", "https://server.arcgisonline.com")
LOGIN_PATHS = ("/login", "/login/")
FILE_PART_MARKER = b'; filename="'  # in each multipart part header that carries a file


def content_security_policy(online_tiles: bool, tile_origins: tuple[str, ...] = ()) -> str:
    """The CSP for the app's pages (also inherited by the map iframes, which are ``srcdoc``).

    ``tile_origins``: further tile servers (``https://host``) the app was configured to use."""
    hosts = (*TILE_HOSTS, *tile_origins) if online_tiles else ()
    images = "'self' data: blob:" + "".join(f" {host}" for host in hosts)
    return "; ".join((
        "default-src 'self'",
        # Gradio's page and Folium maps run inline scripts, and the maps do not draw without eval (checked
        # in headless Chromium: tests/ui/test_browser.py).
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {images}",
        "font-src 'self' data:",
        "connect-src 'self'",
        "media-src 'self' blob: data:",
        "worker-src 'self' blob:",
        "frame-src 'self' blob: data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ))


def security_headers(online_tiles: bool, tile_origins: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        "content-security-policy": content_security_policy(online_tiles, tile_origins),
        "x-frame-options": "SAMEORIGIN",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }


class _TooLarge(Exception):
    pass


@dataclass
class GuardPolicy:
    online_tiles: bool = True
    tile_origins: tuple[str, ...] = ()  # tile servers beyond OpenStreetMap and Esri, when configured
    allowed_origins: frozenset[str] = frozenset()
    max_request_bytes: int = 300 * 1024 * 1024
    max_files: int = 100  # files in one upload request (Gradio's own limit is 1000)
    login: LoginBackoff = field(default_factory=LoginBackoff)
    hosts: HostRule = field(default_factory=HostRule)  # Host names answered (DNS rebinding)
    trusted_proxies: tuple = ()  # ip networks whose X-Forwarded-For is believed (--trusted-proxy)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class RequestGuard:
    """The middleware (``Middleware(RequestGuard, policy=GuardPolicy(...))``)."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy | None = None) -> None:
        self.app = app
        self.policy = policy or GuardPolicy()
        headers = security_headers(self.policy.online_tiles, self.policy.tile_origins)
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self._header_names = {k for k, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["type"] == "websocket":
            if not self.policy.hosts.allows(headers.get("host")):
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        forwarded = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"x-forwarded-for"]
        peer = (scope.get("client") or ("?", 0))[0]
        client = client_address(peer, forwarded, self.policy.trusted_proxies)
        if client != peer:  # behind a trusted proxy: handlers and logs see the real client
            scope = {**scope, "client": (client, 0)}
        is_login = scope["method"] == "POST" and scope["path"].endswith(LOGIN_PATHS)
        account = ""
        if is_login and not self._refusal(scope, headers):
            try:
                body = await _read_body(receive, MAX_LOGIN_BODY)
            except _TooLarge as refusal:
                await self._plain(send, 413, str(refusal), {})
                return
            account = login_username(headers.get("content-type", ""), body)
            receive = _replay(body, receive)
        refusal = self._refusal(scope, headers, client, account)
        if refusal is not None:
            status, text, extra = refusal
            await self._plain(send, status, text, extra)
            return
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if is_login:
                    status = message["status"]
                    if status == 200:
                        self.policy.login.succeeded(client, account)
                    elif 400 <= status < 500:
                        self.policy.login.failed(client, account)
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._header_names]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        received, files, tail = 0, 0, b""
        limit = self.policy.max_request_bytes
        is_upload = scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload")

        async def counted_receive() -> Message:
            nonlocal received, files, tail
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise _TooLarge(self._too_large_text())
                if is_upload:  # count the parts that carry a file; a marker may straddle two chunks
                    window = tail + body
                    files += window.count(FILE_PART_MARKER)
                    tail = window[-(len(FILE_PART_MARKER) - 1):]
                    if files > self.policy.max_files:
                        raise _TooLarge(f"Upload refused: more than {self.policy.max_files} files in one request; "
                                        "send them in smaller batches.")
            return message

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge as refusal:
            if not started:
                await self._plain(send, 413, str(refusal), {})

    def _refusal(self, scope: Scope, headers: dict[str, str], client: str | None = None,
                 account: str = "") -> tuple[int, str, dict[str, str]] | None:
        if not self.policy.hosts.allows(headers.get("host")):
            name = host_name(headers.get("host", ""))[:100]
            return 403, (f"Refused: this app does not answer to the host name {name!r} (protection against DNS "
                         f"rebinding). If you reach it under that name, start it with --allowed-origin "
                         f"http://{name}:PORT (or https://)."), {}
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, headers, scope):
            return 403, (f"Cross-origin request refused: a page on {origin} may not call this app. If that site "
                         f"is yours, start the app with --allowed-origin {origin}."), {}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.policy.max_request_bytes:
            return 413, self._too_large_text(), {}
        if client is not None and scope["method"] == "POST" and scope["path"].endswith(LOGIN_PATHS):
            wait = self.policy.login.wait_s(client, account)
            if wait > 0:
                seconds = math.ceil(wait)
                return 429, (f"{self.policy.login.reason(client, account)}; try again in {seconds} s."), \
                    {"retry-after": str(seconds)}
        return None

    def _origin_allowed(self, origin: str, headers: dict[str, str], scope: Scope) -> bool:
        if origin.lower() in self.policy.allowed_origins:
            return True
        if origin == "null":
            return False  # sandboxed frames, file:// pages
        # Same origin: the page was served by this host (scheme aside: a TLS proxy may sit in front).
        return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()

    def _too_large_text(self) -> str:
        mb = self.policy.max_request_bytes / (1024 * 1024)
        return (f"Upload refused: more than {mb:.0f} MB in one request. Send fewer or smaller files at a time "
                "(the limit is set with --max-upload-mb).")

    async def _plain(self, send: Send, status: int, text: str, extra: dict[str, str]) -> None:
        body = text.encode("utf-8")
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in extra.items()] + self.headers
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, cap: int) -> bytes:
    """The whole (small) request body, refused beyond ``cap`` bytes."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if len(body) > cap:
            raise _TooLarge(f"Login refused: the form is larger than {cap} bytes.")
        if not message.get("more_body", False):
            return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the app the body read ahead, then the connection's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def normalised_origins(origins: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_origin_of(o) for o in origins)
