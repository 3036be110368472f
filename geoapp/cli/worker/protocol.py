"""The local worker's files and wire protocol (stdlib only: no torch, nothing to install).

Files, per worker NAME, in a folder only the user can enter (0700): ``$GEOAPP_SERVE_DIR`` if set, else
``$XDG_RUNTIME_DIR/geoapp/`` when that is set (a per-user tmpfs on most Linux desktops), else
``$GEOAPP_CACHE_DIR/serve/``:

* ``NAME.sock``: the Unix socket (0600), unless the worker listens on ``--tcp`` (127.0.0.1 only);
* ``NAME.token``: 32 random bytes (hex, 0600), new at every start: a client proves it can read this file;
* ``NAME.json``: the state (pid, address, model identity), written once the model is loaded: present = ready;
* ``NAME.lock``: held (``flock``) for the worker's life, so two workers never share a name and a client removes
  a dead worker's files only when no worker holds the lock.

Messages are JSON objects, each prefixed with its length (4 bytes, big-endian), capped before anything is
allocated. A connection starts with mutual authentication: each side sends a random nonce and proves it holds the
token with HMAC-SHA256(token, role + nonce); the token itself never travels, so a process squatting a dead
worker's port learns nothing and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">I")
MAX_HANDSHAKE_BYTES = 4096  # before authentication: tiny messages only
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a request is input paths and options
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024  # JSON/CSV text or records of one call; larger: predicted in-process
MAX_STATE_BYTES = 1024 * 1024
TOKEN_BYTES = 32
LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_NAME = "default"


class ProtocolError(Exception):
    """The peer sent something that is not this protocol (or closed the connection mid-message)."""


class AuthenticationError(ProtocolError):
    """The peer does not hold the worker's token."""


class MessageTooLarge(ValueError):
    """A message to send is over its cap (nothing was sent)."""


# ------------------------------------------------------------------------------------------------ files
def serve_dir() -> Path:
    """Where workers keep their files: $GEOAPP_SERVE_DIR, else ``$XDG_RUNTIME_DIR/geoapp`` if that folder exists,
    else the cache dir's ``serve/``."""
    if os.environ.get("GEOAPP_SERVE_DIR"):
        return Path(os.environ["GEOAPP_SERVE_DIR"]).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "geoapp"
    from geoapp.settings import get_settings

    return get_settings().cache_dir / "serve"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ValueError(f"worker name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, e.g. satworld)")
    return name


@dataclass(frozen=True)
class WorkerFiles:
    """The paths of one named worker's files."""

    folder: Path
    name: str = DEFAULT_NAME

    @property
    def state(self) -> Path:
        return self.folder / f"{self.name}.json"

    @property
    def token(self) -> Path:
        return self.folder / f"{self.name}.token"

    @property
    def socket(self) -> Path:
        return self.folder / f"{self.name}.sock"

    @property
    def lock(self) -> Path:
        return self.folder / f"{self.name}.lock"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    def remove(self) -> None:
        """Remove the state, token and socket (never the lock: another process may be waiting on it)."""
        for path in (self.state, self.token, self.socket):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def private_dir(folder: Path | None = None) -> Path:
    """The serve folder, created 0700; refused (with the fix) when others could enter it or it is not ours."""
    folder = Path(folder or serve_dir())
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(f"{folder} belongs to another user: the worker's files must be yours. Set "
                              "XDG_RUNTIME_DIR or GEOAPP_CACHE_DIR to a folder of your own.")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)  # ours: tighten it (a folder made by an older umask)
    return folder


def write_private(path: Path, text: str) -> None:
    """A 0600 file, written atomically (the one atomic writer; its temporary file is 0600 from the start)."""
    from geoapp.fileio import atomic_write

    atomic_write(path, text, mode=0o600)


def read_private(path: Path, max_bytes: int) -> str:
    """A file this user wrote for the worker: refused if others may read it, it is not ours, or it is too large."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise PermissionError(f"{path} may be read by other users (mode {stat.S_IMODE(info.st_mode):o}, "
                                  "expected 600)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes} bytes: not a worker file")
    return data.decode("utf-8")


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def read_token(files: WorkerFiles) -> bytes:
    text = read_private(files.token, 4 * TOKEN_BYTES).strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"{files.token} is not a worker token")
    return bytes.fromhex(text)


def read_state(path: Path) -> dict:
    state = json.loads(read_private(path, MAX_STATE_BYTES))
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int) \
            or not isinstance(state.get("address"), dict) or not isinstance(state.get("identity"), dict):
        raise ValueError(f"{path} is not a worker state file")
    return state


def parse_tcp(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (``[::1]:PORT``) for ``--tcp``; only loopback hosts are accepted."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"--tcp {text}: the worker listens on 127.0.0.1 (or ::1) only, never on {host!r}: "
                         "it reads files with your permissions for whoever holds its token")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--tcp {text}: the port must be a number (0: any free port)") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--tcp {text}: the port must be between 0 and 65535")
    return LOOPBACK_HOSTS[host], number


def describe_address(address: dict) -> str:
    if "unix" in address:
        return f"socket {address['unix']}"
    host, port = address["tcp"]
    return f"tcp {'[' + host + ']' if ':' in host else host}:{port}"


def connect(address: dict, timeout: float) -> socket.socket:
    """A connected socket to a worker's address (OSError when nothing listens there)."""
    if "unix" in address:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = str(address["unix"])
    else:
        host, port = address["tcp"]
        if host not in LOOPBACK_HOSTS.values():
            raise OSError(f"refusing to connect to {host}: workers listen on loopback only")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


# ------------------------------------------------------------------------------------------------ messages
def send_message(sock: socket.socket, message: dict, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
    """Send one message (TypeError/ValueError for data JSON cannot hold, MessageTooLarge over ``max_bytes``)."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > max_bytes:
        raise MessageTooLarge(f"a message of {len(data)} bytes is over the {max_bytes} allowed")
    sock.sendall(HEADER.pack(len(data)) + data)


def recv_message(sock: socket.socket, max_bytes: int) -> dict:
    """One message; ProtocolError on a closed connection, an oversized length or anything but a JSON object."""
    (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
    if size > max_bytes:
        raise ProtocolError(f"message of {size} bytes announced, more than the {max_bytes} allowed")
    try:
        message = json.loads(_recv_exactly(sock, size).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"not a JSON message ({error})") from error
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ProtocolError("the connection closed mid-message" if got else "the connection closed")
        got += n
    return bytes(buffer)


def _proof(token: bytes, role: bytes, nonce: bytes) -> str:
    return hmac.new(token, role + nonce, hashlib.sha256).hexdigest()


def _nonce(message: dict, key: str = "nonce") -> bytes:
    value = message.get(key)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ProtocolError("handshake without a valid nonce")
    return bytes.fromhex(value)


def server_handshake(sock: socket.socket, token: bytes) -> None:
    """Prove each other's knowledge of the token (server side); AuthenticationError when the client cannot."""
    mine = secrets.token_bytes(32)
    send_message(sock, {"geoapp_worker": PROTOCOL_VERSION, "nonce": mine.hex()})
    answer = recv_message(sock, MAX_HANDSHAKE_BYTES)
    theirs = _nonce(answer)
    if not hmac.compare_digest(str(answer.get("proof", "")), _proof(token, b"client", mine)):
        send_message(sock, {"ok": False, "error": "authentication failed"})
        raise AuthenticationError("a client without the worker's token was refused")
    send_message(sock, {"ok": True, "proof": _proof(token, b"server", theirs)})


def client_handshake(sock: socket.socket, token: bytes) -> None:
    hello = recv_message(sock, MAX_HANDSHAKE_BYTES)
    if hello.get("geoapp_worker") != PROTOCOL_VERSION:
        raise ProtocolError(f"not a geoapp worker of protocol {PROTOCOL_VERSION} (got {str(hello)[:80]})")
    mine = secrets.token_bytes(32)
    send_message(sock, {"proof": _proof(token, b"client", _nonce(hello)), "nonce": mine.hex()})
    reply = recv_message(sock, MAX_HANDSHAKE_BYTES)
    if not reply.get("ok"):
        raise AuthenticationError("the worker refused this client's token (a worker restarted since?)")
    if not hmac.compare_digest(str(reply.get("proof", "")), _proof(token, b"server", mine)):
        raise AuthenticationError("the process answering does not hold the worker's token")
