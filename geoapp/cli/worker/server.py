"""The worker process behind ``geoapp serve``: a loaded family answering predict calls, one at a time.

A call is computed by the functions in-process ``predict`` uses (:mod:`geoapp.cli.predict_job`), with the
caller's options, in the caller's working directory, so paths resolve and records come out as they would there.
Files are read with the permissions of the user who started the worker; only holders of its token (that user)
can call it. One connection is served at a time; a heartbeat goes out while a call computes, so a client can
tell a long batch from a stuck worker. The worker ends on ``serve --stop``, SIGTERM/SIGINT, or after
``--idle-timeout`` seconds without a call, removing its files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from geoapp.cli.worker import protocol

HEARTBEAT_S = 10.0
HANDSHAKE_TIMEOUT_S = 10.0
NEXT_REQUEST_TIMEOUT_S = 300.0  # a connected client that sends nothing for this long is dropped
MODES = ("text", "records")


@dataclass
class WorkerConfig:
    files: protocol.WorkerFiles
    tcp: tuple[str, int] | None = None  # (host, port) on loopback; None: the Unix socket
    socket_path: Path | None = None  # --socket; default files.socket
    idle_timeout_s: float = 3600.0  # 0: never
    log: object = field(default=sys.stderr)


class _Sender:
    """Messages to one client from the computing thread and the heartbeat, one at a time."""

    def __init__(self, conn: socket.socket):
        self.conn, self.lock = conn, threading.Lock()

    def __call__(self, message: dict) -> None:
        with self.lock:
            protocol.send_message(self.conn, message)


@contextlib.contextmanager
def _heartbeat(send: _Sender):
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                send({"alive": True})
            except OSError:
                return

    thread = threading.Thread(target=beat, name="worker-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _working_directory(path: str):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class Worker:
    """A loaded family served on a socket (see the module's docstring)."""

    def __init__(self, family, identity: dict, config: WorkerConfig, model: dict):
        self.family, self.identity, self.config, self.model = family, identity, config, model
        self.token = protocol.new_token()
        self.requests = 0
        self.started = time.time()
        self.last_call = time.monotonic()
        self.stopping = False
        self.address: dict = {}

    def _say(self, message: str) -> None:
        print(message, file=self.config.log, flush=True)

    # ------------------------------------------------------------------------------------------ lifecycle
    def _listen(self) -> socket.socket:
        if self.config.tcp is not None:
            host, port = self.config.tcp
            listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((host, port))
            self.address = {"tcp": [host, listener.getsockname()[1]]}
        else:
            path = Path(self.config.socket_path or self.config.files.socket)
            path.unlink(missing_ok=True)  # left by a dead worker of this name (the caller holds the name's lock)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            previous = os.umask(0o177)  # the socket is created 0600: no moment where others could connect
            try:
                listener.bind(str(path))
            except OSError as error:
                listener.close()
                raise OSError(f"cannot create the socket {path} ({error}); a path this long may exceed the "
                              "system's limit: give a shorter one with --socket") from error
            finally:
                os.umask(previous)
            os.chmod(path, 0o600)
            self.address = {"unix": str(path)}
        listener.listen(8)
        return listener

    def state(self) -> dict:
        return {"name": self.config.files.name, "pid": os.getpid(), "address": self.address,
                "identity": self.identity, "model": self.model, "started": self.started,
                "idle_timeout_s": self.config.idle_timeout_s}

    def serve(self) -> None:
        """Listen, publish the state (ready), answer until stopped; the files are removed on the way out."""
        files = self.config.files
        listener = self._listen()
        try:
            protocol.write_private(files.token, self.token + "\n")
            protocol.write_private(files.state, _json(self.state()))
            self._say(f"Worker '{files.name}' ready (pid {os.getpid()}, {protocol.describe_address(self.address)}): "
                      f"{self.model['summary']}. `geoapp predict` with the same model options uses it; stop it "
                      f"with `geoapp serve --stop{'' if files.name == protocol.DEFAULT_NAME else ' --name ' + files.name}`.")
            while not self.stopping:
                wait = None
                if self.config.idle_timeout_s > 0:
                    wait = self.last_call + self.config.idle_timeout_s - time.monotonic()
                    if wait <= 0:
                        self._say(f"Worker '{files.name}': no call for {self.config.idle_timeout_s:g} s, stopping.")
                        break
                readable, _, _ = select.select([listener], [], [], wait)
                if readable:
                    conn, _ = listener.accept()
                    with conn:
                        self._connection(conn)
                    self.last_call = time.monotonic()
        finally:
            listener.close()
            if self.address.get("unix"):
                Path(self.address["unix"]).unlink(missing_ok=True)
            files.remove()

    # ------------------------------------------------------------------------------------------ calls
    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            protocol.server_handshake(conn, bytes.fromhex(self.token))
        except (protocol.ProtocolError, OSError) as error:
            self._say(f"Worker: connection refused ({error})")
            return
        send = _Sender(conn)
        while not self.stopping:
            conn.settimeout(NEXT_REQUEST_TIMEOUT_S)
            try:
                request = protocol.recv_message(conn, protocol.MAX_REQUEST_BYTES)
            except (protocol.ProtocolError, OSError):
                return  # the client is done (or gone)
            conn.settimeout(None)
            try:
                self._request(request, send)
            except (protocol.ProtocolError, OSError) as error:
                self._say(f"Worker: the client went away mid-call ({error})")
                return

    def _request(self, request: dict, send: _Sender) -> None:
        op = request.get("op")
        if op == "status":
            send({"ok": True, "status": {**self.state(), "requests": self.requests,
                                         "idle_s": round(time.monotonic() - self.last_call, 1)}})
        elif op == "stop":
            self.stopping = True
            send({"ok": True})
        elif op == "predict":
            self.requests += 1
            reply = self._predict(request, send)
            _send_reply(send, reply)
        else:
            send({"ok": False, "error": {"type": "protocol", "message": f"unknown request {str(op)[:40]!r}"}})

    def _predict(self, request: dict, send: _Sender) -> dict:
        if request.get("identity") != self.identity:
            return _error("identity", "this worker holds another model set-up (restarted since?)")
        keys, cwd, mode, arguments = (request.get(k) for k in ("keys", "cwd", "mode", "args"))
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys) and isinstance(cwd, str)
                and mode in MODES and isinstance(arguments, dict)):
            return _error("protocol", "malformed predict request")
        from geoapp.cli import predict_job

        args = argparse.Namespace(**{**{k: None for k in predict_job.CALL_ARGUMENTS}, **arguments})
        try:
            with _working_directory(cwd), _heartbeat(send):
                from geoapp.geo.regions import parse_region

                region = parse_region(args.region) if args.region else None
                if mode == "text":
                    result = predict_job.text_output(self.family, keys, args, str(request.get("format")), region,
                                                     progress=lambda n: send({"progress": n}))
                    return {"ok": True, **result.to_dict()}
                records = predict_job.record_output(self.family, keys, args, region,
                                                    progress=lambda n: send({"progress": n}))
                return {"ok": True, "records": records}
        except (ValueError, FileNotFoundError) as error:  # the user's input: the caller raises it as it would
            return _error("FileNotFoundError" if isinstance(error, FileNotFoundError) else "ValueError", str(error))
        except OSError:
            raise  # the client's connection (progress, heartbeat): nothing to reply to
        except Exception as error:  # noqa: BLE001 - the caller predicts in-process and shows the real error
            self._say(f"Worker: a call failed ({type(error).__name__}: {error})")
            return _error("internal", f"{type(error).__name__}: {error}")


def _error(kind: str, message: str) -> dict:
    return {"ok": False, "error": {"type": kind, "message": message}}


def _send_reply(send: _Sender, reply: dict) -> None:
    """The final reply; one that is too large or not JSON data becomes an error (the caller predicts in-process)."""
    try:
        send(reply)
    except (TypeError, ValueError) as error:  # MessageTooLarge is a ValueError; nothing was sent
        send(_error("internal", f"the reply could not be sent ({error})"))


def _json(data: dict) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
