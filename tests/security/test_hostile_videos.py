"""Hostile videos: one readable message per file, frames decoded so far kept, the batch carries on,
temporary files cleaned. Every file is generated here (tests/security/hostile_videos.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import av
import numpy as np
import pytest

from geoapp.imaging.video import KeyframeOptions, VideoLimits, VideoLoadError, extract_keyframes
from tests.conftest import REPO, shared_path
from tests.imaging.video.clips import three_shots

from . import hostile_videos as hostile


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-videos")
    three_shots(folder / "good.mp4")
    three_shots(folder / "good.mkv")
    return {"mp4": folder / "good.mp4", "mkv": folder / "good.mkv", "folder": folder}


def _refused(path, limits: VideoLimits | None = None) -> str:
    with pytest.raises(VideoLoadError) as caught:
        extract_keyframes(path, limits=limits)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ") and "Traceback" not in message
    return message


def test_empty_file(tmp_path):
    path = tmp_path / "zero.mp4"
    path.write_bytes(b"")
    assert "empty (0 bytes)" in _refused(path)


def test_file_size_cap(clips):
    size_mb = clips["mp4"].stat().st_size / 2**20
    message = _refused(clips["mp4"], VideoLimits(max_file_mb=size_mb / 2))
    assert "the file is too large" in message and "--max-video-mb" in message
    assert extract_keyframes(clips["mp4"], limits=VideoLimits(max_file_mb=size_mb * 2)).keyframes


def test_photo_renamed_mp4(tmp_path):
    path = tmp_path / "photo.mp4"
    path.write_bytes(next(iter(sorted(shared_path("im2gps3k-dev").glob("*.jpg")))).read_bytes())
    assert "not a video: the content is a JPEG image" in _refused(path)


def test_audio_only(tmp_path):
    assert "no video stream: audio only (aac)" in _refused(hostile.audio_only(tmp_path / "voice.m4a"))


def test_truncated_mp4_without_its_index(clips, tmp_path):
    path = hostile.truncated(clips["mp4"], tmp_path / "cut.mp4", keep=0.5)
    assert "truncated or damaged: its index ('moov' box) is missing" in _refused(path)


def test_unknown_codec(clips, tmp_path):
    path = tmp_path / "unknown.mkv"
    data = clips["mkv"].read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    path.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/ZZZ"))  # a codec id nobody decodes
    assert "codec is unknown to this FFmpeg build" in _refused(path)


def test_garbage_stream(clips, tmp_path):
    message = _refused(hostile.garbage_stream(clips["mkv"], tmp_path / "garbage.mkv"))
    assert "no frame could be decoded from 80 packet(s) of h264 video" in message


def test_thousands_of_streams(tmp_path):
    path = hostile.many_tracks(tmp_path / "tracks.mkv", extra_tracks=3000)
    assert "more than 64 streams" in _refused(path)
    fine = extract_keyframes(hostile.many_tracks(tmp_path / "few.mkv", extra_tracks=3))  # the same file, 4 streams
    assert fine.info.streams == 4 and len(fine.keyframes) == 1


def test_over_the_pixel_cap_is_refused_8k_is_reduced(tmp_path):
    path = hostile.eight_k(tmp_path / "8k.mp4")
    assert "7680×4320 frames exceed the limit of 2,073,600 pixels" in _refused(path, VideoLimits(max_frame_pixels=1920 * 1080))
    result = extract_keyframes(path)
    assert [k.image.size for k in result.keyframes] == [(1920, 1080)]
    picture = np.asarray(result.keyframes[0].image).astype(int)
    assert np.abs(picture[5:60:7, 100] - (200, 30, 30)).max() < 25  # left half red, at the reduced size
    assert picture[5:60:7, 1800].max() < 25
    assert any("reduced size" in note for note in result.notes)


def test_scripts_renamed_mp4_are_never_followed(clips, tmp_path):
    script = tmp_path / "clip.mp4"
    (tmp_path / "other.mp4").write_bytes(clips["mp4"].read_bytes())
    script.write_text("ffconcat version 1.0\nfile other.mp4\n")
    # What the guard prevents: FFmpeg's own probing runs the script and reads the file it names.
    with av.open(str(script)) as probing:
        assert probing.format.name == "concat" and next(probing.decode(video=0)).width == 320
    assert "not a video: the content is an FFmpeg concat script, which is never followed" in _refused(script)
    playlist = tmp_path / "list.mp4"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:8,\nother.mp4\n#EXT-X-ENDLIST\n")
    assert "not a video: the content is a playlist (HLS), which is never followed" in _refused(playlist)


def test_truncated_matroska_keeps_the_frames_before_the_cut(clips, tmp_path):
    result = extract_keyframes(hostile.truncated(clips["mkv"], tmp_path / "cut.mkv", keep=0.6))
    assert not result.complete
    assert [k.shot for k in result.keyframes] == [0, 1] and result.keyframes[1].time_s == 3.0
    assert "before the declared duration of 8.0 s (truncated file?)" in result.notes[0]


@pytest.mark.parametrize("suffix", ["mkv", "mp4"])
def test_damaged_frames_mid_stream(clips, tmp_path, suffix):
    path = hostile.damaged(clips[suffix], tmp_path / f"damaged.{suffix}", at=0.4)
    result = extract_keyframes(path, KeyframeOptions(mode="sampled", sample_interval_s=0.0))
    assert {k.shot for k in result.keyframes} == {0, 1, 2}  # frames on both sides of the damage
    assert any(note.startswith("damaged video data") for note in result.notes)


def test_four_hour_video_duration_cap_progress_and_cancel(tmp_path):
    path = hostile.long_by_timestamps(tmp_path / "long.mkv", hours=4.0)
    seen: list[float] = []
    result = extract_keyframes(path, progress=lambda fraction, message: seen.append(fraction))
    assert result.info.duration_s == pytest.approx(4 * 3600, abs=2)
    assert not result.complete and "duration limit reached" in result.notes[0]
    assert result.stats.analysed_frames == 4 and max(k.time_s for k in result.keyframes) < 3 * 3600
    assert seen == sorted(seen) and 0.5 < seen[-2] < 0.8 and seen[-1] == 1.0
    stop = threading.Event()
    cancelled = extract_keyframes(path, progress=lambda f, m: stop.set(), cancel=stop)
    assert cancelled.cancelled and cancelled.keyframes and cancelled.stats.analysed_frames < 4


def test_decoded_frame_cap_on_a_long_low_res_clip(tmp_path):
    path = hostile.low_res_long(tmp_path / "five-minutes.mkv")
    result = extract_keyframes(path, KeyframeOptions(mode="sampled", sample_interval_s=0.0),
                               VideoLimits(max_decoded_frames=500))
    assert result.stats.decoded_frames == 501 and result.stats.analysed_frames == 500
    assert "decoded-frame limit reached (500 frames)" in result.notes[0] and result.keyframes


def test_a_batch_of_hostile_videos_carries_on_and_leaves_no_temporary_files(clips, tmp_path):
    folder = clips["folder"]
    zero = folder / "zero.mp4"
    zero.write_bytes(b"")
    cut = hostile.truncated(clips["mkv"], folder / "cut.mkv", keep=0.6)
    audio = hostile.audio_only(folder / "voice.m4a")
    out, scratch = tmp_path / "frames", tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "geoapp", "predict", str(zero), str(clips["mp4"]), str(audio),
                          str(cut), "--keyframes-only", str(out)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "zero.mp4: the file is empty (0 bytes)" in run.stderr
    assert "voice.m4a: no video stream: audio only (aac)" in run.stderr
    assert "truncated file?" in run.stderr and "Traceback" not in run.stderr
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.startswith("good_t")] and [n for n in names if n.startswith("cut_t")]
    assert not [n for n in names if n.startswith(".")]  # no temporary file left beside the outputs
    assert list(scratch.iterdir()) == []
    strict = subprocess.run([sys.executable, "-m", "geoapp", "predict", str(zero), "--keyframes-only", str(out),
                             "--strict"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert strict.returncode == 1
