"""``geoapp predict``'s side of the local worker: find one running with the same model identity, call it.

Every way a worker can fail the caller (its process gone with its files left behind, a socket nobody answers, a
token that does not match, a connection closed or silent mid-call, a reply that is not the protocol, an internal
error) raises :class:`WorkerUnavailable`, whose message is the one stderr line the caller prints before it
predicts in-process. Errors in the user's input (a bad region, a missing file) come back as the same exception
types in-process prediction raises, so the command exits the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from geoapp.cli.worker import protocol
from geoapp.cli.worker.identity import differences, model_identity

CONNECT_TIMEOUT_S = 10.0
# The worker sends a heartbeat every HEARTBEAT_S while it predicts: this much silence means it is stuck.
SILENCE_TIMEOUT_S = 120.0
USER_ERRORS = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}


class WorkerUnavailable(Exception):
    """The worker cannot serve this call; ``str()`` is the line to print before predicting in-process."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user took the number: not our worker
        return False
    except OSError:
        return False
    return True


def lock_free(files: protocol.WorkerFiles) -> bool:
    """True when no worker holds NAME.lock (so its files may be removed); False where it cannot be told."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(files.lock, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(handle, fcntl.LOCK_UN)
            return True
    except OSError:
        return False


def workers(folder: Path | None = None) -> list[tuple[protocol.WorkerFiles, dict]]:
    """Every worker state file in the serve folder, parsed (unreadable ones are skipped)."""
    folder = Path(folder or protocol.serve_dir())
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append((protocol.WorkerFiles(folder, protocol.check_name(path.stem)), protocol.read_state(path)))
        except (OSError, ValueError):
            continue
    return found


def remove_if_dead(files: protocol.WorkerFiles, state: dict) -> bool:
    """Remove a dead worker's files (only when its process is gone and no worker holds the name); True if dead."""
    if pid_alive(state["pid"]):
        return False
    if lock_free(files):
        files.remove()
    return True


class WorkerClient:
    """One connection to a worker (a context manager); calls raise WorkerUnavailable on any failure."""

    def __init__(self, files: protocol.WorkerFiles, state: dict, identity: dict):
        self.files, self.state, self.identity = files, state, identity
        self.sock: socket.socket | None = None
        self.label = f"local worker '{files.name}' (pid {state['pid']}, {protocol.describe_address(state['address'])})"

    def __enter__(self) -> "WorkerClient":
        if self.sock is None:
            try:
                token = protocol.read_token(self.files)
                self.sock = protocol.connect(self.state["address"], CONNECT_TIMEOUT_S)
                protocol.client_handshake(self.sock, token)
            except (OSError, ValueError, protocol.ProtocolError) as error:
                self.close()
                raise self._unavailable(f"does not answer ({_reason(error)})") from error
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _unavailable(self, what: str) -> WorkerUnavailable:
        return WorkerUnavailable(f"NOTE: the {self.label} {what}; predicting in this process instead.")

    def call(self, request: dict, progress: Callable[[int], None] | None = None) -> dict:
        """Send a request, pass progress on, return the final reply (user errors re-raised as their type)."""
        self.__enter__()
        assert self.sock is not None
        try:
            self.sock.settimeout(SILENCE_TIMEOUT_S)
            protocol.send_message(self.sock, {**request, "identity": self.identity})
            while True:
                reply = protocol.recv_message(self.sock, protocol.MAX_RESPONSE_BYTES)
                if "progress" in reply:
                    if progress and isinstance(reply["progress"], int):
                        progress(reply["progress"])
                    continue
                if "alive" in reply:
                    continue
                break
        except socket.timeout as error:
            self.close()
            raise self._unavailable(f"stopped answering mid-call ({SILENCE_TIMEOUT_S:.0f} s without a word)") \
                from error
        except (OSError, protocol.ProtocolError) as error:
            self.close()
            raise self._unavailable(f"failed mid-call ({_reason(error)})") from error
        if reply.get("ok"):
            return reply
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        kind, message = str(error.get("type", "")), str(error.get("message", "no message"))
        if kind in USER_ERRORS:
            raise USER_ERRORS[kind](message)
        self.close()
        raise self._unavailable(f"could not predict ({message})")

    def predict_text(self, keys: list[str], args: argparse.Namespace, fmt: str, progress=None):
        from geoapp.cli.predict_job import TextResult, call_arguments

        reply = self.call({"op": "predict", "mode": "text", "format": fmt, "keys": keys, "cwd": os.getcwd(),
                           "args": call_arguments(args)}, progress)
        try:
            return TextResult(str(reply["text"]), int(reply["count"]), [str(m) for m in reply["failed"]])
        except (KeyError, TypeError, ValueError) as error:
            raise self._unavailable(f"sent a malformed reply ({_reason(error)})") from error

    def predict_records(self, keys: list[str], args: argparse.Namespace, progress=None) -> list[dict]:
        from geoapp.cli.predict_job import call_arguments

        reply = self.call({"op": "predict", "mode": "records", "keys": keys, "cwd": os.getcwd(),
                           "args": call_arguments(args)}, progress)
        records = reply.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise self._unavailable("sent a malformed reply (no records)")
        return records


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def open_worker(args: argparse.Namespace, note: Callable[[str], None]) -> WorkerClient | None:
    """A client for the running worker with this command line's model identity, or None (``--no-worker``, no
    worker, none with this identity, or a dead one: the last two say so through ``note``)."""
    if getattr(args, "no_worker", False) or getattr(args, "engine", "local") != "local":
        return None
    found = workers()
    if not found:
        return None
    notices: list[str] = []
    identity = json.loads(json.dumps(model_identity(args, info=notices.append)))
    others = []
    for files, state in found:
        if state["identity"] != identity:
            if remove_if_dead(files, state):
                continue
            others.append((files, state))
            continue
        if remove_if_dead(files, state):
            note(f"NOTE: the local worker '{files.name}' (pid {state['pid']}) is not running any more (its files "
                 f"were left in {files.folder}); predicting in this process instead.")
            return None
        client = WorkerClient(files, state, identity)
        for line in notices:
            note(line)
        _describe(client, note)
        return client
    if others:
        files, state = others[0]
        changed = ", ".join(differences(identity, state["identity"]))
        note(f"NOTE: the local worker '{files.name}' runs other model options (differs in: {changed}); "
             "predicting in this process.")
    return None


def _describe(client: WorkerClient, note: Callable[[str], None]) -> None:
    """The lines in-process loading prints (what is loaded, random weights, caveat), from the worker's state."""
    model = client.state.get("model") or {}
    note(f"Using the {client.label}: {model.get('family', '?')} ({model.get('weights_label', '?')}).")
    for line in model.get("notices") or []:
        note(str(line))
