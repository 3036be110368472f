"""The polite online tile client: cache, rate limit, bounded concurrency, retries, timeouts.

Rules it keeps (each one is a setting of :class:`ClientPolicy`):

- never contacts anything unless online tiles were allowed (``allow_network``); otherwise
  constructing the source fails with :class:`OfflineModeError`;
- the first request to a server in this process says (the ``notice`` callback, else a log warning)
  that this server will see the area being looked at;
- a User-Agent naming geoapp; a timeout on connecting and on every read plus a deadline for
  the whole response; at most ``requests_per_second`` request starts and ``concurrency``
  requests in flight;
- 429/503 and other 5xx answers, timeouts and dropped connections are retried with
  exponential backoff, waiting what ``Retry-After`` asks when it asks (up to a cap);
  404/204 mean "no tile here"; a refused connection or unknown host fails at once;
- tiles are stored in a disk cache keyed by provider and tile only when its licence allows it.

Every tile gets a :class:`~geoapp.tiles.base.TileResult`; nothing raises per tile, nothing hangs.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from geoapp.fileio import atomic_write
from geoapp.version import __version__
from geoapp.tiles.base import (
    OfflineModeError,
    TileResult,
    TileSource,
    TileSourceError,
    decode_tile,
)
from geoapp.tiles.providers import OnlineProvider

log = logging.getLogger(__name__)

USER_AGENT = f"geoapp/{__version__} (image geolocation workbench; tile client; python-urllib)"
_CHUNK = 64 * 1024

_announced: set[str] = set()
_announce_lock = threading.Lock()


@dataclass(frozen=True)
class ClientPolicy:
    """How politely (and how patiently) the client talks to a tile server."""

    timeout_s: float = 10.0  # connect and each read; the whole response gets 2x this
    retries: int = 3  # extra attempts after the first, for transient failures only
    backoff_s: float = 0.5  # waits 0.5, 1, 2 ... s between attempts (unless Retry-After says more)
    max_retry_after_s: float = 30.0  # a server asking to wait longer gets an error instead
    requests_per_second: float = 8.0  # request starts per second, all threads together
    concurrency: int = 4  # requests in flight at once
    max_bytes: int = 8 * 1024 * 1024  # a tile larger than this is refused


def privacy_notice(host: str) -> str:
    return (f"Online tiles: {host} will see which tiles are requested, i.e. the area you are looking at. "
            "Switch online tiles off (offline mode) to keep the area of interest on this machine.")


def _announce(host: str, notice: Callable[[str], None] | None) -> None:
    with _announce_lock:
        if host in _announced:
            return
        _announced.add(host)
    message = privacy_notice(host)
    if notice is None:
        log.warning(message)
    else:  # said once: the caller shows it (CLI note, app notice); the log keeps it at info level
        log.info(message)
        notice(message)


class _RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart across threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Transient(Exception):
    """A failure worth retrying; ``wait`` is what the server asked for, if anything."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class OnlineTileSource(TileSource):
    """Tiles from an online provider, fetched politely (see the module docstring)."""

    def __init__(self, provider: OnlineProvider, *, allow_network: bool, cache_dir: Path | None = None,
                 policy: ClientPolicy | None = None, notice: Callable[[str], None] | None = None) -> None:
        if not allow_network:
            raise OfflineModeError(f"{provider.info.title} is an online source and online tiles are off "
                                   "(offline mode). Use 'offline' or a local .pmtiles/.mbtiles archive, or "
                                   "enable online tiles.")
        self.provider = provider
        self.info = provider.info
        self.policy = policy or ClientPolicy()
        self.notice = notice
        self._limiter = _RateLimiter(self.policy.requests_per_second)
        self._cache = None
        if cache_dir is not None and self.info.caching_allowed:
            slug = re.sub(r"[^a-z0-9]+", "-", self.info.name.lower()).strip("-")[:40] or "tiles"
            digest = hashlib.sha256(provider.url.encode()).hexdigest()[:12]  # same name, other URL: other cache
            self._cache = Path(cache_dir) / f"{slug}-{digest}"
        self.requests_made = 0  # counted for tests and `tiles fetch` summaries
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ cache
    def _cache_path(self, z: int, x: int, y: int) -> Path | None:
        return None if self._cache is None else self._cache / str(z) / str(x) / f"{y}.tile"

    def _cache_get(self, z: int, x: int, y: int) -> bytes | None:
        path = self._cache_path(z, x, y)
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    def _cache_put(self, z: int, x: int, y: int, data: bytes) -> None:
        path = self._cache_path(z, x, y)
        if path is None:
            return
        atomic_write(path, data)  # a concurrent reader never sees half a tile

    # ------------------------------------------------------------------ requests
    def url_for(self, z: int, x: int, y: int) -> str:
        return self.provider.url.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))

    def _once(self, url: str) -> bytes | None:
        """One HTTP GET: bytes, None for "no tile", _Transient to retry, TileSourceError to give up."""
        self._limiter.wait()
        with self._count_lock:
            self.requests_made += 1
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
        deadline = time.monotonic() + 2 * self.policy.timeout_s
        try:
            with urllib.request.urlopen(request, timeout=self.policy.timeout_s) as response:
                if response.status == 204:
                    return None
                chunks, size = [], 0
                while chunk := response.read(_CHUNK):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.policy.max_bytes:
                        raise TileSourceError(f"the tile is larger than {self.policy.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise _Transient(f"the response took longer than {2 * self.policy.timeout_s:g} s")
                return b"".join(chunks)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code == 429 or exc.code >= 500:
                return self._retry_later(exc)
            raise TileSourceError(f"HTTP {exc.code} {exc.reason} from {self.provider.host}") from exc
        except TimeoutError as exc:
            raise _Transient(f"no answer within {self.policy.timeout_s:g} s") from exc
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Transient(f"no answer within {self.policy.timeout_s:g} s") from exc
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                raise TileSourceError(f"cannot reach {self.provider.host} ({reason}); check the network, or use "
                                      "the offline pyramid (source 'offline')") from exc
            raise _Transient(f"connection failed ({reason})") from exc
        except (ConnectionError, OSError) as exc:
            raise _Transient(f"connection failed ({exc})") from exc

    def _retry_later(self, exc: urllib.error.HTTPError) -> bytes:
        wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
        if wait is not None and wait > self.policy.max_retry_after_s:
            raise TileSourceError(f"HTTP {exc.code} from {self.provider.host}: it asks to wait {wait:.0f} s "
                                  f"(more than {self.policy.max_retry_after_s:g} s); try again later")
        raise _Transient(f"HTTP {exc.code} {exc.reason}", wait)

    def _read(self, z: int, x: int, y: int) -> TileResult:
        cached = self._cache_get(z, x, y)
        if cached is not None:
            return TileResult(z, x, y, data=cached, from_cache=True)
        _announce(self.provider.host, self.notice)
        url = self.url_for(z, x, y)
        last = "no attempt"
        for attempt in range(self.policy.retries + 1):
            try:
                data = self._once(url)
            except _Transient as exc:
                last = str(exc)
                if attempt < self.policy.retries:
                    backoff = self.policy.backoff_s * 2**attempt
                    time.sleep(max(backoff, exc.wait) if exc.wait is not None else backoff)
                continue
            except TileSourceError as exc:
                return TileResult(z, x, y, error=f"{self.provider.host} tile {z}/{x}/{y}: {exc}")
            if data is None:
                return TileResult(z, x, y)
            try:
                decode_tile(data, f"{z}/{x}/{y}")
            except TileSourceError as exc:
                return TileResult(z, x, y, error=f"{self.provider.host}: {exc}")
            self._cache_put(z, x, y, data)
            return TileResult(z, x, y, data=data)
        return TileResult(z, x, y, error=f"{self.provider.host} tile {z}/{x}/{y}: gave up after "
                                          f"{self.policy.retries + 1} attempts ({last})")

    def tiles(self, requests: Iterable[tuple[int, int, int]]) -> list[TileResult]:
        """Fetch many tiles with at most ``policy.concurrency`` in flight; results in request order."""
        wanted = list(requests)
        if len(wanted) <= 1:
            return [self.tile(*r) for r in wanted]
        with ThreadPoolExecutor(max_workers=max(1, self.policy.concurrency), thread_name_prefix="geoapp-tiles") as pool:
            return list(pool.map(lambda r: self.tile(*r), wanted))
