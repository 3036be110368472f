"""The local Ray cluster a run starts belongs to that run: it ends when the driver ends, however it ends.

- A normal end, an error or Ctrl-C: the CLI's ``finally`` calls :func:`geoapp.engine.ray_engine.disconnect`
  (``ray.shutdown()``). SIGTERM: Ray's own handler ends its processes. SIGHUP (the terminal closed):
  turned into ``SystemExit`` so the same ``finally`` runs.
- ``kill -9`` of the driver, or a crash: Ray's fate sharing ends its GCS and raylet, but not all of
  their helpers (the dashboard and runtime-env agents stayed for good). A **watchdog** process, started
  with the cluster in a session of its own, reads a pipe whose only writer is the driver; when the pipe
  closes (the driver is gone, or :func:`stop` after ``ray.shutdown()``) it ends every process it has seen
  the cluster start (the driver's new descendants, refreshed every second), TERM then KILL, each checked
  by its start time so a reused process id is never hit.
- Should the watchdog be killed too (``kill -9`` of both), its record
  ``$GEOAPP_CACHE_DIR/ray/clusters/<driver>.json`` remains: the next ``--engine ray`` run, or
  ``python -m geoapp engine cleanup``, ends the leftovers of drivers that are gone.

Process facts come from ``/proc`` (Linux) or ``ps`` (macOS). Nothing here imports ray.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from geoapp.fileio import atomic_write
from geoapp.settings import get_settings

POLL_S = 1.0  # how often the watchdog refreshes the cluster's process list
GRACE_S = 3.0  # after the driver is gone: time for Ray's own fate sharing before TERM
TERM_WAIT_S = 5.0  # after TERM: time to exit before KILL

Process = tuple[int, str]  # (pid, start time as the OS reports it): one identity, never reused


# ---------------------------------------------------------------------------------------- process table
def process_table() -> dict[int, tuple[int, str]]:
    """Every process as pid -> (parent pid, start time)."""
    if os.path.isdir("/proc/self"):
        table = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if fields[0] != b"Z":  # a zombie has exited already
                table[int(name)] = (int(fields[1]), fields[19].decode())
        return table
    out = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "lstart=", "-o", "state="],
                         capture_output=True, text=True, check=False).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit() and not parts[-1].startswith("Z"):
            table[int(parts[0])] = (int(parts[1]), " ".join(parts[2:-1]))
    return table


def identity(pid: int, table: dict | None = None) -> Process | None:
    entry = (table if table is not None else process_table()).get(pid)
    return None if entry is None else (pid, entry[1])


def descendants(pid: int, table: dict | None = None) -> set[Process]:
    """Every process below ``pid`` (children, their children ...)."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.add((child, table[child][1]))
        todo.extend(children.get(child, []))
    return found


def alive(processes: set[Process], table: dict | None = None) -> set[Process]:
    table = table if table is not None else process_table()
    return {(pid, start) for pid, start in processes if pid in table and table[pid][1] == start}


def end_processes(processes: set[Process], grace_s: float = 0.0, term_wait_s: float = TERM_WAIT_S) -> int:
    """Wait ``grace_s`` for them to exit, then TERM, then KILL what is left; returns how many were signalled."""
    deadline = time.monotonic() + grace_s
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    signalled = 0
    for sig, wait in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, 0.0)):
        left = alive(processes)
        for pid, _ in left:
            try:
                os.kill(pid, sig)
                signalled += sig == signal.SIGTERM
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.2)
    return signalled


# ---------------------------------------------------------------------------------------- records
def records_dir() -> Path:
    return get_settings().cache_dir / "ray" / "clusters"


@dataclass
class Record:
    """What a watchdog knows about one local cluster (written as JSON beside its siblings)."""

    driver: Process
    watchdog: Process | None
    processes: set[Process]

    def save(self, path: Path) -> None:
        data = {"driver": list(self.driver), "watchdog": list(self.watchdog) if self.watchdog else None,
                "processes": sorted([list(p) for p in self.processes])}
        atomic_write(path, lambda out: out.write(json.dumps(data).encode()))

    @classmethod
    def load(cls, path: Path) -> Record:
        data = json.loads(path.read_text())
        return cls(tuple(data["driver"]), tuple(data["watchdog"]) if data.get("watchdog") else None,
                   {tuple(p) for p in data["processes"]})


def cleanup(log=print) -> int:
    """End the leftover processes of local clusters whose driver and watchdog are both gone; returns how
    many processes were ended. Clusters still in use are left alone."""
    ended = 0
    folder = records_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = Record.load(path)
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: nothing can be checked against it
            continue
        table = process_table()
        in_use = alive({record.driver}, table) or (record.watchdog and alive({record.watchdog}, table))
        if in_use:
            continue
        left = alive(record.processes, table)
        if left:
            log(f"Ending {len(left)} leftover process(es) of the local Ray cluster of process {record.driver[0]} "
                "(its driver is gone).")
            end_processes(left)
            ended += len(left)
        path.unlink(missing_ok=True)
    return ended


# ---------------------------------------------------------------------------------------- the watchdog
@dataclass
class Watchdog:
    """The driver's handle: the pipe's writing end and the watchdog process."""

    process: subprocess.Popen
    pipe: int

    def stop(self, timeout_s: float = 30.0) -> None:
        """After ``ray.shutdown()``: close the pipe; the watchdog ends what is left and exits."""
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass  # it keeps going on its own and exits when done


def start_watchdog(before: set[Process]) -> Watchdog:
    """Start the watchdog for the cluster this process has just started (``before``: the descendants it
    had already, which are not the cluster's)."""
    read, write = os.pipe()  # not inheritable: Ray's processes never hold the writing end
    me = identity(os.getpid())
    command = [sys.executable, "-m", "geoapp.engine.ray_local", "watch", str(me[0]), me[1]]
    try:
        # Its own session: a Ctrl-C or a closed terminal reaches the driver, never the watchdog.
        process = subprocess.Popen(command, stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, close_fds=True)
    finally:
        os.close(read)
    os.write(write, json.dumps(sorted([list(p) for p in before])).encode() + b"\n")
    return Watchdog(process, write)


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def _watch(driver: Process) -> None:
    """The watchdog's loop (its stdin is the pipe from the driver; see the module docstring)."""
    before = {tuple(p) for p in json.loads(_read_line(0) or b"[]")}
    record_path = records_dir() / f"{driver[0]}-{driver[1]}.json"
    me = identity(os.getpid())
    seen: set[Process] = set()
    while True:
        table = process_table()
        if not alive({driver}, table):
            break
        now = descendants(driver[0], table) - before - {me}
        if not now <= seen:
            seen |= now
            Record(driver, me, seen).save(record_path)
        ready, _, _ = select.select([0], [], [], POLL_S)
        if ready and not os.read(0, 4096):
            break  # closed: the driver is gone, or has shut Ray down and stopped us
    end_processes(seen, grace_s=GRACE_S)
    record_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- signals, commands
def exit_on_hangup() -> object:
    """SIGHUP (the terminal closed) becomes SystemExit in the main thread, so ``finally`` blocks shut the
    cluster down; returns the previous handler for :func:`restore_hangup` (None when nothing changed)."""
    import threading

    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
        return None  # the application has its own idea

    def hangup(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGHUP, hangup)


def restore_hangup(previous: object) -> None:
    import threading

    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, previous)


def add_engine_commands(sub: argparse._SubParsersAction) -> None:
    """``geoapp engine cleanup`` (the CLI adds it; this module stays free of CLI code)."""
    engine = sub.add_parser("engine", help="batch engine housekeeping")
    commands = engine.add_subparsers(dest="engine_command", required=True)
    clean = commands.add_parser("cleanup", help="end processes left by local Ray clusters whose driver was "
                                                "killed (kill -9); clusters in use are left alone")
    clean.set_defaults(handler=lambda args: _cleanup_command())


def _cleanup_command() -> int:
    ended = cleanup()
    print(f"{ended} leftover Ray process(es) ended." if ended else "No leftover Ray processes.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) == 3 and args[0] == "watch":
        _watch((int(args[1]), args[2]))
        return 0
    if args == ["cleanup"]:
        return _cleanup_command()
    print("usage: python -m geoapp.engine.ray_local cleanup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
