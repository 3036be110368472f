"""Videos among a batch's inputs (geoapp.engine.video_inputs), with the torch-free toy family."""

from __future__ import annotations

import json
import shutil

import pytest

from geoapp.engine.video_inputs import VideoSettings, complete_videos, is_video_key, predict_with_videos
from geoapp.families import PredictOptions, registry
from geoapp.results.formats import to_records
from geoapp.results.prediction import Prediction
from tests.imaging.video.clips import three_shots

from ..conftest import shared_path


@pytest.fixture(scope="module")
def family():
    """The toy family, registered for these tests only (a registry with it fails the registry's own checks)."""
    from tests.families import toy

    registry.register(toy.SPEC)
    yield registry.get("toy").load()
    registry.unregister("toy")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine-video") / "clip.mkv"
    three_shots(path)
    return path


def test_videos_and_photos_keep_input_order_with_a_record_per_keyframe(family, clip, tmp_path):
    photo = sorted(shared_path("im2gps3k-dev").glob("*.jpg"))[0]
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    records = predict_with_videos(family, [str(photo), str(clip), str(empty), str(photo)], PredictOptions(top_k=1))
    sources = [r.source for r in records]
    frames = [r for r in records if r.source.startswith(f"{clip}#t=")]
    assert sources == [str(photo), *[f.source for f in frames], str(empty), str(photo)]
    assert [f.image["video"]["shot"] for f in frames] == [0, 1, 2]
    assert all(f.ok and f.model["family"] == "toy" and family.caveat in f.warnings for f in frames)
    assert [f.image["video"]["time_s"] for f in frames] == [float(f.source.split("#t=")[1]) for f in frames]
    failed = records[-2]
    assert not failed.ok and failed.error == "empty.webm: the file is empty (0 bytes)" and failed.model["family"] == "toy"


def test_the_fusion_seam_adds_one_record_per_video(family, clip):
    seen = []

    def fuse(video, predictions):
        seen.append((len(video.keyframes), [p.source for p in predictions]))
        return Prediction(source=str(clip), parameters={"fused_from": len(predictions)})

    records = predict_with_videos(family, [str(clip)], PredictOptions(top_k=1), VideoSettings(fuse=fuse))
    assert len(seen) == 1 and seen[0][0] == len(records) - 1
    assert records[-1].source == str(clip) and records[-1].parameters == {"fused_from": len(records) - 1}


def test_a_video_is_complete_only_with_all_its_keyframe_records(family, clip):
    records = to_records(predict_with_videos(family, [str(clip)], PredictOptions(top_k=1)))
    assert len(records) == 3 and json.loads(records[0]["image_json"])["video"]["keyframes"] == 3
    assert complete_videos(records) == {str(clip)}
    assert complete_videos(records[:2]) == set()  # cut short: the video is done again (duplicates are skipped)


def test_which_inputs_are_videos(clip, tmp_path):
    bare = tmp_path / "recording"  # no suffix: the first bytes decide
    shutil.copy(clip, bare)
    photo_named = tmp_path / "looks.jpg"
    shutil.copy(clip, photo_named)
    assert is_video_key(str(clip)) and is_video_key(str(bare))
    assert not is_video_key(str(photo_named))  # a photo suffix is never sniffed (the photo path reports it)
    assert not is_video_key("s3://bucket/clip.mp4")  # remote videos: not in this version
