"""One fused map per video: same-shot tempering, outliers flagged and left out with the reason, put back."""

from __future__ import annotations

import pytest

from geoapp.engine.video_fusion import FrameFusion, fused_record
from geoapp.fusion.video import SAME_SHOT, frame_tempering, fuse_frames
from geoapp.geo.distance import haversine_km

from .conftest import synthetic_prediction

CAIRO = (30.05, 31.25)
SANTIAGO = (-33.45, -70.66)


def frame(t: float, shot: int, where: tuple[float, float], seed: int, phash: str):
    prediction = synthetic_prediction(f"clip.mp4#t={t:.2f}", *where, spread_deg=0.6, seed=seed)
    prediction.image = {"video": {"time_s": t, "shot": shot, "phash": phash, "file": "clip.mp4",
                                  "duration_s": 20.0, "video_sha256": "ab" * 32}}
    return prediction


def frames_with_a_cut():
    """Four frames over Cairo in two shots, then a cut to Santiago (t = 12)."""
    hashes = ("0" * 16, "f" * 16, "00000000ffffffff", "ffff0000ffff0000", "0f0f0f0f0f0f0f0f")  # 32+ bits apart
    return [frame(0.0, 0, CAIRO, 1, hashes[0]), frame(2.0, 0, CAIRO, 2, hashes[1]), frame(5.0, 1, CAIRO, 3, hashes[2]),
            frame(8.0, 1, CAIRO, 4, hashes[3]), frame(12.0, 2, SANTIAGO, 5, hashes[4])]


def test_same_shot_frames_are_tempered_and_other_shots_count_fully():
    frames = frames_with_a_cut()
    t = frame_tempering(frames)
    assert t.similarity[0][1] == SAME_SHOT and t.similarity[0][2] == 0.0  # different pHashes, different shots
    assert t.weights[0] == pytest.approx(1 / (1 + SAME_SHOT)) and t.weights[4] == 1.0
    twin = frame(1.0, 0, CAIRO, 9, "0" * 16)  # the same picture as frame 0 (hash 0 bits apart)
    assert frame_tempering([frames[0], twin]).weights == (0.5, 0.5)


def test_the_cut_to_another_place_is_flagged_left_out_and_can_be_put_back():
    frames = frames_with_a_cut()
    fusion = fuse_frames("clip.mp4", frames)
    assert [o.source for o in fusion.outliers] == ["clip.mp4#t=12.00"]
    outlier = fusion.outliers[0]
    assert outlier.share < 0.05 and "disagrees with the other frames" in outlier.reason
    assert outlier.distance_km == pytest.approx(haversine_km(*SANTIAGO, *CAIRO), rel=0.1)
    assert fusion.used == [f.source for f in frames[:4]]
    top = fusion.posterior.grid.lat[fusion.posterior.mass.argmax()], fusion.posterior.grid.lon[fusion.posterior.mass.argmax()]
    assert haversine_km(*top, *CAIRO) < 150
    back = fuse_frames("clip.mp4", frames, keep=(12.0,))
    assert back.outliers == [] and back.kept == ["clip.mp4#t=12.00"] and len(back.used) == 5
    assert fuse_frames("clip.mp4", frames, keep="all").used == back.used


def test_no_majority_leaves_every_frame_in_and_says_so():
    frames = [frame(0.0, 0, CAIRO, 1, "0" * 16), frame(4.0, 1, SANTIAGO, 2, "f" * 16),
              frame(8.0, 2, (35.7, 139.7), 3, "00000000ffffffff")]
    fusion = fuse_frames("clip.mp4", frames)
    assert fusion.outliers == [] and len(fusion.used) == 3 and "no majority" in fusion.notes[0]


def test_fused_record_carries_areas_outliers_and_the_video():
    record, _ = fused_record("clip.mp4", frames_with_a_cut(), FrameFusion(levels=(0.5, 0.9), top_k=3))
    assert record.ok and record.source == "clip.mp4" and record.image["fused_video"] is True
    fusion = record.image["fusion"]
    assert [a["level"] for a in fusion["areas"]] == [0.5, 0.9]
    assert fusion["areas"][0]["area_km2"] < fusion["areas"][1]["area_km2"]
    assert fusion["areas"][1]["calibrated"] is False and fusion["areas"][1]["geometry"]["coordinates"]
    assert [o["time_s"] for o in fusion["outliers"]] == [12.0] and len(fusion["used"]) == 4
    assert record.image["video"]["duration_s"] == 20.0 and "time_s" not in record.image["video"]
    assert haversine_km(record.top.lat, record.top.lon, *CAIRO) < 150
    assert any(w.startswith("outlier left out: clip.mp4#t=12.00") for w in record.warnings)


def test_a_video_without_any_predicted_frame_gets_an_error_record():
    broken = frame(0.0, 0, CAIRO, 1, "0" * 16)
    broken.error, broken.candidates, broken.surface = "clip.mp4: damaged frame", [], None
    record, fusion = fused_record("clip.mp4", [broken])
    assert not record.ok and "no fused map" in record.error and fusion.posterior is None
