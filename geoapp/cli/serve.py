"""``python -m geoapp serve``: start, stop or list local workers (see :mod:`geoapp.cli.worker`).

Exit codes: 0 done; 1 the worker could not start (its model failed to load, the name is taken, the socket cannot
be made); 2 bad arguments (a non-loopback ``--tcp`` host, a bad name); 3 ``--status``/``--stop``: no such worker
is running.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from geoapp.cli.family import add_family_options, add_model_arguments

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
STOP_WAIT_S = 30.0
POLL_S = 0.2


def add_serve_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="keep a model loaded in a local worker that `predict` uses (fast repeated calls)",
        description="Load a model family once and answer `geoapp predict` calls made with the same model options "
                    "(family, checkpoint, backbone weights, device, gallery, family options), so each call costs "
                    "one forward instead of a model load. Listens on a Unix socket (0600) in $XDG_RUNTIME_DIR/"
                    "geoapp or $GEOAPP_CACHE_DIR/serve, or with --tcp on 127.0.0.1 only; callers prove they can "
                    "read its token file (0600). The worker reads the input files with the permissions of the "
                    "user who started it. `predict --no-worker` never uses it; a worker that is gone or fails "
                    "mid-call is replaced by in-process prediction with one line on stderr.",
        epilog="Exit codes: 0 done, 1 could not start, 2 bad arguments, 3 (--status/--stop) no such worker running.")
    add_model_arguments(p)
    add_family_options(p)
    group = p.add_argument_group("worker")
    group.add_argument("--name", default="default",
                       help="the worker's name, to run several (default: default); predict finds any of them")
    group.add_argument("--tcp", metavar="[HOST:]PORT", default=None,
                       help="listen on TCP instead of a Unix socket: 127.0.0.1 or ::1 only (port 0: any free one)")
    group.add_argument("--socket", metavar="PATH", default=None, help="the Unix socket's path (default: NAME.sock "
                                                                      "in the worker folder)")
    group.add_argument("--idle-timeout", type=float, default=3600.0, metavar="SECONDS",
                       help="stop after this long without a call (default 3600; 0: never)")
    group.add_argument("--detach", action="store_true",
                       help="start in the background, return once the model is loaded (log: NAME.log)")
    group.add_argument("--start-timeout", type=float, default=900.0, metavar="SECONDS",
                       help="with --detach: give up waiting for the model to load after this long (default 900)")
    group.add_argument("--status", action="store_true", help="list the running workers and what they hold")
    group.add_argument("--stop", action="store_true", help="stop the worker --name (default: default)")
    group.add_argument("--json", action="store_true", help="with --status: JSON")
    p.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from geoapp.cli.worker import protocol

    protocol.check_name(args.name)
    if args.status:
        return _status(args)
    if args.stop:
        return _stop(args)
    tcp = protocol.parse_tcp(args.tcp) if args.tcp else None
    if args.idle_timeout < 0:
        raise ValueError("--idle-timeout must be 0 (never) or a number of seconds")
    folder = protocol.private_dir()
    files = protocol.WorkerFiles(folder, args.name)
    if args.detach:
        return _detach(args, files)
    return _run(args, files, tcp)


def _hold_lock(files):
    """The name's lock, held until this process ends (None where flock does not exist); OSError when taken."""
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(files.lock, "a+b")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise
    return handle


def _run(args: argparse.Namespace, files, tcp) -> int:
    import signal
    from pathlib import Path

    from geoapp.cli.family import load_family_from_args
    from geoapp.cli.worker.identity import model_identity
    from geoapp.cli.worker.server import Worker, WorkerConfig

    try:
        lock = _hold_lock(files)
    except OSError:
        print(f"error: a worker named '{files.name}' is already running (see `geoapp serve --status`); stop it "
              f"with `geoapp serve --stop --name {files.name}` or choose another --name", file=sys.stderr)
        return EXIT_FAILED
    files.remove()  # a dead worker's leftovers: we hold the name now
    identity = json.loads(json.dumps(model_identity(args)))  # the files as they are before loading them
    lines: list[str] = []

    def info(message: str) -> None:
        lines.append(message)
        print(message, file=sys.stderr, flush=True)

    family = load_family_from_args(args, info)
    _warm_up(family, args)
    model = {"family": family.spec.key, "summary": family.describe().summary(),
             "weights_label": "RANDOM backbone weights" if family.random_weights else "pretrained",
             "weights_sha256": family.describe().weights_sha256,
             "notices": [line for line in lines if line.startswith(("WARNING:", "CAVEAT:"))]}
    config = WorkerConfig(files, tcp=tcp, socket_path=Path(args.socket).expanduser() if args.socket else None,
                          idle_timeout_s=args.idle_timeout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave through serve()'s clean-up
    try:
        Worker(family, identity, config, model).serve()
    except KeyboardInterrupt:
        print("interrupted: worker stopped", file=sys.stderr)
    finally:
        if lock is not None:
            lock.close()
    return EXIT_OK


def _warm_up(family, args: argparse.Namespace) -> None:
    """One prediction on a blank image before the worker says it is ready, so lazily built parts (gallery
    embeddings, place names, region data) are in memory before the first call."""
    from PIL import Image

    from geoapp.cli.family import family_extras
    from geoapp.families import PredictOptions

    try:
        family.predict_batch([Image.new("RGB", (256, 256), (110, 120, 100))],
                             PredictOptions.build(extras=family_extras(args)))
    except Exception as error:  # noqa: BLE001 - a warm-up only: calls will report their own errors
        print(f"NOTE: warm-up prediction failed ({type(error).__name__}: {error}); the first call will be slower",
              file=sys.stderr)


def _detach(args: argparse.Namespace, files) -> int:
    """Start ``serve`` (same arguments, without --detach) in a new session, logging to NAME.log; wait for ready."""
    from geoapp.cli.worker import protocol

    argv = [a for a in (getattr(args, "argv", None) or sys.argv[1:]) if a != "--detach"]
    with open(files.log, "ab") as log:
        os.chmod(files.log, 0o600)
        child = subprocess.Popen([sys.executable, "-m", "geoapp", *argv], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, start_new_session=True)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = files.log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
            print(f"error: the worker stopped while starting (exit {child.returncode}); {files.log} ends with:\n  "
                  + "\n  ".join(tail), file=sys.stderr)
            return EXIT_FAILED
        try:
            state = protocol.read_state(files.state)
        except (OSError, ValueError):
            state = None
        if state is not None and state["pid"] == child.pid:
            print(f"Worker '{files.name}' ready (pid {child.pid}, {protocol.describe_address(state['address'])}): "
                  f"{state['model']['summary']}. Log: {files.log}")
            return EXIT_OK
        time.sleep(POLL_S)
    print(f"error: the worker (pid {child.pid}) was not ready after {args.start_timeout:g} s; see {files.log} "
          f"(it keeps starting; `geoapp serve --stop --name {files.name}` ends it)", file=sys.stderr)
    return EXIT_FAILED


def _query(files, state: dict, request: dict) -> dict | None:
    """One authenticated request to a worker; None when it does not answer."""
    from geoapp.cli.worker import protocol

    try:
        token = protocol.read_token(files)
        with protocol.connect(state["address"], timeout=10.0) as sock:
            protocol.client_handshake(sock, token)
            protocol.send_message(sock, request)
            return protocol.recv_message(sock, protocol.MAX_STATE_BYTES)
    except (OSError, ValueError, protocol.ProtocolError):
        return None


def _status(args: argparse.Namespace) -> int:
    from geoapp.cli.worker import protocol
    from geoapp.cli.worker.client import remove_if_dead, workers

    rows = []
    for files, state in workers():
        if remove_if_dead(files, state):
            continue
        reply = _query(files, state, {"op": "status"}) or {}
        status = reply.get("status") if reply.get("ok") else None
        rows.append({"name": files.name, "pid": state["pid"], "answering": status is not None,
                     "address": protocol.describe_address(state["address"]), "model": state.get("model", {}),
                     "requests": (status or {}).get("requests"), "idle_s": (status or {}).get("idle_s"),
                     "idle_timeout_s": state.get("idle_timeout_s"), "started": state.get("started")})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        print(f"No worker is running (folder {protocol.serve_dir()}).")
    for row in [] if args.json else rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"] or 0))
        health = (f"{row['requests']} call(s), idle {row['idle_s']:g} s of {row['idle_timeout_s']:g}"
                  if row["answering"] else "NOT ANSWERING")
        print(f"{row['name']}: pid {row['pid']}, {row['address']}, since {started}; {health}\n"
              f"    {row['model'].get('summary', '?')}")
    return EXIT_OK if rows else EXIT_NOT_RUNNING


def _stop(args: argparse.Namespace) -> int:
    from geoapp.cli.worker import protocol
    from geoapp.cli.worker.client import pid_alive, remove_if_dead

    files = protocol.WorkerFiles(protocol.serve_dir(), args.name)
    try:
        state = protocol.read_state(files.state)
    except (OSError, ValueError):
        print(f"No worker named '{args.name}' is running.", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if remove_if_dead(files, state):
        print(f"The worker '{args.name}' (pid {state['pid']}) was not running; its files are removed.",
              file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not (_query(files, state, {"op": "stop"}) or {}).get("ok"):
        print(f"error: the worker '{args.name}' (pid {state['pid']}) does not answer; end it with "
              f"`kill {state['pid']}`", file=sys.stderr)
        return EXIT_FAILED
    deadline = time.monotonic() + STOP_WAIT_S
    while files.state.exists() and pid_alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(POLL_S)  # the worker removes its files on the way out
    print(f"Stopped the worker '{args.name}' (pid {state['pid']}).")
    return EXIT_OK
