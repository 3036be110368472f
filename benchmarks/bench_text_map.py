"""Text -> map latency (GeoCLIP paper §4.4): geoapp's cached gallery versus re-encoding it per query.

Runs the real CLIP ViT-L/14 architecture with random backbone weights (the real weights cannot be
downloaded here; latency does not depend on weight values), the real GeoCLIP heads and the 100K
gallery. After warm-up, N queries (cycling through 5 texts) are timed and the median reported, for:

- ``Geolocator.text_map``: tokenise + text encoder + one [1 x 100K] product against the cached
  gallery embeddings + merging/place names (what the app's /text_map endpoint runs);
- the same plus the map page the UI draws (``geoapp.ui.maps.render.prediction_map_html``);
- the naive approach of the reference ``geoclip`` package's ``predict`` (re-encode the 100K GPS
  gallery with the location encoder on every query, then score), on the same model and process;
- the same query with open_clip's own ``encode_text`` (all 77 token positions) instead of the
  engine's end-of-text trimming, with the largest difference between the two embeddings.

    python benchmarks/bench_text_map.py [--device cpu|cuda] [--runs N] [--naive-runs N] [--json OUT]

The per-stage breakdown (``text_map_breakdown_ms``: text encoding + scoring, post-processing) is the
median of each stage over the N timed ``text_map`` queries. The load average is recorded at the start
and the end.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import TYPE_CHECKING

from _common import bench_parser, emit, load_average, machine, machine_line, pick_device, sync

if TYPE_CHECKING:  # torch loads in main(), so that --help stays light
    import torch

QUERIES = [
    "a sandy beach with palm trees",
    "a snowy mountain village",
    "a busy street market with tuk-tuks",
    "a red double-decker bus in front of old brick buildings",
    "desert dunes at sunset",
]


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return (time.perf_counter() - start) * 1000


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": statistics.median(times), "min_ms": ordered[0], "max_ms": ordered[-1], "runs": len(times)}


def main() -> None:
    parser = bench_parser(__doc__, default_device="auto")
    parser.add_argument("--runs", type=int, default=20, help="timed queries per method (cycling through 5 texts)")
    parser.add_argument("--naive-runs", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    device = pick_device(args.device)
    torch.manual_seed(0)

    from geoapp import Geolocator
    from geoapp.ui.maps.render import MapAssets, MapOptions, prediction_map_html
    from geoapp.results.prediction import build_prediction

    results: dict = {"machine": machine(str(device)), "device": str(device), "queries": QUERIES,
                     "load_average_start": load_average()}
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        locator = Geolocator.load(device=device, backbone_weights="random", cache_dir=cache)
        results["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        locator.candidate_set()  # one-time: encode + cache the 100K gallery (the app does this on first use)
        results["gallery_encoding_s"] = time.perf_counter() - start
        for query in QUERIES:  # warm-up: tokenizer, kernels, place index
            locator.text_map(query)

        engine, stages = [], []
        for i in range(args.runs):
            made: list = []
            engine.append(timed(lambda q=QUERIES[i % len(QUERIES)]: made.append(locator.text_map(q, top_k=10)),
                                device))
            stages.append(made[0].timings_ms)  # the stages of this very query
        options = MapOptions(MapAssets.local("gradio_api/file=/assets/"), online_tiles=False)
        with_map = [timed(lambda q=QUERIES[i % len(QUERIES)]: prediction_map_html(locator.text_map(q, top_k=10), options),
                          device) for i in range(args.runs)]
        # Per stage, the median over all the timed queries (not one query's figures)
        breakdown = {key: statistics.median(t[key] for t in stages if key in t) for key in stages[0]}

        def naive(query: str) -> None:
            # What the reference package does per call: encode every gallery location again.
            gallery = F.normalize(locator.encode_locations(locator.gallery.coords), dim=-1).to(device)
            with torch.inference_mode():
                logits = locator.model.logits(locator.text_embeddings([query]), gallery)
            probabilities = logits.double().softmax(dim=-1).cpu().numpy()[0]
            coords = locator.gallery.coords
            build_prediction(query, coords[:, 0], coords[:, 1], np.asarray(probabilities), top_k=10, merge_km=25.0)

        naive_times = [timed(lambda q=QUERIES[i % len(QUERIES)]: naive(q), device) for i in range(args.naive_runs)]

        # Before/after for the text tower: the engine encodes only up to the end-of-text token
        # (CLIP's text tower is causal); open_clip's own encode_text runs all 77 positions.
        clip = locator.model.backbone.clip
        candidates = locator.candidate_set()

        def full_text_embedding(query: str) -> torch.Tensor:
            with torch.inference_mode():
                return locator.model.image_head(clip.encode_text(locator._tokenizer([query]).to(device)).float())

        deviation = max(float((full_text_embedding(q) - locator.text_embeddings([q])).abs().max()) for q in QUERIES)

        def full_text_map(query: str) -> None:
            probabilities = locator._probabilities(full_text_embedding(query), 1, candidates)[0]
            build_prediction(query, candidates.coords[:, 0], candidates.coords[:, 1], probabilities, top_k=10,
                             merge_km=25.0)

        full = [timed(lambda q=QUERIES[i % len(QUERIES)]: full_text_map(q), device) for i in range(args.runs)]
        results["full_77_token_text_map"] = summary(full)
        results["trimmed_vs_full_max_abs_deviation"] = deviation

    results["text_map"] = summary(engine)
    results["text_map_plus_map_html"] = summary(with_map)
    results["naive_reencode_gallery"] = summary(naive_times)
    results["text_map_breakdown_ms"] = {k: round(v, 1) for k, v in breakdown.items()}  # medians over the runs
    results["load_average_end"] = load_average()
    results["speedup_vs_naive"] = results["naive_reencode_gallery"]["median_ms"] / results["text_map"]["median_ms"]
    emit(results, args.json)
    print(f"full 77-token text tower: median {results['full_77_token_text_map']['median_ms']:.0f} ms; "
          f"max |difference| of the embeddings vs the engine {results['trimmed_vs_full_max_abs_deviation']:.2e}")
    print(f"\n{machine_line(str(device))}")
    print(f"text_map median {results['text_map']['median_ms']:.0f} ms "
          f"(+ map HTML: {results['text_map_plus_map_html']['median_ms']:.0f} ms); "
          f"naive re-encoding {results['naive_reencode_gallery']['median_ms']:.0f} ms "
          f"-> {results['speedup_vs_naive']:.1f}x; target < 500 ms per query")


if __name__ == "__main__":
    main()
