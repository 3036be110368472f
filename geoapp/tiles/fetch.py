"""``tiles fetch``: copy the tiles of an area from a source into an archive, resumably.

Tiles go first into an MBTiles file (the output itself, or ``OUTPUT.partial.mbtiles`` beside a
``.pmtiles`` output), committed every few hundred tiles; a rerun skips what is there, so an
interrupted or partly failed fetch continues where it stopped. A ``.pmtiles`` output is packed
from the staging file once every tile has an answer. Sources whose licence forbids storing
tiles are refused before any request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoapp.geo.regions import parse_region
from geoapp.geo.tiles import TileError, tiles_covering
from geoapp.tiles.archives import MBTilesSource, MBTilesWriter, PMTilesWriter
from geoapp.tiles.base import TileSourceError, sniff_format
from geoapp.tiles.registry import open_source

BATCH = 64  # tiles requested together (the online client runs them concurrently)


@dataclass
class FetchReport:
    path: Path
    written: int = 0
    skipped: int = 0
    missing: int = 0
    errors: list[str] = field(default_factory=list)


def plan_tiles(region_text: str, zooms: list[int], max_tiles: int) -> np.ndarray:
    """[N, 3] tiles covering the region at each zoom, refused when more than ``max_tiles``."""
    region = parse_region(region_text)
    blocks, total = [], 0
    for z in zooms:
        block = tiles_covering(region, z, max_tiles=max_tiles)
        total += len(block)
        if total > max_tiles:
            raise TileError(f"{region.label} needs more than {max_tiles:,} tiles up to zoom {z}; "
                            "lower --zoom, shrink --region, or raise --max-tiles")
        blocks.append(block)
    return np.concatenate(blocks)


def fetch_region(source_name: str, region_text: str, zooms: list[int], output: Path, *, allow_online: bool,
                 max_tiles: int = 20_000, notice: Callable[[str], None] | None = None,
                 show_bar: bool = False) -> FetchReport:
    suffix = output.suffix.lower()
    if suffix not in (".pmtiles", ".mbtiles"):
        raise TileSourceError(f"--output must end in .pmtiles or .mbtiles, not {output.name}")
    plan = plan_tiles(region_text, zooms, max_tiles)
    with open_source(source_name, allow_online=allow_online, notice=notice) as source:
        info = source.info
        if not info.caching_allowed:
            raise TileSourceError(f"{info.title}: its licence does not allow storing tiles ({info.licence}); "
                                  "view it online instead, or fetch from a source that allows it (e.g. gibs-bluemarble)")
        staging = output if suffix == ".mbtiles" else output.with_name(output.name + ".partial.mbtiles")
        meta = {"name": info.title, "attribution": info.attribution, "licence": info.licence,
                    "caching_allowed": True, "image_format": info.image_format, "tile_size": info.tile_size,
                    "description": f"fetched by geoapp from {info.name} for {region_text}, zoom {zooms[0]}-{zooms[-1]}"}
        writer = MBTilesWriter(staging, **meta)
        report = FetchReport(output)
        todo = [tuple(int(v) for v in t) for t in plan if not writer.has(*(int(v) for v in t))]
        report.skipped = len(plan) - len(todo)
        bar = None
        if show_bar:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=report.skipped, unit="tile", desc="fetch", disable=None)
        try:
            for start in range(0, len(todo), BATCH):
                for result in source.tiles(todo[start:start + BATCH]):
                    if result.ok:
                        writer.add(result.z, result.x, result.y, result.data)
                        report.written += 1
                    elif result.missing:
                        report.missing += 1
                    else:
                        report.errors.append(result.error or f"tile {result.key} failed")
                    if bar is not None:
                        bar.update(1)
        finally:
            writer.close()
            if bar is not None:
                bar.close()
    if suffix == ".pmtiles" and not report.errors:
        _pack(staging, output, meta)
        staging.unlink()
    return report


def _pack(staging: Path, output: Path, meta: dict) -> None:
    """Copy every tile of the staging MBTiles into the PMTiles output."""
    with MBTilesSource(staging) as archive:
        rows = list(archive.iter_tiles())
    if not rows:
        raise TileSourceError(f"no tile of this area was available; nothing written to {output}")
    fmt = sniff_format(rows[0][3])
    writer = PMTilesWriter(output, **{**meta, "image_format": fmt if fmt != "unknown" else meta["image_format"]})
    for z, x, y, data in rows:
        writer.add(z, x, y, data)
    writer.close()
