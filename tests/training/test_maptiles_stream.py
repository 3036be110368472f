"""Map-tile training and evaluation stream their tiles from a real HTTP tile server on 127.0.0.1 (the CI-sized
version of the zoom 4-16 run in benchmarks/RESULTS.md): the server's own request log must show that training read
exactly the tiles of its batches and evaluation exactly the tiles its beams visited — never a whole level — and a
run stopped between stages resumes to the very weights of an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geoapp.families.maptiles.embedding import TileEmbedder
from geoapp.families.maptiles.model import model_from_checkpoint, read_checkpoint
from geoapp.families.maptiles.search import beam_search
from geoapp.tiles.online import ClientPolicy
from training.maptiles.data import Problem, query_tensor
from training.maptiles.evaluate import EvalConfig, evaluate
from training.maptiles.stream import ENTRY_BYTES, TileReader, plan_batch, prefetched
from training.maptiles.tileserver import RenderingTileServer, is_loopback_template, loopback_source
from training.maptiles.train import TrainConfig, batch_rng, level_steps, pretrain_zoom, stages, train

ZOOMS = (2, 4, 6)


@pytest.fixture(scope="module")
def server():
    with RenderingTileServer(tile_size=64, max_zoom=8) as running:
        yield running


@pytest.fixture(scope="module")
def gallery() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.uniform(-60, 70, 500), rng.uniform(-180, 180, 500)]).astype(np.float32)


def config(**changes) -> TrainConfig:
    base = TrainConfig(preset="tiny", zooms=ZOOMS, gallery_points=300, land_points=100, test_size=12, batch_size=16,
                       pretrain_steps=3, epochs=0.25, save_every=1000, eval_k=(2,), tile_workers=2, prefetch=2)
    return TrainConfig(**{**base.__dict__, **changes})


def source(server, **policy):
    return loopback_source(server.url, cache_dir=None, policy=ClientPolicy(requests_per_second=0, concurrency=4,
                                                                          **policy))


def planned_tiles(cfg: TrainConfig, problem: Problem) -> dict[str, set]:
    """Every tile the batches of each stage need, recomputed from the seeded batch plan."""
    plan: dict[str, set] = {}
    for stage in stages(cfg):
        if stage == "pretrain":
            steps, zoom_of = cfg.pretrain_steps, lambda step: pretrain_zoom(cfg, step)
        else:
            zoom = int(stage.split("-")[1])
            steps, zoom_of = level_steps(cfg, len(problem.train)), lambda step, zoom=zoom: zoom
        tiles = set()
        for step in range(steps):
            zoom = zoom_of(step)
            _, keys, _ = plan_batch(problem.tile_codes(zoom), zoom, batch_rng(cfg, stage, step, 0), cfg.batch_size)
            tiles |= {(zoom, int(x), int(y)) for x, y in keys}
        plan[stage] = tiles
    return plan


@pytest.fixture(scope="module")
def trained(server, gallery, tmp_path_factory):
    """One uninterrupted run, and the tiles the server was asked for during it."""
    out = tmp_path_factory.mktemp("maptiles-stream") / "whole"
    before = dict(server.hits)
    manifest = train(config(), out, gallery=gallery, source=source(server), evaluate_after=False)
    read = {tile for tile, count in server.hits.items() if count > before.get(tile, 0)}
    return out, manifest, read


def test_training_reads_only_its_batches_tiles_from_the_server(trained, gallery):
    _, manifest, read = trained
    cfg = config()
    problem = Problem(cfg, 32, gallery)
    plan = planned_tiles(cfg, problem)
    assert read == set().union(*plan.values())  # exactly the batches' tiles: no whole level, nothing else
    deepest = {t for t in read if t[0] == 6}
    steps6 = level_steps(cfg, len(problem.train)) + sum(1 for s in range(cfg.pretrain_steps)
                                                        if pretrain_zoom(cfg, s) == 6)
    assert 0 < len(deepest) <= steps6 * cfg.batch_size < 4 ** 6
    history = {h["stage"]: h for h in manifest["history"]}
    assert history["level-6"]["tiles_read"] <= level_steps(cfg, len(problem.train)) * cfg.batch_size
    assert manifest["tile_reads"]["peak_held_bytes"] <= cfg.tile_cache_mb * 1024 * 1024


def test_evaluation_reads_only_the_tiles_the_beams_visit(server, gallery, trained):
    model, _ = model_from_checkpoint(read_checkpoint(trained[0] / "model.pt"))
    held = Problem(config(), 32, gallery).held_out()
    before = dict(server.hits)
    with source(server) as tiles:
        metrics = evaluate(EvalConfig(zooms=ZOOMS, k=(2,), flat_max_tiles=0, memory_tiles=200), model, held, tiles)
        read = {tile for tile, count in server.hits.items() if count > before.get(tile, 0)}
        prep = model.config.preprocess()
        with torch.no_grad():
            photos = F.normalize(model.encode_photo(query_tensor(held.queries, prep.mean, prep.std)), dim=-1).numpy()
        replay = TileEmbedder(model, tiles, memory=True)
        visited = set()
        for photo in photos:
            for step in beam_search(photo, ZOOMS, replay, 2).steps:
                visited |= {tuple(int(v) for v in t) for t in step.tiles}
    assert read == visited
    assert len({t for t in read if t[0] == 6}) <= len(held.coords) * 2 * 16 < 4 ** 6
    assert metrics["embeddings_held_at_end"] <= 200  # the embedding cache is bounded in vectors
    assert set(metrics["rows"]) == {"beam k=2", "random tile (zoom 6)", "most common training location"}


def test_a_run_stopped_between_stages_resumes_to_the_same_weights(server, gallery, trained, tmp_path):
    cfg = config()
    stopped = train(cfg, tmp_path / "parts", gallery=gallery, source=source(server), stop_after="level-4",
                    evaluate_after=False)
    assert stopped["stopped_after"] == "level-4" and stopped["done"] == ["pretrain", "level-6", "level-4"]
    assert not (tmp_path / "parts" / "model.pt").exists()
    resumed = train(cfg, tmp_path / "parts", gallery=gallery, source=source(server), evaluate_after=False)
    assert [h["stage"] for h in resumed["history"]] == stages(cfg)
    whole = read_checkpoint(trained[0] / "model.pt")["state"]
    parts = read_checkpoint(tmp_path / "parts" / "model.pt")["state"]
    assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole)


def test_reader_lru_is_bounded_in_bytes_and_prefetch_keeps_order(server):
    with source(server) as tiles:
        entry = 32 * 32 * 3 + ENTRY_BYTES
        reader = TileReader(tiles, 32, cache_mb=10 * entry / 1024 / 1024)  # room for 10 decoded tiles
        keys = np.array([[x, 5] for x in range(30)])
        pixels, exists, failed = reader.read(6, keys)
        assert exists.all() and failed == 0 and pixels.shape == (30, 32, 32, 3) and pixels.any()
        assert reader.stats.held_tiles == 10 and reader.stats.peak_held_bytes <= 10 * entry
        again = reader.stats.read
        reader.read(6, keys[-10:])  # the last ten are held: no new read
        assert reader.stats.read == again
    made = []

    def make(step):
        made.append(step)
        return step * 2

    stream = prefetched(make, range(20), depth=3, workers=2)
    assert next(stream) == 0 and len(made) <= 4  # at most depth batches prepared ahead
    assert list(stream) == [2 * s for s in range(1, 20)]


def test_missing_tiles_drop_their_locations_and_a_failing_source_is_an_error(server):
    from geoapp.tiles.base import TileSourceError

    codes = np.array([(1 << 9) + 3, (2 << 9) + 3, (1 << 9) + 3], np.int64)  # zoom 9 is beyond the server's 8
    from training.maptiles.stream import make_batch

    with source(server) as tiles:
        batch = make_batch(TileReader(tiles, 32), codes, 9, np.random.default_rng(0), 4, step=0)
        assert len(batch.index) == 0 and batch.dropped == 4 and len(batch.keys) == 0
    dead = loopback_source("http://127.0.0.1:9/{z}/{x}/{y}.jpg", policy=ClientPolicy(retries=0, timeout_s=1))
    with pytest.raises(TileSourceError, match="failed for every tile"):  # nothing listens on port 9
        make_batch(TileReader(dead, 32), codes >> 6, 3, np.random.default_rng(0), 4, step=0)
    assert is_loopback_template(server.url) and not is_loopback_template("https://tiles.example/{z}/{x}/{y}.png")


def test_a_state_file_that_would_run_code_is_refused(tmp_path):
    from training.maptiles.train import read_state

    class RunsCode:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    torch.save({"stage": "pretrain", "step": 3, "done": [], "history": [RunsCode()]}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="refused"):
        read_state(tmp_path / "state.pt")
    assert not (tmp_path / "ran").exists()
