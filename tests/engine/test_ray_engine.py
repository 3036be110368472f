"""The Ray batch engine on a real local cluster (2 CPUs), with GeoCLIP's tiny random test backbone.

Records must equal the local engine's (all columns but timings) on 20 inputs, broken ones included;
a rerun after losing half the parts fills in exactly the missing records; a worker killed mid-run
loses and duplicates nothing. One cluster for the module keeps the whole file near a minute.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from geoapp.engine.output import PartsOutput, read_records
from geoapp.results.formats import RECORD_COLUMN_NAMES

from ..conftest import REPO, shared_path

pytest.importorskip("ray")

IGNORED = {"timings_json"}  # differs run to run
N_PHOTOS = 16


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    """16 real photos and 4 broken inputs (garbage, empty, truncated, extension-less text) = 20 files."""
    folder = tmp_path_factory.mktemp("ray-inputs")
    photos = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[:N_PHOTOS]
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    (folder / "corrupt.jpg").write_bytes(b"this is not a jpeg" * 10)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(photos[0].read_bytes()[:2000])
    (folder / "README").write_text("an extension-less text file in the photo folder")
    from geoapp.engine.inputs import expand_inputs

    keys = expand_inputs([str(folder)])
    assert len(keys) == 20
    return keys


def _job(workers: int = 2):
    from geoapp.engine.ray_engine import RayJob
    from geoapp.families import LoadOptions, PredictOptions, registry

    spec = registry.get("geoclip")
    return RayJob(family="geoclip", load=LoadOptions(device="cpu", backbone_weights="random",
                                                     extras=dict(spec.test_options)),
                  predict=PredictOptions.build(top_k=3, batch_size=4), workers=workers, batch_size=4)


@pytest.fixture(scope="module")
def local_records(inputs, tiny_locator) -> dict[str, dict]:
    """The local engine's records (same loading, same prediction step, this process)."""
    from geoapp.engine.inputs import load_family, predict_inputs
    from geoapp.families import registry
    from geoapp.results.formats import to_records

    tiny_locator.candidate_set()  # the gallery is encoded once into the shared test cache, for the workers too
    job = _job()
    family = load_family(registry.get(job.family), job.load)
    records = to_records(predict_inputs(family, inputs, job.predict))
    return {r["input"]: r for r in records}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, local_records):
    """A real local Ray cluster with 2 CPUs for the module (the crash hook's folder set before it starts)."""
    from geoapp.engine import ray_engine

    crash_dir = tmp_path_factory.mktemp("ray-crash")
    os.environ[ray_engine.CRASH_DIR_ENV] = str(crash_dir)
    started = ray_engine.connect(None, num_cpus=2)
    yield crash_dir
    if started:
        ray_engine.disconnect()
    os.environ.pop(ray_engine.CRASH_DIR_ENV, None)


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def assert_records_equal(got: list[dict], expected: dict[str, dict]) -> None:
    """Every input exactly once, every column (timings aside) equal; floats to 1e-4 (batching differs)."""
    counts = Counter(r["input"] for r in got)
    assert not [k for k, n in counts.items() if n > 1], "duplicated records"
    assert set(counts) == set(expected)
    for record in got:
        want = expected[record["input"]]
        assert set(record) == set(RECORD_COLUMN_NAMES)
        for column in RECORD_COLUMN_NAMES:
            if column in IGNORED:
                continue
            a, b = record[column], want[column]
            if column.endswith("_json"):
                a, b = json.loads(a), json.loads(b)
            assert _close(a, b), f"{record['input']}: {column} differs: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def ray_output(cluster, inputs, tmp_path_factory) -> Path:
    from geoapp.engine import ray_engine

    path = tmp_path_factory.mktemp("ray-out") / "results.parquet"
    summary = ray_engine.run(inputs, _job(), PartsOutput(path, part_rows=4))
    assert summary["written"] == 20 and summary["skipped"] == 0
    return path


def test_ray_records_equal_local_engine(ray_output, local_records):
    import pandas as pd

    records = read_records(ray_output)
    assert_records_equal(records, local_records)
    failed = {Path(r["input"]).name: r["error"] for r in records if not r["ok"]}
    assert set(failed) == {"corrupt.jpg", "empty.jpg", "truncated.jpg", "README"}
    assert all(r["family"] == "geoclip" and r["random_weights"] for r in records)
    assert len(pd.read_parquet(ray_output)) == 20  # the documented way to read the folder of parts


def test_rerun_after_losing_half_the_parts_fills_in_exactly_the_missing(ray_output, inputs, local_records,
                                                                        tmp_path):
    from geoapp.engine import ray_engine

    path = tmp_path / "results.parquet"
    shutil.copytree(ray_output, path)
    parts = sorted(path.glob("part-*.parquet"))
    assert len(parts) >= 2
    for part in parts[::2]:
        part.unlink()
    (path / ".part-cut-short.parquet.x1y2.tmp").write_bytes(b"PAR1 half written")  # a killed run's leftover
    kept = {r["input"] for r in read_records(path)}
    output = PartsOutput(path, part_rows=4)
    assert output.resumed == len(kept) and len(kept) < 20
    summary = ray_engine.run(inputs, _job(), output)
    assert summary["skipped"] == len(kept) and summary["written"] == 20 - len(kept)
    assert not list(path.glob(".part-*.tmp"))
    assert_records_equal(read_records(path), local_records)
    again = ray_engine.run(inputs, _job(), PartsOutput(path))  # complete: nothing to do, Ray not even asked
    assert again["written"] == 0 and again["skipped"] == 20


def test_a_killed_worker_loses_no_input_and_duplicates_none(cluster, inputs, local_records, tmp_path):
    from geoapp.engine import ray_engine

    (cluster / "armed").write_text("kill the first worker batch that sees this")
    path = tmp_path / "results.jsonl"
    summary = ray_engine.run(inputs, _job(), PartsOutput(path, part_rows=4))
    assert (cluster / "fired").exists(), "the test hook did not kill a worker"
    assert summary["written"] == 20
    assert_records_equal(read_records(path), local_records)


def test_predict_without_engine_never_imports_ray_and_reads_a_csv_column(inputs, local_records, tmp_path):
    """The CLI's local engine: a CSV column of paths (relative, absolute, file:// URL, missing) into JSONL
    records equal to the engine's; `ray` never imported."""
    photos = [k for k in inputs if k.endswith(".jpg")][:2]
    table = tmp_path / "inputs.csv"
    shutil.copy(photos[0], tmp_path / "relative.jpg")
    table.write_text("id,photo\n1,relative.jpg\n2,{}\n3,file://{}\n4,missing.jpg\n".format(photos[0], photos[1]))
    out = tmp_path / "local.jsonl"
    code = ("import sys, geoapp.cli.main as c; rc = c.main(sys.argv[1:]); "
            "assert 'ray' not in sys.modules, 'ray was imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, "predict", str(table), "--input-column", "photo",
                             "--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu",
                             "--top-k", "3", "--batch-size", "4", "-o", str(out)],
                            cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    records = {r["input"]: r for r in read_records(out)}
    assert list(records) == [str(tmp_path / "relative.jpg"), photos[0], f"file://{photos[1]}",
                             str(tmp_path / "missing.jpg")]
    assert_records_equal([records[photos[0]]], {photos[0]: local_records[photos[0]]})
    url = records[f"file://{photos[1]}"]
    assert url["ok"] and url["lat"] == local_records[photos[1]]["lat"]
    assert not records[str(tmp_path / "missing.jpg")]["ok"]
    assert "pandas.read_parquet" not in result.stderr and "read_records" in result.stderr
