"""Starting the web UI: flags -> config -> app -> server, with readable failures.

``python app.py``, ``python -m geoapp.ui`` and the ``geoapp-app`` command all come here.
What a user can get wrong at start (a flag, a port already in use) is one ``error:`` line
that says what to do, never a traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

# Before anything imports gradio: no usage analytics, no version check, no hub telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# uvicorn would take X-Forwarded-For from any loopback peer as the client; RequestGuard decides instead
# (only --trusted-proxy peers), so the server must pass the real peer on.
os.environ["FORWARDED_ALLOW_IPS"] = ""

EXIT_USAGE = 2
M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Fewer glibc malloc arenas: each request thread would otherwise get its own, and each keeps
    the memory freed in it, so the server's size creeps far above what it holds (no-op off glibc)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass  # musl or another C library: nothing to tune


def port_problem(host: str, port: int) -> str | None:
    """None when ``host:port`` can be listened on now, else what to do about it."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "busy"
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another geoapp or another program); "
                        f"start with another port, e.g. --port {port + 1}")
            if error.errno == errno.EACCES:
                return f"port {port} needs administrator rights on this system; use a port above 1023, e.g. --port 7860"
            return f"cannot listen on {host}:{port} ({error.strerror}); check --host and --port"
    return None


def run_app(argv: list[str] | None = None) -> int:
    from geoapp.ui.config import ConfigError, config_from_args

    try:
        config = config_from_args(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if config.weights_dir is not None:
        # Same meaning as the CLI's --weights-dir: every weight lookup reads the settings from here.
        os.environ["GEOAPP_WEIGHTS_DIR"] = str(config.weights_dir)
    if config.port is not None:
        problem = port_problem(config.host, config.port)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_USAGE
    limit_malloc_arenas()  # before the server starts its threads
    from geoapp.ui.app import build_ui

    built = build_ui(config)
    demo = built.demo
    try:
        # quiet: Gradio's own banner suggests share=True, which this app allows only with a login.
        demo.launch(**built.launch, quiet=True, prevent_thread_lock=True)
    except OSError as error:  # no free port in Gradio's range, or a race with another program
        print(f"error: cannot start the server ({error}); choose a free port with --port", file=sys.stderr)
        return EXIT_USAGE
    print(f"geoapp is running on {demo.local_url} (Ctrl+C to stop)", flush=True)
    built.start_background_work(announce=lambda message: print(f"geoapp: {message}", flush=True))
    if demo.share_url:
        print(f"Public link (login required): {demo.share_url}", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


def main() -> int:
    return run_app()


if __name__ == "__main__":
    sys.exit(main())
