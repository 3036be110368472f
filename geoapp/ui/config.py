"""AppConfig: how the app is started (the command-line flags of ``app.py``), validated.

The one rule that protects analysts' material: the app never listens beyond this machine
(a non-loopback address, or a public ``--share`` link) without ``--auth user:pass``.
"""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"


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
    concurrency_limit: int = 2  # model jobs running at once (they share one model and one lock)
    queue_max_size: int = 32  # waiting jobs beyond this are refused with a "queue full" message
    max_file_size: str = "200mb"  # per uploaded file

    @property
    def random_weights(self) -> bool:
        return self.backbone_weights == "random"

    def validate(self) -> "AppConfig":
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
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD", help="require this login")
    parser.add_argument("--offline-map", action="store_true",
                        help="no online map tiles: the page makes no request outside this app "
                             "(country outlines as basemap; tiles can be switched on in Settings)")
    parser.add_argument("--backbone-weights", default=None, metavar="random|PATH",
                        help="'random': untrained test weights, every result is flagged (default: real CLIP weights)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--concurrency", type=int, default=2, help="model jobs run at once (default 2)")
    parser.add_argument("--backbone", default="ViT-L-14", help=argparse.SUPPRESS)  # tests: tiny-test
    return parser


def config_from_args(argv: list[str] | None = None) -> AppConfig:
    """Parse and validate flags (``ConfigError`` on bad combinations)."""
    args = build_parser().parse_args(argv)
    return AppConfig(
        host=args.host, port=args.port, share=args.share,
        auth=parse_auth(args.auth) if args.auth else None,
        offline_map=args.offline_map, backbone=args.backbone, backbone_weights=args.backbone_weights,
        device=args.device, concurrency_limit=max(1, args.concurrency),
    ).validate()
