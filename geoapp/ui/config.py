"""AppConfig: how the app is started (the command-line flags of ``app.py``), validated.

The one rule that protects analysts' material: the app never listens beyond this machine
(a non-loopback address, or a public ``--share`` link) without ``--auth user:pass``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from geoapp.galleries import dense as dense_gallery
from geoapp.runtime.request import add_runtime_arguments
from geoapp.ui.access import parse_networks

DEFAULT_HOST = "127.0.0.1"
AUTH_ENV = "GEOAPP_AUTH"  # USER:PASSWORD; unlike --auth it does not show in the process list
MB = 1024 * 1024
DEFAULT_MAX_SESSIONS = 12


# What --offline-map does, said the same way by `python app.py --help` and the Map settings panel: the page's
# security policy then forbids tile servers, so online tiles cannot be switched on until the app is restarted.
OFFLINE_MAP_EFFECT = ("the page's security policy then forbids tile servers, so online tiles stay off until the app "
                      "is restarted without --offline-map")


class ConfigError(ValueError):
    """The flags cannot be used as given; the message says what to change."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so treat it as public


def parse_auth(text: str) -> tuple[str, str]:
    """``"user:pass"`` -> ``("user", "pass")`` (the password may contain ':')."""
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must be USER:PASSWORD, both non-empty (e.g. --auth analyst:long-passphrase)")
    return user, password


def read_auth_file(path: str) -> tuple[str, str]:
    """The first line of ``path`` that is not blank or a ``#`` comment, as USER:PASSWORD."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--auth-file {path}: cannot read it ({error.__class__.__name__}); "
                          "give a text file with one line USER:PASSWORD") from error
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                return parse_auth(line.strip())
            except ConfigError as error:
                raise ConfigError(f"--auth-file {path}: the line must be USER:PASSWORD, both non-empty") from error
    raise ConfigError(f"--auth-file {path} is empty; write one line USER:PASSWORD into it")


def _auth_from(args: argparse.Namespace) -> tuple[str, str] | None:
    """--auth, --auth-file or $GEOAPP_AUTH (at most one of them)."""
    given = [name for name, value in (("--auth", args.auth), ("--auth-file", args.auth_file),
                                      (f"${AUTH_ENV}", os.environ.get(AUTH_ENV))) if value]
    if len(given) > 1:
        raise ConfigError(f"Credentials come from {' and '.join(given)}; give only one of them")
    if args.auth:
        return parse_auth(args.auth)
    if args.auth_file:
        return read_auth_file(args.auth_file)
    if os.environ.get(AUTH_ENV):
        return parse_auth(os.environ[AUTH_ENV])
    return None


@dataclass(frozen=True)
class AppConfig:
    """Everything ``app.py`` needs to build and launch the UI."""

    host: str = DEFAULT_HOST
    port: int | None = None  # None: Gradio picks a free port from 7860 up
    share: bool = False  # public gradio.live link (needs internet); requires auth
    auth: tuple[str, str] | None = None
    offline_map: bool = False  # no tile servers: the page makes no request beyond the app
    model: str = "auto"
    backbone: str = "ViT-L-14"
    backbone_weights: str | None = None  # None: real weights; "random": flagged test weights
    device: str | None = None
    runtime: str | None = None  # image-tower engine (geoapp.runtime): None = torch
    precision: str | None = None  # None = fp32; int8 only behind its quality gate
    concurrency_limit: int = 2  # model jobs running at once (they share one model and one lock)
    queue_max_size: int = 32  # waiting jobs beyond this are refused with a "queue full" message
    max_file_mb: int = 100  # per uploaded file (photos; the image loader refuses more anyway)
    max_request_mb: int = 300  # per upload request, all files together
    # Sessions (browser tabs, API clients) whose state the server keeps; the least recently used is
    # dropped first. A session holds its results (surfaces, photos: a few MB), so 12 bound it to well under 100 MB.
    max_sessions: int = DEFAULT_MAX_SESSIONS
    weights_dir: Path | None = None  # an extra folder searched first for weights ($GEOAPP_WEIGHTS_DIR)
    gallery: Path | None = None  # candidate GPS points (CSV LAT,LON) for retrieval models; None: GeoCLIP's 100K
    allowed_origins: tuple[str, ...] = ()  # other origins (e.g. a reverse proxy's) allowed to call the app
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For is believed
    # Load the default model and prepare its gallery in the background as the app starts (app.py: on unless
    # --no-preload), so the first result does not wait for them; off for apps built in tests.
    preload: bool = False

    @property
    def max_file_size(self) -> str:
        """Gradio's per-file limit."""
        return f"{self.max_file_mb}mb"

    @property
    def random_weights(self) -> bool:
        return self.backbone_weights == "random"

    def validate(self) -> AppConfig:
        """Raise :class:`ConfigError` for unsafe or inconsistent flags; return self."""
        if not is_loopback(self.host) and self.auth is None:
            raise ConfigError(
                f"Refusing to listen on {self.host!r} without a password: other machines could reach the app "
                "and the photos analysts upload. Add --auth USER:PASSWORD, or use --host 127.0.0.1."
            )
        if self.share and self.auth is None:
            raise ConfigError("Refusing to create a public --share link without --auth USER:PASSWORD.")
        if self.share and self.offline_map:
            raise ConfigError("--share needs internet (a public tunnel); it cannot be combined with --offline-map.")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 1 and 65535, not {self.port}")
        if self.backbone_weights not in (None, "random") and not self.backbone_weights:
            raise ConfigError("--backbone-weights must be 'random' or a checkpoint path")
        if self.gallery is not None and dense_gallery.is_dense_option(str(self.gallery)):
            try:
                dense_gallery.check_built(str(self.gallery))
            except dense_gallery.DenseGalleryError as error:
                raise ConfigError(f"--gallery {self.gallery}: {error}") from error
        elif self.gallery is not None and not self.gallery.is_file():
            raise ConfigError(f"--gallery {self.gallery} is not a file; give a CSV with LAT,LON columns, or dense "
                              "for the prebuilt dense gallery")
        if self.weights_dir is not None and not self.weights_dir.is_dir():
            raise ConfigError(f"--weights-dir {self.weights_dir} is not a folder; give the folder that "
                              "`python -m geoapp weights download --weights-dir DIR` filled")
        for name, value in (("--max-file-mb", self.max_file_mb), ("--max-upload-mb", self.max_request_mb),
                            ("--max-sessions", self.max_sessions)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, not {value}")
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ConfigError(f"--allowed-origin {origin!r} must look like https://host[:port] (no path)")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as error:
            raise ConfigError(str(error)) from error
        return self


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description="geoapp: where was this photo taken? The analyst web UI (opens on http://127.0.0.1:7860).",
    )
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default 127.0.0.1: this machine only; any other needs --auth)")
    parser.add_argument("--port", type=int, default=None, help="port (default: first free from 7860)")
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link (needs --auth)")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                        help=f"require this login (visible in the process list: prefer --auth-file or ${AUTH_ENV})")
    parser.add_argument("--auth-file", default=None, metavar="FILE",
                        help="require the login written in FILE as one line USER:PASSWORD")
    parser.add_argument("--weights-dir", default=None, metavar="DIR",
                        help="extra folder searched first for model weights (as the CLI's; or $GEOAPP_WEIGHTS_DIR)")
    parser.add_argument("--gallery", default=None, metavar="CSV|dense[:NAME]",
                        help="candidate GPS points for retrieval models: a CSV with LAT,LON, or dense / dense:NAME "
                             "for the prebuilt ≥10 M-point dense gallery (`python -m geoapp gallery build-dense`); "
                             "default: GeoCLIP's 100K")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                        help="also accept uploads and API calls from pages on this origin (https://host[:port]); "
                             "by default only the app's own pages and non-browser clients may call it")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                        help="a reverse proxy (IP address or network) whose X-Forwarded-For header names the real "
                             "client; from anyone else the header is ignored (login backoff counts by address)")
    parser.add_argument("--max-file-mb", type=int, default=100, help="largest uploaded file in MB (default 100)")
    parser.add_argument("--max-upload-mb", type=int, default=300,
                        help="largest upload request (all its files together) in MB (default 300)")
    parser.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS,
                        help="sessions (browser tabs, API clients) whose results the server keeps in memory, "
                             f"a few MB each; the least recently used is dropped first (default {DEFAULT_MAX_SESSIONS})")
    parser.add_argument("--offline-map", action="store_true",
                        help="no online map tiles: the page makes no request outside this app (country outlines and "
                             f"the app's own NASA imagery as basemap); {OFFLINE_MAP_EFFECT}. Without this flag, "
                             "online tiles can be switched off in Map settings")
    parser.add_argument("--no-preload", action="store_true",
                        help="do not load the default model and prepare its gallery when the app starts (by default "
                             "this runs in the background, so the first result does not wait for it)")
    parser.add_argument("--backbone-weights", default=None, metavar="random|PATH",
                        help="'random': untrained test weights, every result is flagged (default: real CLIP weights)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    add_runtime_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=2, help="model jobs run at once (default 2)")
    parser.add_argument("--backbone", default="ViT-L-14", help=argparse.SUPPRESS)  # tests: tiny-test
    return parser


def config_from_args(argv: list[str] | None = None) -> AppConfig:
    """Parse and validate flags (``ConfigError`` on bad combinations)."""
    args = build_parser().parse_args(argv)
    return AppConfig(
        host=args.host, port=args.port, share=args.share,
        auth=_auth_from(args),
        offline_map=args.offline_map, backbone=args.backbone, backbone_weights=args.backbone_weights,
        device=args.device, runtime=args.runtime, precision=args.precision, concurrency_limit=max(1, args.concurrency),
        weights_dir=Path(args.weights_dir).expanduser() if args.weights_dir else None,
        gallery=Path(args.gallery).expanduser() if args.gallery else None,
        allowed_origins=tuple(o.rstrip("/") for o in args.allowed_origin),
        trusted_proxies=tuple(args.trusted_proxy),
        max_file_mb=args.max_file_mb, max_request_mb=args.max_upload_mb, max_sessions=args.max_sessions,
        preload=not args.no_preload,
    ).validate()
