"""``python -m geoapp tiles info | build-offline | fetch | show``.

Registered by :func:`add_tiles_commands`. Errors about sources (unknown names, missing, truncated or
malformed archives, offline mode, licences) print one line ``error: SOURCE: what is wrong`` and exit
with status 1; bad arguments exit with 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from geoapp.geo.tiles import TileError
from geoapp.results.textsafe import terminal_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SOURCE_HELP = ("offline (default: the built Blue Marble pyramid), offline:relief, offline:etopo, a .pmtiles/"
               ".mbtiles file, a provider (gibs-bluemarble, gibs-modis, gibs-viirs, usgs-imagery, esri-imagery), "
               "an xyzservices name, or an https://…/{z}/{x}/{y} URL template")


def _offline_env() -> bool:
    return os.environ.get("GEOAPP_OFFLINE", "").lower() in ("1", "true", "yes")


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Source problems become one readable line instead of a traceback."""
    from geoapp.tiles.base import TileSourceError

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (TileSourceError, TileError) as error:  # TileError: bad numbers from the user
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE if isinstance(error, TileError) else EXIT_FAILED

    return run


def _notice(message: str) -> None:
    print(f"NOTE: {message}", file=sys.stderr)


def add_tiles_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``tiles`` and its sub-commands to the top-level parser's subparsers; returns the ``tiles`` subparsers
    (model code adds its own there, e.g. ``embed``, without this torch-free module importing it)."""
    from geoapp.tiles.pyramid import DEFAULT_MAX_ZOOM, LAYERS

    p = sub.add_parser("tiles", help="map tiles: offline pyramid, archives, online providers",
                       description="Map tiles for the satellite view and maps. Online sources are contacted only "
                                   "by `fetch`/`show` with an online --source, never with --offline "
                                   "(or GEOAPP_OFFLINE=1). Tile requests tell the server the area you look at.")
    tsub = p.add_subparsers(dest="tiles_command", required=True)

    info = tsub.add_parser("info", help="what a source is: zoom range, licence, attribution, online or not")
    info.add_argument("source", nargs="?", default=None, help=SOURCE_HELP + "; none: list every named source")
    info.add_argument("--json", action="store_true")
    info.set_defaults(handler=_guarded(_cmd_info))

    build = tsub.add_parser("build-offline", help="render the offline pyramid from the NASA rasters (no network)")
    build.add_argument("--layer", choices=list(LAYERS), default="bluemarble")
    build.add_argument("--max-zoom", type=int, default=DEFAULT_MAX_ZOOM, help=f"default {DEFAULT_MAX_ZOOM} (5,461 tiles)")
    build.add_argument("--min-zoom", type=int, default=0)
    build.add_argument("--output", "-o", default=None,
                       help="FILE.pmtiles or FILE.mbtiles (default: the pyramid the app and `offline` use, "
                            "under $GEOAPP_CACHE_DIR/tiles/)")
    build.set_defaults(handler=_guarded(_cmd_build))

    fetch = tsub.add_parser("fetch", help="prefetch an area into an archive for offline work (resumable)")
    fetch.add_argument("--source", required=True, help=SOURCE_HELP)
    fetch.add_argument("--region", required=True, help='"FR", "Europe", "circle:LAT,LON,KM", "bbox:S,W,N,E", GeoJSON')
    fetch.add_argument("--zoom", required=True, help="one zoom (8) or a range (4-8)")
    fetch.add_argument("--output", "-o", required=True, help="FILE.pmtiles or FILE.mbtiles")
    fetch.add_argument("--max-tiles", type=int, default=20_000, help="refuse larger requests (default 20000)")
    fetch.add_argument("--offline", action="store_true", help="never contact a server")
    fetch.set_defaults(handler=_guarded(_cmd_fetch))

    show = tsub.add_parser("show", help="write the tile (or a mosaic) at a point as an image")
    show.add_argument("point", metavar="LAT,LON")
    show.add_argument("--zoom", type=int, required=True)
    show.add_argument("--source", default=None, help=SOURCE_HELP + ". Without it: the offline pyramid, "
                      "built (small, zoom 0-4 or up to --zoom ≤ 6) on first use")
    show.add_argument("--output", "-o", default="tile.png")
    show.add_argument("--size", type=int, default=0, help="a SIZE×SIZE mosaic centred on the point instead of one tile")
    show.add_argument("--offline", action="store_true", help="never contact a server")
    show.set_defaults(handler=_guarded(_cmd_show))
    return tsub


def _cmd_info(args: argparse.Namespace) -> int:
    from geoapp.tiles.registry import (
        catalogue,
        default_pyramid_path,
        is_online_name,
        open_source,
    )

    if args.source is None:
        entries = [info for _, info in catalogue()]
        if args.json:
            print(json.dumps([e.to_dict() for e in entries], indent=2))
        else:
            for entry in entries:
                print(entry.describe())
            print(f"\nOffline pyramids live in {default_pyramid_path().parent}")
        return EXIT_OK
    # Opening an online source contacts nothing; only tile requests do.
    with open_source(args.source, allow_online=is_online_name(args.source)) as source:
        if args.json:
            print(json.dumps(source.info.to_dict(), indent=2))
        else:
            print(terminal_text(source.info.describe()))  # titles come from the archive: no escapes run
    return EXIT_OK


def _cmd_build(args: argparse.Namespace) -> int:
    from geoapp.tiles.pyramid import build_pyramid, pyramid_tile_count
    from geoapp.tiles.registry import default_pyramid_path

    output = Path(args.output).expanduser() if args.output else default_pyramid_path(args.layer)
    total = pyramid_tile_count(args.min_zoom, args.max_zoom) if 0 <= args.min_zoom <= args.max_zoom else 0
    print(f"Rendering {total:,} tiles of {args.layer}, zoom {args.min_zoom}-{args.max_zoom}, into {output} …",
          file=sys.stderr)
    report = build_pyramid(output, args.layer, max_zoom=args.max_zoom, min_zoom=args.min_zoom, show_bar=True)
    print(f"Wrote {report.path} ({report.tiles:,} tiles, {report.path.stat().st_size / 1e6:.1f} MB) "
          f"in {report.seconds:.1f} s")
    if args.output and output != default_pyramid_path(args.layer):
        print(f"Use it with --source {output}; the app and `--source offline` read {default_pyramid_path(args.layer)}",
              file=sys.stderr)
    return EXIT_OK


def _parse_zooms(text: str) -> list[int]:
    low, sep, high = text.partition("-")
    try:
        zooms = list(range(int(low), int(high) + 1)) if sep else [int(low)]
    except ValueError:
        raise TileError(f"--zoom must be a number or a range like 4-8, not {text!r}") from None
    if not zooms:
        raise TileError(f"--zoom range {text!r} is empty")
    return zooms


def _cmd_fetch(args: argparse.Namespace) -> int:
    from geoapp.tiles.fetch import fetch_region

    report = fetch_region(args.source, args.region, _parse_zooms(args.zoom), Path(args.output).expanduser(),
                          allow_online=not (args.offline or _offline_env()), max_tiles=args.max_tiles,
                          notice=_notice, show_bar=True)
    print(f"{report.path}: {report.written:,} tiles written ({report.skipped:,} already there, "
          f"{report.missing:,} not available, {len(report.errors):,} failed)")
    for error in report.errors[:10]:
        print(f"  {error}", file=sys.stderr)
    if report.errors:
        print("Run the same command again to retry the failed tiles (finished ones are kept).", file=sys.stderr)
    return EXIT_FAILED if report.errors else EXIT_OK


def _parse_point(text: str) -> tuple[float, float]:
    from geoapp.geo.distance import validate_latlon

    try:
        lat_text, lon_text = text.split(",")
        lat, lon = validate_latlon(float(lat_text), float(lon_text))
    except ValueError as error:
        raise TileError(f"the point must be LAT,LON in degrees (e.g. 48.8566,2.3522): {error}") from None
    return float(lat), float(lon)


def _cmd_show(args: argparse.Namespace) -> int:
    from geoapp.tiles.mosaic import mosaic_around
    from geoapp.tiles.registry import (
        AUTO_MAX_ZOOM,
        default_pyramid_path,
        ensure_offline_pyramid,
        offline_layer,
        open_source,
    )
    from geoapp.tiles.show import tile_image

    lat, lon = _parse_point(args.point)
    layer_key = offline_layer(args.source)
    if layer_key is not None and not default_pyramid_path(layer_key).is_file():
        depth = max(AUTO_MAX_ZOOM, min(args.zoom, 6))
        print(f"No offline pyramid yet: building zoom 0-{depth} at {default_pyramid_path(layer_key)} (once; "
              f"`tiles build-offline` builds the full one) …", file=sys.stderr)
        ensure_offline_pyramid(layer_key, max_zoom=depth, show_bar=True)
    with open_source(args.source, allow_online=not (args.offline or _offline_env()), notice=_notice) as source:
        if args.size:
            mosaic = mosaic_around(source, lat, lon, args.zoom, size_px=args.size)
            image, text = mosaic.image, mosaic.caption(markdown=False)
        else:
            image, text = tile_image(source, lat, lon, args.zoom)
    output = Path(args.output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output)
    print(f"Wrote {output}: {terminal_text(text)}")
    return EXIT_OK
