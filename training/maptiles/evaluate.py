"""The cross-view table (like the paper's Table 1): beam search at several k, a flat search over every
tile of the last level, a random tile and the most common training location, on held-out locations."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from geoapp.families.maptiles.model import MapTileModel
from geoapp.families.maptiles.search import beam_search
from geoapp.geo.metrics import error_summary
from geoapp.geo.tiles import tile_center
from training.maptiles.data import render_queries
from training.satworld.train import most_common_location

THRESHOLDS = (25, 200, 750, 2500)


@torch.no_grad()
def level_embeddings(model: MapTileModel, problem, zoom: int) -> np.ndarray:
    pixels = problem.tile_pixels[zoom]
    chunks = [model.encode_tiles(pixels[i:i + 256], zoom) for i in range(0, len(pixels), 256)]
    return F.normalize(torch.cat(chunks).float(), dim=-1).numpy()


def table_embed(embeddings: dict[int, np.ndarray], available: dict[int, np.ndarray]):
    """An ``embed`` for the search from whole pre-computed levels (what the on-disk cache gives)."""

    def embed(zoom: int, tiles: np.ndarray):
        rows = tiles[:, 2] * (1 << zoom) + tiles[:, 1]
        return embeddings[zoom][rows], available[zoom][rows]

    return embed


def _summary(pred: np.ndarray, truth: np.ndarray, seconds: float | None = None) -> dict:
    summary = error_summary(pred, truth, THRESHOLDS)
    summary["accuracy"] = {str(int(k)): v for k, v in summary["accuracy"].items()}
    if seconds is not None:
        summary["ms_per_query"] = round(1000 * seconds / max(1, len(truth)), 3)
    return summary


def evaluate(config, model: MapTileModel, problem) -> dict:
    model.eval()
    truth = problem.test
    queries = problem.test_queries if getattr(problem, "test_queries", None) is not None else \
        render_queries(truth, config.window_km, model.config.image_size, config.raster)
    begin = time.perf_counter()
    with torch.no_grad():
        photos = F.normalize(model.encode_photo(problem.query_pixels(queries)).float(), dim=-1).numpy()
    photo_seconds = time.perf_counter() - begin
    embeddings = {z: level_embeddings(model, problem, z) for z in config.zooms}
    available = {z: lv.available for z, lv in problem.levels.items()}
    embed = table_embed(embeddings, available)
    rows: dict[str, dict] = {}
    for k in config.eval_k:
        begin = time.perf_counter()
        answers = np.array([beam_search(p, tuple(config.zooms), embed, k).answer for p in photos])
        rows[f"beam k={k}"] = _summary(answers, truth, time.perf_counter() - begin + photo_seconds)
    last = max(config.zooms)
    begin = time.perf_counter()
    scores = photos @ embeddings[last].T
    scores[:, ~available[last]] = -np.inf
    best = problem.levels[last].tiles[scores.argmax(axis=1)]
    flat = np.stack(tile_center(best[:, 0], best[:, 1], best[:, 2]), axis=1)
    rows[f"flat search, all {int(available[last].sum())} tiles of zoom {last}"] = _summary(
        flat, truth, time.perf_counter() - begin + photo_seconds)
    rng = np.random.default_rng([config.seed, 4])
    pool = problem.levels[last].tiles[available[last]]
    pick = pool[rng.integers(0, len(pool), len(truth))]
    rows[f"random tile (zoom {last})"] = _summary(np.stack(tile_center(pick[:, 0], pick[:, 1], pick[:, 2]), 1), truth)
    mode = most_common_location(problem.train, config.seed)
    rows["most common training location"] = _summary(np.repeat(mode[None], len(truth), axis=0), truth)
    beam16 = rows.get("beam k=16") or next(iter(rows.values()))
    return {"rows": rows, "test_locations": int(len(truth)), "zooms": list(config.zooms),
            "summary": {"median_km_k16": beam16["median_km"], "acc750_k16": beam16["accuracy"]["750"]}}


def markdown_table(metrics: dict) -> str:
    lines = ["| method | 25 km | 200 km | 750 km | 2500 km | median km | GeoGuessr | ms / query |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in metrics["rows"].items():
        acc = row["accuracy"]
        ms = row.get("ms_per_query")
        lines.append(f"| {name} | {acc['25']:.1f} | {acc['200']:.1f} | {acc['750']:.1f} | {acc['2500']:.1f} | "
                     f"{row['median_km']:,.0f} | {row['geoguessr_score']:,.0f} | {'' if ms is None else f'{ms:.2f}'} |")
    return "\n".join(lines)
