"""Shots and keyframes of generated clips with known cuts (geoapp.imaging.video)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from geoapp.imaging.video import KeyframeOptions, VideoLimits, extract_keyframes
from training.video.flyover import ClipSpec, write_clip

from .clips import CUTS, SIZE, THREE_SHOTS, studio, three_shots

KEYFRAMES = KeyframeOptions(mode="keyframes")


def test_cuts_found_and_keyframes_land_in_their_shots(three_shot_mp4):
    path, facts = three_shot_mp4
    result = extract_keyframes(path)
    assert [round(s.start_s, 3) for s in result.shots] == [0.0, *CUTS]
    assert result.shots[-1].end_s == pytest.approx(8.0, abs=0.11)
    assert result.keyframes, "no keyframe chosen"
    for frame in result.keyframes:
        assert frame.shot == facts.shot_of(frame.time_s), frame
    assert {f.shot for f in result.keyframes} == {0, 1, 2}  # every shot is represented
    assert result.complete and not result.cancelled and result.notes == []


def test_static_studio_shot_collapses_to_one_frame(three_shot_mp4):
    path, _ = three_shot_mp4
    result = extract_keyframes(path, KeyframeOptions(mode="sampled", sample_interval_s=0.0))
    studio_shot = result.shots[1]
    assert studio_shot.analysed_frames == 20  # every frame of the 2 s studio was looked at
    assert len(studio_shot.keyframes) == 1
    # without the perceptual-hash test every analysed frame would count as a new view
    loose = extract_keyframes(path, KeyframeOptions(mode="sampled", sample_interval_s=0.0, distinct_bits=0))
    assert len(loose.shots[1].keyframes) == 3


def test_the_sharpest_frame_of_a_shot_is_kept(tmp_path):
    path = tmp_path / "blur.mp4"
    studio(path, seconds=4.0, blur=(0.0, 2.0))
    result = extract_keyframes(path, KEYFRAMES)
    assert len(result.shots) == 1 and len(result.keyframes) == 1
    chosen = result.keyframes[0]
    assert chosen.time_s >= 2.0, "a defocused frame was chosen"
    assert chosen.shot == 0 and chosen.rank == 0


def test_timestamps_are_presentation_times_and_creation_time_gives_wall_time(three_shot_mp4):
    path, facts = three_shot_mp4
    result = extract_keyframes(path)
    for frame in result.keyframes:
        assert min(abs(frame.time_s - t) for t in facts.frame_times) < 1e-3
        assert frame.source == f"three.mp4#t={frame.time_s:.2f}"
    assert result.info.creation_time == "2024-05-01T10:00:00Z"
    assert result.info.location == pytest.approx((48.8584, 2.2945))
    first_studio = next(f for f in result.keyframes if f.shot == 1)
    assert first_studio.wall_time.startswith("2024-05-01T10:00:0")
    seconds = float(first_studio.wall_time[17:-1])
    assert seconds == pytest.approx(first_studio.time_s, abs=1e-3)
    assert result.info.duration_s == pytest.approx(8.0, abs=0.11)
    assert result.info.frame_rate == pytest.approx(10.0, rel=0.01) and result.info.variable_frame_rate is False


def test_variable_frame_rate_times(tmp_path):
    path = tmp_path / "vfr.mkv"
    facts = write_clip(path, ClipSpec(THREE_SHOTS, size=SIZE, fps=10.0, gop=10, preset="ultrafast",
                                      frame_seconds=(0.04, 0.1, 0.25)))
    result = extract_keyframes(path)
    assert result.info.variable_frame_rate is True
    cut_frames = [min(t for t in facts.frame_times if t >= cut - 1e-9) for cut in CUTS]
    assert cut_frames != list(CUTS)  # the cuts fall between frames: times must come from timestamps
    assert [s.start_s for s in result.shots] == pytest.approx([0.0, *cut_frames], abs=1e-3)
    for frame in result.keyframes:
        assert min(abs(frame.time_s - t) for t in facts.frame_times) < 1e-3
        assert frame.shot == facts.shot_of(frame.time_s)


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotation_metadata_is_honoured(tmp_path, rotation):
    plain = extract_keyframes(three_shots(tmp_path / "plain.mov").path, KEYFRAMES)
    turned = extract_keyframes(three_shots(tmp_path / "turned.mov", rotation=rotation).path, KEYFRAMES)
    assert turned.info.rotation == rotation and turned.info.display_size == (180, 320)
    assert [f.time_s for f in turned.keyframes] == [f.time_s for f in plain.keyframes]
    for a, b in zip(plain.keyframes, turned.keyframes):
        assert b.image.size == (180, 320)
        expected = np.rot90(np.asarray(a.image), k=1 if rotation == 90 else -1)  # counter-clockwise for +90
        assert np.abs(np.asarray(b.image).astype(int) - expected).mean() < 4
    assert any("rotated" in note for note in turned.notes)


@pytest.mark.parametrize("suffix,codec", [(".webm", "libvpx-vp9"), (".mkv", "libx265"), (".avi", "mpeg4"),
                                          (".mov", "libx264"), (".mkv", "libsvtav1")])
def test_containers_and_codecs(tmp_path, suffix, codec):
    facts = three_shots(tmp_path / f"clip{suffix}", codec=codec)
    result = extract_keyframes(facts.path)
    assert [s.start_s for s in result.shots] == pytest.approx([0.0, *CUTS], abs=0.11)
    assert {f.shot for f in result.keyframes} == {0, 1, 2}
    expected = {"libvpx-vp9": "vp9", "libx265": "hevc", "mpeg4": "mpeg4", "libx264": "h264", "libsvtav1": "av1"}
    assert result.info.codec == expected[codec]


def test_sparse_keyframes_are_filled_by_sampling(tmp_path):
    facts = write_clip(tmp_path / "sparse.mp4", ClipSpec(THREE_SHOTS, size=SIZE, fps=10.0, gop=1000,
                                                         preset="ultrafast", force_keyframes_at_cuts=False))
    only_keys = extract_keyframes(facts.path, KEYFRAMES)
    assert len(only_keys.shots) == 1 and only_keys.stats.decoded_frames == 1
    filled = extract_keyframes(facts.path, KeyframeOptions(max_keyframe_gap_s=1.0, sample_interval_s=0.5))
    assert filled.stats.filled_gaps == 1 and filled.stats.decoded_frames == 80
    assert [s.start_s for s in filled.shots] == pytest.approx([0.0, *CUTS], abs=0.51)
    assert {f.shot for f in filled.keyframes} == {0, 1, 2}
    assert any("decoded in full" in note for note in filled.notes)


def test_caps_per_shot_and_per_video(three_shot_mp4):
    path, _ = three_shot_mp4
    every = {"mode": "sampled", "sample_interval_s": 0.0, "distinct_bits": 0}  # every frame a new view
    wide = extract_keyframes(path, KeyframeOptions(**every))
    assert [len(s.keyframes) for s in wide.shots] == [3, 3, 3]  # the default cap per shot
    one = extract_keyframes(path, KeyframeOptions(**every, max_per_shot=1))
    assert [len(s.keyframes) for s in one.shots] == [1, 1, 1]
    two = extract_keyframes(path, KeyframeOptions(**every, max_per_video=2))
    assert len(two.keyframes) == 2 and {f.rank for f in two.keyframes} == {0}
    assert [f.shot for f in two.keyframes] == [0, 2]  # the two longest shots keep their first pick
    assert any("limit of 2 per video" in note for note in two.notes)


def test_analysis_and_duration_caps_keep_what_was_found(three_shot_mp4):
    path, _ = three_shot_mp4
    capped = extract_keyframes(path, KEYFRAMES, VideoLimits(max_analysed_frames=3))
    assert not capped.complete and capped.stats.analysed_frames == 3
    assert capped.keyframes and all(f.time_s < 3.0 for f in capped.keyframes)
    assert "analysed-frame limit" in capped.notes[0]
    early = extract_keyframes(path, KEYFRAMES, VideoLimits(max_duration_s=4.5))
    assert not early.complete and max(f.time_s for f in early.keyframes) < 4.5
    assert [s.start_s for s in early.shots] == [0.0, 3.0]


def test_progress_and_cancel(three_shot_mp4):
    path, _ = three_shot_mp4
    seen: list[float] = []
    extract_keyframes(path, KEYFRAMES, progress=lambda fraction, message: seen.append(fraction))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3
    stop = threading.Event()
    result = extract_keyframes(path, KEYFRAMES, progress=lambda fraction, message: stop.set(), cancel=stop)
    assert result.cancelled and not result.complete
    assert result.keyframes and result.stats.analysed_frames < 8  # frames found before the cancel are kept
    assert result.notes[0].startswith("cancelled")


def test_options_are_checked():
    with pytest.raises(ValueError, match="mode"):
        KeyframeOptions(mode="fast").check()
    with pytest.raises(ValueError, match="max_file_mb"):
        VideoLimits(max_file_mb=0).check()


def test_seeking_through_the_mp4_index_reads_only_keyframes_and_finds_the_same(tmp_path):
    facts = three_shots(tmp_path / "bframes.mp4", preset="veryfast")  # B-frames: decoding order != display order
    seeking = extract_keyframes(facts.path)
    reading = extract_keyframes(facts.path, KeyframeOptions(seek=False))
    assert seeking.stats.seeking and not reading.stats.seeking
    assert seeking.stats.packets == 8 and reading.stats.packets == 80  # only the keyframes were read
    assert [(k.time_s, k.shot, k.phash) for k in seeking.keyframes] == \
        [(k.time_s, k.shot, k.phash) for k in reading.keyframes]
    assert [s.start_s for s in seeking.shots] == [0.0, *CUTS]
    assert seeking.info.frame_rate == pytest.approx(10.0) and seeking.info.variable_frame_rate is False
