"""A video in a case: one evidence item (SHA-256, container facts, duration) with its keyframes as derived
evidence (time, frame hash), kept through a bundle round trip; ``case add CASE clip.mp4`` on the command line.
Runs on SQLite, and on PostgreSQL where GEOAPP_TEST_DATABASE_URL is set (the store fixture)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from geoapp.cases import CaseStore
from geoapp.cases.bundle import export_bundle, import_bundle
from geoapp.cases.errors import CaseInputError, DuplicateEvidenceError
from geoapp.cases.videos import add_video_file, analysable

from ..conftest import REPO, shared_path
from ..imaging.video.clips import CUTS, three_shots


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("case-video") / "clip.mp4"
    three_shots(path, creation_time="2024-05-01T10:00:00Z")
    return path


def test_a_video_is_one_evidence_item_with_its_frames_derived(store: CaseStore, clip):
    case = store.create_case("Footage claimed to show the Nile", actor="a")
    added = add_video_file(store, case.id, clip, actor="a")
    video = added.video
    assert video.kind == "video" and video.parent_id is None and video.original_name == "clip.mp4"
    assert video.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest() and video.file_size == clip.stat().st_size
    assert video.media["duration_s"] == pytest.approx(8.0, abs=0.2) and video.media["codec"] == "h264"
    assert video.media["creation_time"] == "2024-05-01T10:00:00Z" and (video.width, video.height) == (320, 180)
    assert store.blobs.read(video.sha256) == clip.read_bytes()
    frames = added.frames
    assert len(frames) >= 3 and all(f.kind == "frame" and f.parent_id == video.id for f in frames)
    times = [f.time_s for f in frames]
    assert times == sorted(times) and {f.media["shot"] for f in frames} == {0, 1, 2}
    assert [f.media["shot"] for f in frames] == [sum(t >= cut for cut in CUTS) for t in times]
    for f in frames:
        data = store.blobs.read(f.sha256)
        assert hashlib.sha256(data).hexdigest() == f.sha256 and Image.open(io.BytesIO(data)).format == "JPEG"
        assert f.original_name == f"clip.mp4#t={f.time_s:.2f}" and len(f.media["phash"]) == 16
    stored = {e.id: e for e in store.get_case(case.id).evidence}
    assert set(stored) == {video.id, *(f.id for f in frames)}
    assert stored[frames[0].id].parent_id == video.id and stored[video.id].media["sha256"] == video.sha256
    with pytest.raises(DuplicateEvidenceError):
        add_video_file(store, case.id, clip, actor="a")
    assert len(store.get_case(case.id).evidence) == len(stored)  # nothing added twice


def test_frames_are_analysed_like_photos_and_the_bundle_keeps_the_video(store: CaseStore, clip, tmp_path,
                                                                        small_locator):
    case = store.create_case("c", actor="a")
    added = add_video_file(store, case.id, clip, actor="a")
    analysis = store.run_analysis(case.id, added.frames[0].id, small_locator, top_k=2)
    assert analysis.evidence_id == added.frames[0].id and analysis.evidence_sha256 == added.frames[0].sha256
    export_bundle(store, case.id, tmp_path / "case.zip", actor="a")
    result = import_bundle(store, tmp_path / "case.zip", actor="b", as_new=True)
    copy = store.get_case(result.case_id).evidence
    videos = [e for e in copy if e.kind == "video"]
    assert len(videos) == 1 and videos[0].sha256 == added.video.sha256
    frames = sorted((e for e in copy if e.kind == "frame"), key=lambda e: e.time_s)
    assert [f.sha256 for f in frames] == [f.sha256 for f in added.frames]
    assert {f.parent_id for f in frames} == {videos[0].id} and videos[0].id != added.video.id


def test_a_video_is_analysed_through_its_keyframes(store: CaseStore, clip):
    case = store.create_case("c", actor="a")
    added = add_video_file(store, case.id, clip, actor="a")
    photo = store.add_evidence_file(case.id, shared_path("exif-samples", "jpg", "gps", "DSCN0010.jpg"), actor="a")
    evidence = list(store.get_case(case.id).evidence)
    frames = [f.id for f in added.frames]
    assert [e.id for e in analysable(evidence, (added.video.id,))] == frames
    everything = [e.id for e in analysable(evidence)]
    assert added.video.id not in everything and set(frames) <= set(everything)
    assert everything == [photo.id] + frames or everything == frames + [photo.id]
    assert [e.id for e in analysable(evidence, (frames[1], added.video.id))] == [frames[1], frames[0], *frames[2:]]


def test_the_report_shows_the_video_and_its_frame_strip(store: CaseStore, clip, small_locator):
    from geoapp.cases.report import render_html

    case = store.create_case("c", actor="a")
    added = add_video_file(store, case.id, clip, actor="a")
    store.run_analysis(case.id, added.frames[1].id, small_locator, top_k=2)
    page = render_html(store, case.id)
    strip = page[page.index('<div class="strip">'):]
    strip = strip[:strip.index("</div></div>")]
    assert strip.count("<figure>") == len(added.frames) and strip.count("data:image/jpeg") == len(added.frames)
    assert "t = 0.00 s · shot 0" in strip and "→ " in strip and "RANDOM WEIGHTS" in strip  # frame 1 was analysed
    assert "clip.mp4 (video)" in page and "h264" in page and "2024-05-01T10:00:00Z" in page
    assert page.count("Keyframe of") == len(added.frames)


def test_unreadable_videos_add_nothing(store: CaseStore, tmp_path):
    case = store.create_case("c", actor="a")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    with pytest.raises(CaseInputError, match="broken.mp4"):
        add_video_file(store, case.id, broken, actor="a")
    assert store.get_case(case.id).evidence == []


def test_case_add_on_the_command_line(make_db_url, tmp_path, clip):
    env = {**os.environ, "GEOAPP_DATABASE_URL": make_db_url(), "GEOAPP_CASE_STORE": str(tmp_path / "store"),
           "GEOAPP_ACTOR": "analyst-1"}

    def case(*args):
        out = subprocess.run([sys.executable, "-m", "geoapp", "case", *args], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        return out.stdout

    case_id = case("new", "Footage").strip()
    line = case("add", case_id, str(clip)).strip().split("\t")
    assert line[0] == "added" and "keyframes)" in line[-1]
    records = json.loads(case("add", case_id, str(clip), "--json"))
    assert records[0]["status"] == "duplicate" and records[0]["evidence_id"] == line[1]
