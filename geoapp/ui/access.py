"""Who is asking, and under which name: the rules RequestGuard (geoapp.ui.guard) applies before any handler.

- **Host names** (DNS rebinding): a page on ``evil.example`` whose name is re-pointed at 127.0.0.1 sends
  ``Host: evil.example`` and, being same-origin with itself, a matching ``Origin``. Only known names are
  answered: IP literals (a rebinding needs a name), ``localhost`` and ``*.localhost``, the name the app was
  bound to, the hosts of ``--allowed-origin`` and, when the app listens beyond loopback, this machine's own
  names (``--share`` adds ``*.gradio.live``).
- **Client address**: ``X-Forwarded-For`` is believed only when the connection comes from a proxy named
  with ``--trusted-proxy`` (an address or a network); the client is then the right-most address in the
  header that is not itself a trusted proxy. From anyone else the header is ignored, so rotating it
  changes nothing.
- **Login backoff** (:class:`LoginBackoff`), per address and per account:

  * an address gets 3 wrong passwords free, then waits 2, 4, 8 … s (at most 5 min) before the next try;
  * an account (the user name tried) gets 10 wrong passwords free, from all addresses together, then
    the wait grows more slowly (doubling every 2 failures, at most 60 s), and it holds only for
    addresses that have themselves failed recently. So an attacker spreading guesses over many
    addresses gets one guess per new address, while the analyst, whose address has no failures,
    still logs in at once: one attacker cannot lock everyone out.
  * a correct password clears its address and its account; both tables are bounded (the oldest
    entries are forgotten first).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = frozenset({"localhost"})
LOCAL_SUFFIXES = (".localhost",)  # RFC 6761: browsers resolve these to loopback themselves
SHARE_SUFFIXES = (".gradio.live",)
MAX_LOGIN_BODY = 64 * 1024  # a login form is a few hundred bytes


# ---------------------------------------------------------------------------------------- host names
def host_name(host_header: str) -> str:
    """``Host`` header -> the bare name, lower case, without port or IPv6 brackets."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostRule:
    """The host names this app answers to (IP literals always: they cannot be rebound)."""

    names: frozenset[str] = LOOPBACK_NAMES
    suffixes: tuple[str, ...] = LOCAL_SUFFIXES

    def allows(self, host_header: str | None) -> bool:
        if host_header is None:
            return True  # no browser sends a request without Host; HTTP/1.0 scripts may
        name = host_name(host_header)
        return is_ip_literal(name) or name in self.names or name.endswith(self.suffixes)

    @classmethod
    def for_app(cls, bound_host: str, allowed_origins: Iterable[str] = (), share: bool = False,
                loopback_only: bool = True) -> HostRule:
        names = set(LOOPBACK_NAMES)
        bound = host_name(bound_host)
        if bound and not is_ip_literal(bound):
            names.add(bound)
        names |= {host_name(urlsplit(origin).netloc) for origin in allowed_origins}
        if not loopback_only:  # reachable from the network: this machine's own name (no DNS lookup for more)
            names.add(socket.gethostname().lower())
        return cls(frozenset(n for n in names if n), LOCAL_SUFFIXES + (SHARE_SUFFIXES if share else ()))


# ---------------------------------------------------------------------------------------- proxies
def parse_networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``--trusted-proxy`` values (addresses or networks); ``ValueError`` naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxy {value!r} is not an IP address or network (e.g. 127.0.0.1 or "
                             "10.0.0.0/8)") from None
    return tuple(networks)


def _trusted(address: str, proxies: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: list[str], proxies: tuple) -> str:
    """The client behind ``peer``: ``peer`` itself unless it is a trusted proxy (see the module docstring)."""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return hops[0][:64] if hops else peer


# ---------------------------------------------------------------------------------------- login form
def login_username(content_type: str, body: bytes) -> str:
    """The user name in a login form (urlencoded or multipart), stripped as Gradio strips it; "" if none."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1"), max_num_fields=20).get("username", [""])
        return values[0].strip()[:200]
    if content_type.startswith("multipart/form-data"):
        marker = b'name="username"'
        start = body.find(marker)
        if start >= 0:
            value_start = body.find(b"\r\n\r\n", start)
            value_end = body.find(b"\r\n--", value_start + 4)
            if value_start >= 0 and value_end >= 0:
                return body[value_start + 4:value_end].decode("utf-8", "replace").strip()[:200]
    return ""


# ---------------------------------------------------------------------------------------- backoff
@dataclass
class _Counts:
    """Failures per key with the time until which the key must wait; bounded (oldest forgotten)."""

    free: int
    max_delay_s: float
    growth: float  # the delay doubles every 1/growth failures beyond the free ones
    max_keys: int
    table: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)

    def failed(self, key: str, now: float) -> None:
        count = self.table.pop(key, (0, 0.0))[0] + 1
        over = count - self.free
        delay = 0.0 if over <= 0 else min(self.max_delay_s, 2.0 ** (over * self.growth))
        self.table[key] = (count, now + delay)
        while len(self.table) > self.max_keys:
            self.table.popitem(last=False)

    def wait(self, key: str, now: float) -> float:
        return max(0.0, self.table.get(key, (0, 0.0))[1] - now)


@dataclass
class LoginBackoff:
    """Wrong-password counts per client address and per account (see the module docstring)."""

    free_failures: int = 3  # per address: typos cost nothing
    max_delay_s: float = 300.0
    max_clients: int = 10_000
    clock: Callable[[], float] = time.monotonic
    account_free_failures: int = 10
    account_max_delay_s: float = 60.0
    _addresses: _Counts = field(init=False)
    _accounts: _Counts = field(init=False)

    def __post_init__(self) -> None:
        self._addresses = _Counts(self.free_failures, self.max_delay_s, 1.0, self.max_clients)
        self._accounts = _Counts(self.account_free_failures, self.account_max_delay_s, 0.5, self.max_clients)

    def wait_s(self, client: str, account: str = "") -> float:
        """Seconds this client must still wait before it may try again (0: now)."""
        now = self.clock()
        wait = self._addresses.wait(client, now)
        if account and client in self._addresses.table:  # the account rule holds only for failing addresses
            wait = max(wait, self._accounts.wait(account, now))
        return wait

    def reason(self, client: str, account: str = "") -> str:
        """Which rule makes the client wait (for the 429 message)."""
        now = self.clock()
        if self._addresses.wait(client, now) > 0:
            return "Too many wrong passwords from this address"
        return "Too many wrong passwords for this account"

    def failed(self, client: str, account: str = "") -> None:
        now = self.clock()
        self._addresses.failed(client, now)
        if account:
            self._accounts.failed(account, now)

    def succeeded(self, client: str, account: str = "") -> None:
        self._addresses.table.pop(client, None)
        if account:
            self._accounts.table.pop(account, None)
