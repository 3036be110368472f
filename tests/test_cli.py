"""`python -m geoapp predict` as a subprocess (tiny random backbone; the real one is exercised by benchmarks)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from geoapp.geo.countries import get_country_index

from .conftest import REPO, shared_path

TINY = ["--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu"]


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "geoapp", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def _warm_gallery_cache(tiny_locator):
    """The session's tiny locator has encoded the 100K gallery into the shared test cache already."""
    tiny_locator.candidate_set()


def test_predict_exif_samples_gives_a_record_per_file():
    folder = shared_path("exif-samples")
    out = run_cli("predict", str(folder), *TINY, "--format", "json", "--top-k", "3")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    from geoapp.imaging import iter_image_paths

    assert len(records) == len(iter_image_paths([folder]))
    assert all(r["ok"] or r["error"] for r in records)
    assert sum(r["ok"] for r in records) > 50
    assert all(r["random_weights"] for r in records)
    failed = [r for r in records if not r["ok"]]
    assert all("Traceback" not in r["error"] for r in failed)
    assert "RANDOM" in out.stderr or "random" in out.stderr


def test_predict_region_fr_csv(tmp_path):
    photos = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[:2]
    target = tmp_path / "out.csv"
    out = run_cli("predict", *map(str, photos), *TINY, "--region", "FR", "--format", "csv", "-o", str(target))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 10 and {r["region"] for r in rows} == {"country:FR"}
    lat = np.array([float(r["lat"]) for r in rows])
    lon = np.array([float(r["lon"]) for r in rows])
    assert set(get_country_index().lookup(lat, lon)) == {"FR"}


def test_predict_geojson_glob_and_missing_file(tmp_path):
    pattern = str(shared_path("im2gps3k-dev") / "10*.jpg")
    out = run_cli("predict", pattern, str(tmp_path / "nope.jpg"), *TINY, "--format", "geojson", "--top-k", "2")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["type"] == "FeatureCollection"
    assert all(f["geometry"]["type"] == "Point" for f in data["features"])
    assert [e["source"] for e in data["errors"]] == [str(tmp_path / "nope.jpg")]
    strict = run_cli("predict", str(tmp_path / "nope.jpg"), *TINY, "--strict")
    assert strict.returncode == 1


def test_bad_region_is_one_readable_line():
    out = run_cli("predict", "x.jpg", *TINY, "--region", "Frnace")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "France" in out.stderr and "Traceback" not in out.stderr


def test_auto_model_falls_back_to_satworld_without_clip_weights(monkeypatch, tmp_path):
    from geoapp.api import choose_model

    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))
    model, notice = choose_model("auto")
    if model == "geoclip":
        pytest.skip("the real CLIP weights are installed on this machine")
    assert model == "satworld" and "python -m geoapp weights download" in notice and "aerial" in notice
    assert choose_model("auto", "random") == ("geoclip", None)
    assert choose_model("geoclip") == ("geoclip", None)


def test_predict_without_clip_weights_runs_satworld(tmp_path):
    env_dir = tmp_path / "no-weights"
    env_dir.mkdir()
    photo = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[0]
    out = subprocess.run([sys.executable, "-m", "geoapp", "predict", str(photo), "--top-k", "2", "--device", "cpu"],
                         cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", "GEOAPP_WEIGHTS_DIR": str(env_dir)},
                         capture_output=True, text=True, timeout=600)
    if "Loading geoclip" in out.stderr:
        pytest.skip("the real CLIP weights are installed on this machine")
    assert out.returncode == 0, out.stderr
    assert "SatWorld" in out.stderr and "weights download" in out.stderr
    record = json.loads(out.stdout)[0]
    assert record["ok"] and record["model"]["model"] == "satworld" and not record["random_weights"]
    assert any("satellite/aerial" in w for w in record["warnings"])
