"""Generated clips shared by the video tests (a few hundred KB, rendered once per session)."""

from __future__ import annotations

import pytest

from .clips import three_shots


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def three_shot_mp4(clip_dir):
    """(path, facts): H.264 MP4 with a creation time and an ISO 6709 location."""
    path = clip_dir / "three.mp4"
    return path, three_shots(path, creation_time="2024-05-01T10:00:00Z", location="+48.8584+002.2945/")
