"""Map-tile beam search: the paper's procedure (every candidate tile encoded for every photo) versus
ours (tile embeddings cached on disk, missing ones encoded in batches once), same tiles, same k.

Both run the same :func:`geoapp.families.maptiles.search.beam_search` with the same model and tile
source; only the ``embed`` function differs (``TileEmbedder(memory=False)`` re-reads and re-encodes
every candidate tile each time it is asked, as the paper does; ours answers from the cache). The
final tile of every photo is asserted identical. Costs are reported per level and per photo:

- **paper**: per photo, every level's candidates encoded (first level: all its tiles);
- **ours, cold**: empty cache, the photos searched one after the other (each tile encoded at most once);
- **ours, warm**: after ``python -m geoapp tiles embed`` of every level (the app's steady state; its
  one-off cost is reported apart, with the number of photos after which it has paid for itself):
  one matrix product per level, nothing encoded.

Default model: ViT-B/32 with random weights (the paper's encoder cost; the weights do not change
the cost) over the offline Blue Marble pyramid, zooms 2, 4, 6 (the pyramid stops at zoom 6); or a trained
checkpoint (``--checkpoint``, its own zooms). The cold-cache gain is what photos share, so the report says how
much their candidates overlap (``candidate_overlap``: the share of scored tiles another photo of the run also
scored) and, for the warm figure, which levels were pre-embedded whole (``tiles embed`` does whole levels only
up to zoom 8; deeper ones only for a region, so the warm figure holds only for levels embedded beforehand).

    python benchmarks/bench_maptiles.py [--preset clip-vit-b32] [--checkpoint F] [--zooms 2,4,6] [--k 16]
        [--photos 5] [--json OUT]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from _common import REPO, bench_parser, emit, load_average, machine

if TYPE_CHECKING:  # torch and the models load in main(), so that --help stays light
    from geoapp.families.maptiles.embedding import TileEmbedder
    from geoapp.families.maptiles.model import MapTileModel

PHOTOS = REPO.parent / "shared" / "data" / "im2gps3k-dev"


class TimedEmbed:
    """Wraps an embedder to record the seconds and tiles of every level."""

    def __init__(self, embedder: TileEmbedder) -> None:
        self.embedder = embedder
        self.seconds: dict[int, float] = {}
        self.tiles: dict[int, int] = {}

    def __call__(self, zoom, tiles):
        start = time.perf_counter()
        out = self.embedder(zoom, tiles)
        self.seconds[zoom] = self.seconds.get(zoom, 0.0) + time.perf_counter() - start
        self.tiles[zoom] = self.tiles.get(zoom, 0) + len(tiles)
        return out


def photo_embeddings(model: MapTileModel, count: int) -> np.ndarray:
    import torch

    from geoapp.imaging import load_image
    from geoapp.models.preprocess import centre_crop_tensor

    files = sorted(PHOTOS.glob("*.jpg"))[:count]
    prep = model.config.preprocess()
    pixels = torch.cat([centre_crop_tensor(load_image(str(f)).image, prep) for f in files])
    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_photo(pixels), dim=-1).numpy()


def run_searches(photos, zooms, embed: TimedEmbed, k: int) -> tuple[list, float]:
    from geoapp.families.maptiles.search import beam_search

    start = time.perf_counter()
    results = [beam_search(p, zooms, embed, k) for p in photos]
    return results, time.perf_counter() - start


def main() -> None:
    parser = bench_parser(__doc__.split("\n")[0], device=False)
    parser.add_argument("--preset", default="clip-vit-b32")
    parser.add_argument("--zooms", default="2,4,6")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained map-tile model.pt (its zooms)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from geoapp.families.maptiles.embedding import WHOLE_LEVEL_LIMIT, TileEmbedder
    from geoapp.families.maptiles.model import MapTileModel, model_from_checkpoint, preset, read_checkpoint
    from geoapp.tiles.registry import ensure_offline_pyramid, open_source

    torch.set_num_threads(args.threads)
    if args.checkpoint is not None:
        model, _ = model_from_checkpoint(read_checkpoint(args.checkpoint))
        zooms, args.preset = model.zooms, f"{model.config.name} ({args.checkpoint.name})"
    else:
        zooms = tuple(int(z) for z in args.zooms.split(","))
        torch.manual_seed(0)
        model = MapTileModel(preset(args.preset), zooms).eval()
    ensure_offline_pyramid(max_zoom=max(6, max(zooms)))
    photos = photo_embeddings(model, args.photos)
    report: dict = {"machine": machine(),  # torch version and threads (--threads) included
                    "load_average_start": load_average(),
                    "preset": args.preset, "zooms": list(zooms), "k": args.k, "photos": len(photos)}
    with open_source("offline") as source, tempfile.TemporaryDirectory() as cache, \
            tempfile.TemporaryDirectory() as prepared:
        paper = TimedEmbed(TileEmbedder(model, source, memory=False, batch_size=args.batch_size))
        paper_results, paper_seconds = run_searches(photos, zooms, paper, args.k)
        cold = TimedEmbed(TileEmbedder(model, source, cache_dir=Path(cache), batch_size=args.batch_size))
        cold_results, cold_seconds = run_searches(photos, zooms, cold, args.k)
        start = time.perf_counter()
        filler = TileEmbedder(model, source, cache_dir=Path(prepared), batch_size=args.batch_size)
        for zoom in zooms:
            filler.embed_level(zoom)  # what `tiles embed --zooms` does: whole levels, once for all photos
        embed_seconds = time.perf_counter() - start
        warm = TimedEmbed(TileEmbedder(model, source, cache_dir=Path(prepared), batch_size=args.batch_size))
        warm_results, warm_seconds = run_searches(photos, zooms, warm, args.k)
    for a, b, c in zip(paper_results, cold_results, warm_results):
        assert a.best_tile == b.best_tile == c.best_tile, "the cached search must end on the paper's tile"
    n = len(photos)
    visited = [{tuple(t) for step in result.steps for t in step.tiles.tolist()} for result in paper_results]
    union = set().union(*visited)
    report["candidate_overlap"] = round(1 - len(union) / max(1, sum(len(v) for v in visited)), 3)
    report["warm_levels"] = {"pre_embedded_whole": [z for z in zooms if 4 ** z <= WHOLE_LEVEL_LIMIT],
                             "note": "the warm figure holds for levels embedded beforehand: whole levels up to zoom 8 "
                                     "(tiles embed), deeper levels only for a region (--region/--bbox)"}
    report["load_average_end"] = load_average()
    report.update({
        "same_final_tiles": True,
        "paper": {"seconds_per_photo": paper_seconds / n, "tiles_encoded_per_photo": paper.embedder.encoded / n,
                  "per_level_seconds_per_photo": {z: s / n for z, s in paper.seconds.items()}},
        "ours_cold": {"seconds_per_photo": cold_seconds / n, "tiles_encoded_per_photo": cold.embedder.encoded / n,
                      "per_level_seconds_per_photo": {z: s / n for z, s in cold.seconds.items()}},
        "tiles_embed_seconds": embed_seconds,
        "ours_warm": {"seconds_per_photo": warm_seconds / n, "tiles_encoded_per_photo": warm.embedder.encoded / n,
                      "per_level_seconds_per_photo": {z: s / n for z, s in warm.seconds.items()}},
    })
    report["ratio_cold"] = paper_seconds / cold_seconds
    report["ratio_warm"] = paper_seconds / warm_seconds
    report["break_even_photos"] = embed_seconds / max(1e-9, (paper_seconds - warm_seconds) / n)
    emit(report, args.json)


if __name__ == "__main__":
    main()
