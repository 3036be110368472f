"""Our keyframes against the FFmpeg command line's (Debian's ffmpeg package: CI installs it, see .ci/run)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from geoapp.imaging.video import KeyframeOptions, extract_keyframes

from .clips import ffprobe_keyframe_times, three_shots

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                reason="the ffmpeg/ffprobe command line is not installed (apt-get install ffmpeg)")


def test_chosen_frames_are_ffmpeg_keyframes(three_shot_mp4):
    path, facts = three_shot_mp4
    reference = ffprobe_keyframe_times(path)
    assert reference == pytest.approx([0, 1, 2, 3, 4, 5, 6, 7], abs=1e-3)  # a keyframe a second and at the cuts
    result = extract_keyframes(path, KeyframeOptions(mode="keyframes"))
    assert result.stats.decoded_frames == len(reference)  # exactly the frames ffmpeg -skip_frame nokey decodes
    for frame in result.keyframes:
        assert min(abs(frame.time_s - t) for t in reference) < 1e-3, frame
    assert all(min(abs(s.start_s - t) for t in reference) < 1e-3 for s in result.shots)


def test_rotation_matches_ffmpeg_autorotate(tmp_path):
    facts = three_shots(tmp_path / "turned.mov", rotation=90)
    ours = np.asarray(extract_keyframes(facts.path, KeyframeOptions(mode="keyframes")).keyframes[0].image)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", facts.path, "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, timeout=60, check=True).stdout
    theirs = np.frombuffer(raw, dtype=np.uint8).reshape(320, 180, 3)  # ffmpeg turns it upright by default
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(int) - theirs).mean() < 4
