"""``python -m geoapp tiles embed``: pre-compute the map-tile family's tile embeddings for whole levels.

Lives with the family (it needs torch); ``geoapp.cli`` hangs it under ``tiles``.
"""

from __future__ import annotations

import argparse
import sys
import time


def add_commands(groups: dict) -> None:
    """The family's CLI hook (FamilySpec.cli_commands): `python -m geoapp tiles embed`."""
    add_embed_command(groups["tiles"])


def add_embed_command(tiles_sub: argparse._SubParsersAction) -> None:
    embed = tiles_sub.add_parser(
        "embed", help="pre-compute map-tile embeddings (map-tile family) for zoom levels, or their part in an area",
        description="Encode the tiles of the given zoom levels (all of them, or those covering --region / --bbox) "
                    "with the map-tile family's map encoders and keep the vectors in the tile-embedding cache, so "
                    "searches score them without encoding. Tiles the source does not have are skipped. Whatever is "
                    "not pre-embedded is encoded when a search first visits it (only the visited tiles) and cached.")
    embed.add_argument("--zooms", required=True, help="comma-separated zooms of the model, e.g. 4,6,8 (or 1,3,5)")
    embed.add_argument("--source", default=None, help="tile source (default: the one the checkpoint was trained on)")
    area = embed.add_mutually_exclusive_group()
    area.add_argument("--region", default=None, help="only the tiles covering a region (a country code such as CH, "
                                                     "a continent, circle:LAT,LON,KM ...); needed above zoom 8")
    area.add_argument("--bbox", default=None, metavar="S,W,N,E",
                      help="only the tiles overlapping a box (south,west,north,east in degrees; west > east crosses "
                           "the antimeridian); needed above zoom 8")
    embed.add_argument("--checkpoint", default=None, help="map-tile checkpoint (default: the shipped one)")
    embed.add_argument("--backbone-weights", default=None, help="ViT-B/32 file for a levels-only checkpoint")
    embed.add_argument("--device", default=None)
    embed.set_defaults(handler=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    from geoapp.families.maptiles import SPEC
    from geoapp.families.registry import LoadOptions
    from geoapp.geo.regions import RegionError, parse_region
    from geoapp.geo.tiles import TileError, tiles_covering

    try:
        zooms = [int(z) for z in str(args.zooms).split(",") if z.strip()]
    except ValueError:
        print(f"error: --zooms must be numbers separated by commas, not {args.zooms!r}", file=sys.stderr)
        return 2
    try:
        region = parse_region(args.region) if args.region else parse_region(f"bbox:{args.bbox}") if args.bbox else None
    except RegionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    extras = {"tiles": args.source} if args.source else {}
    family = SPEC.load(LoadOptions(device=args.device, backbone_weights=args.backbone_weights,
                                   checkpoint=args.checkpoint, extras=extras))
    embedder = family.embedder
    if embedder.store is None:
        print("error: this model has no tile-embedding cache (random weights)", file=sys.stderr)
        return 1
    for note in family.notes:
        print(f"NOTE: {note}", file=sys.stderr)
    for zoom in zooms:
        if zoom not in family.zooms:
            print(f"error: the model has map encoders for zooms {family.zooms}, not {zoom}", file=sys.stderr)
            return 2
        start = time.perf_counter()
        try:
            tiles = tiles_covering(region, zoom) if region is not None else None
            have, missing = embedder.embed_level(zoom, tiles, progress=_progress(zoom))
        except (TileError, ValueError) as error:
            print(f"error: zoom {zoom}: {error}", file=sys.stderr)
            return 2
        where = f" covering {region.label}" if region is not None else ""
        print(f"zoom {zoom}{where}: {have:,} tiles embedded, {missing:,} not in the source "
              f"({time.perf_counter() - start:.1f} s; {embedder.encoded:,} encoded so far)")
    print(f"cache: {embedder.store.path}")
    return 0


def _progress(zoom: int):
    """A tqdm bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    bar = tqdm(unit="tile", desc=f"zoom {zoom}", file=sys.stderr, disable=None, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update
