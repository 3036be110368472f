"""`python -m geoapp predict` with videos: one record per keyframe (source clip.mp4#t=...), --keyframes-only.

The command runs in this process (``geoapp.cli.main``) to spare a torch import per case; tests/test_cli.py and
the hostile-video batch in tests/security run it as a subprocess."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest

from geoapp.engine.output import read_records

from .conftest import shared_path
from .imaging.video.clips import CUTS, nile_studio, three_shots

TINY = ["--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys):
    from geoapp.cli.main import main

    def run(*args: str) -> Run:
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-video") / "clip.mp4"
    three_shots(path, creation_time="2024-05-01T10:00:00Z")
    return path


@pytest.fixture(scope="module", autouse=True)
def _warm_gallery_cache(tiny_locator):
    tiny_locator.candidate_set()


def test_json_has_a_record_per_keyframe_with_its_time(clip, tmp_path, run_cli):
    photo = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[0]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    out = run_cli("predict", str(clip), str(photo), str(broken), *TINY, "--format", "json", "--top-k", "2")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    frames = [r for r in records if r["source"].startswith(f"{clip}#t=")]
    assert len(frames) >= 3 and all(r["ok"] for r in frames)
    for record in frames:
        video = record["image"]["video"]
        assert record["source"] == f"{clip}#t={video['time_s']:.2f}"
        assert video["wall_time"].startswith("2024-05-01T10:00:0") and video["codec"] == "h264"
        assert video["shot"] == sum(video["time_s"] >= cut for cut in CUTS)
        assert len(video["video_sha256"]) == 64 and record["candidates"]
    times = [r["image"]["video"]["time_s"] for r in frames]
    assert times == sorted(times) and {r["image"]["video"]["shot"] for r in frames} == {0, 1, 2}
    fused = records[len(frames)]
    assert fused["source"] == str(clip) and fused["image"]["fused_video"] and fused["ok"]
    assert fused["image"]["fusion"]["areas"][0]["level"] == 0.9 and fused["image"]["video"]["codec"] == "h264"
    assert [r["source"] for r in records[len(frames) + 1:]] == [str(photo), str(broken)]  # input order kept
    assert records[-1]["ok"] is False and "broken.mp4: " in records[-1]["error"]


def test_csv_geojson_and_parquet_records(clip, tmp_path, run_cli):
    table = run_cli("predict", str(clip), *TINY, "--format", "csv", "--top-k", "1")
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert len(rows) >= 4 and all("#t=" in r["source"] for r in rows[:-1]) and rows[-1]["source"] == str(clip)
    shapes = run_cli("predict", str(clip), *TINY, "--format", "geojson", "--top-k", "1")
    features = json.loads(shapes.stdout)["features"]
    assert {f["properties"]["source"] for f in features} == {r["source"] for r in rows}
    target = tmp_path / "out.parquet"
    first = run_cli("predict", str(clip), *TINY, "-o", str(target), "--top-k", "1")
    assert first.returncode == 0, first.stderr
    records = read_records(target)
    assert sorted(r["input"] for r in records) == sorted(r["source"] for r in rows)
    assert all(json.loads(r["image_json"])["video"]["time_s"] >= 0 for r in records if "#t=" in r["input"])
    assert [json.loads(r["image_json"])["fused_video"] for r in records if "#t=" not in r["input"]] == [True]
    again = run_cli("predict", str(clip), *TINY, "-o", str(target), "--top-k", "1")
    assert "1 of 1 inputs already have a record" in again.stderr
    assert len(read_records(target)) == len(records)  # resumed: nothing written twice


def test_keyframes_only_writes_frames_and_sidecars(clip, tmp_path, run_cli):
    photo = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[0]
    out = run_cli("predict", str(clip), str(photo), "--keyframes-only", str(tmp_path / "frames"))
    assert out.returncode == 0, out.stderr
    assert "not a video, skipped" in out.stderr
    sidecar = json.loads((tmp_path / "frames" / "clip_keyframes.json").read_text())
    rows = list(csv.DictReader((tmp_path / "frames" / "clip_keyframes.csv").open()))
    assert [r["file"] for r in rows] == [k["file"] for k in sidecar["keyframes"]]
    assert [round(float(r["time_s"]), 3) for r in rows] == [k["time_s"] for k in sidecar["keyframes"]]
    for row in rows:
        t = float(row["time_s"])
        assert row["file"] == f"clip_t00h00m{t:06.3f}s.jpg" and (tmp_path / "frames" / row["file"]).is_file()
    assert [s["start_s"] for s in sidecar["shots"]] == [0.0, *CUTS]
    assert sidecar["video"]["creation_time"] == "2024-05-01T10:00:00Z"


def test_videos_on_ray_are_refused_with_a_readable_line(clip, tmp_path, run_cli):
    out = run_cli("predict", str(clip), *TINY, "--engine", "ray", "-o", str(tmp_path / "r.parquet"))
    assert out.returncode == 2 and "run on the local engine for now" in out.stderr and "Traceback" not in out.stderr


def test_the_cut_to_a_studio_is_flagged_and_left_out_of_the_fused_record(tmp_path, run_cli):
    """SatWorld (the shipped model) on two flyovers of the Nile delta around a studio shot."""
    path = tmp_path / "nile.mp4"
    nile_studio(path)
    out = run_cli("predict", str(path), "--model", "satworld", "--device", "cpu", "--format", "json", "--top-k", "2")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    frames, fused = records[:-1], records[-1]
    assert [r["image"]["video"]["shot"] for r in frames] == [0, 1, 2]
    studio_frame = frames[1]["source"]
    assert fused["source"] == str(path) and fused["ok"] and fused["image"]["fused_video"]
    outliers = fused["image"]["fusion"]["outliers"]
    assert [o["source"] for o in outliers] == [studio_frame] and "disagrees with the other frames" in outliers[0]["reason"]
    assert fused["image"]["fusion"]["used"] == [frames[0]["source"], frames[2]["source"]]
    assert fused["candidates"][0]["country_code"] in {"EG", "IL", "PS", "JO", "SA"}  # near the delta, not Peru
    time_s = frames[1]["image"]["video"]["time_s"]
    back = json.loads(run_cli("predict", str(path), "--model", "satworld", "--device", "cpu", "--format", "json",
                              "--top-k", "2", "--keep-frames", f"{time_s:.2f}").stdout)[-1]
    assert back["image"]["fusion"]["outliers"] == [] and back["image"]["fusion"]["kept"] == [studio_frame]
    assert len(back["image"]["fusion"]["used"]) == 3
