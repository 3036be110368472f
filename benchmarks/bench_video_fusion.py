"""Video fusion accuracy: flyover clips over SatWorld's held-out places, with a cut to a studio and to another place.

Each clip (``training.video.flyover``, 320x180, 10 fps, a keyframe every second, x264 ultrafast): a flyover over a
held-out place A (4 s at 80 km/s, so that its keyframes differ and several are kept), a studio shot (2 s), a second
pass over A in another direction (4 s), then a cut to another held-out place B (2 s). Places: SatWorld's *test* split (the random land locations of its test cells, seeded, as
``training.fusion.sets``), never seen in training. Every keyframe is predicted by the shipped SatWorld and the
frames are fused (``geoapp.engine.video_fusion.FrameFusion``, defaults). Reported over the clips:

- fused top place within 750 km of A, vs the *median single frame* (per clip, the keyframe of median error among
  all its keyframes: what picking a frame blindly gives) and vs the mean single-frame rate over A's frames;
- outliers: share of studio frames and of B frames flagged, and of A frames wrongly flagged.

    python benchmarks/bench_video_fusion.py [--clips 20] [--seed 0] [--json OUT]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import bench_parser, emit, load_average, machine  # puts the repository on sys.path


SPEED = 80.0  # km/s over a 600 km window: views a second apart differ enough to be kept as separate keyframes


def held_out_places(count: int, seed: int) -> np.ndarray:
    from geoapp.galleries.gallery import Gallery
    from training.satworld.splits import SplitConfig, make_splits

    gallery = Gallery.default().coords
    splits = make_splits(gallery, SplitConfig())
    land = np.arange(len(splits.pool)) >= len(gallery)
    members = np.flatnonzero(land & (splits.pool_split == 2))
    rng = np.random.default_rng([SplitConfig().seed, 25, seed])
    return splits.pool[rng.choice(members, 2 * count, replace=False)]


def run(clips: int, seed: int, device: str) -> dict:
    from geoapp.api import Geolocator
    from geoapp.engine.video_fusion import FrameFusion
    from geoapp.engine.video_inputs import VideoSettings, predict_with_videos
    from geoapp.families import PredictOptions
    from geoapp.geo.distance import haversine_km
    from training.video.flyover import ClipSpec, Segment, write_clip

    places = held_out_places(clips, seed)
    family = Geolocator.load("satworld", device=device)
    rng = np.random.default_rng(seed)
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for i in range(clips):
            (a_lat, a_lon), (b_lat, b_lon) = places[2 * i], places[2 * i + 1]
            heading = float(rng.uniform(0, 360))
            spec = ClipSpec((Segment("flyover", 4.0, a_lat, a_lon, heading_deg=heading, speed_km_s=SPEED),
                             Segment("studio", 2.0),
                             Segment("flyover", 4.0, a_lat, a_lon, heading_deg=heading + 120.0, speed_km_s=SPEED),
                             Segment("flyover", 2.0, b_lat, b_lon, heading_deg=heading)),
                            size=(320, 180), fps=10.0, gop=10, preset="ultrafast")
            path = Path(folder) / f"clip{i:03d}.mp4"
            facts = write_clip(path, spec)
            records = predict_with_videos(family, [str(path)], PredictOptions.build(top_k=5),
                                          VideoSettings(fuse=FrameFusion()))
            frames, fused = records[:-1], records[-1]
            kinds = [("A", "studio", "A", "B")[facts.shot_of(p.image["video"]["time_s"])] for p in frames]
            errors = [float(haversine_km(p.top.lat, p.top.lon, a_lat, a_lon)) for p in frames]
            flagged = {o["source"] for o in fused.image["fusion"]["outliers"]}
            rows.append({"a": [float(a_lat), float(a_lon)], "b": [float(b_lat), float(b_lon)],
                         "fused_km": float(haversine_km(fused.top.lat, fused.top.lon, a_lat, a_lon)),
                         "median_frame_km": float(np.median(errors)), "kinds": kinds, "frame_km": errors,
                         "flagged": [p.source in flagged for p in frames], "notes": fused.image["fusion"]["notes"]})
    seconds = time.perf_counter() - start

    def rate(kind: str, values) -> float | None:
        chosen = [v for row in rows for k, v in zip(row["kinds"], values(row)) if k == kind]
        return round(float(np.mean(chosen)), 3) if chosen else None

    return {
        "clips": clips, "seed": seed, "model": "satworld (shipped)", "seconds": round(seconds, 1),
        "fused_within_750km": round(float(np.mean([r["fused_km"] <= 750 for r in rows])), 3),
        "median_frame_within_750km": round(float(np.mean([r["median_frame_km"] <= 750 for r in rows])), 3),
        "a_frames_within_750km": rate("A", lambda r: [e <= 750 for e in r["frame_km"]]),
        "median_fused_km": round(float(np.median([r["fused_km"] for r in rows])), 1),
        "median_of_median_frame_km": round(float(np.median([r["median_frame_km"] for r in rows])), 1),
        "flagged_studio": rate("studio", lambda r: r["flagged"]), "flagged_b_cut": rate("B", lambda r: r["flagged"]),
        "flagged_a_wrongly": rate("A", lambda r: r["flagged"]),
        "no_majority_clips": sum(1 for r in rows if r["notes"]), "rows": rows,
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    before = load_average()
    results = run(args.clips, args.seed, args.device)
    emit({"machine": machine(args.device), "load_average_before": before, **results}, args.json)


if __name__ == "__main__":
    main()
