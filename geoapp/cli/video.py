"""The video part of ``python -m geoapp predict``: flags, keyframes-only output, and the hooks the predict
command calls (videos among the inputs become one record per keyframe, source ``clip.mp4#t=12.48``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "video", "Video files among the PATHs (MP4, MOV, MKV, WebM, AVI; given by name or glob: folder scans pick "
                 "photos only) give one record per keyframe: the sharpest distinct frames of each shot.")
    group.add_argument("--keyframes-only", metavar="DIR", default=None,
                       help="write each video's keyframes to DIR as JPEGs (time in the name) with "
                            "NAME_keyframes.json/.csv sidecars, and predict nothing (no model is loaded)")
    group.add_argument("--video-mode", choices=("auto", "keyframes", "sampled"), default="auto",
                       help="auto (default): the codec's keyframes, gaps over 20 s sampled every 2 s; keyframes: "
                            "those only; sampled: decode every frame, analyse one per --sample-seconds")
    group.add_argument("--sample-seconds", type=float, default=2.0, metavar="S",
                       help="seconds between analysed frames where sampling (default 2; 0 = every frame)")
    group.add_argument("--keyframes-per-shot", type=int, default=3, metavar="N", help="at most this many per shot (default 3)")
    group.add_argument("--max-keyframes", type=int, default=60, metavar="N", help="at most this many per video (default 60)")
    group.add_argument("--max-video-mb", type=float, default=4096.0, metavar="MB",
                       help="refuse larger video files (default 4096 MB)")
    group.add_argument("--keep-frames", default="", metavar="TIMES",
                       help="frames (times in seconds as in clip.mp4#t=12.48, comma-separated; or 'all') kept in "
                            "the video's fused record even when flagged as outliers")
    group.add_argument("--no-video-fusion", action="store_true",
                       help="write the keyframe records only, without one fused record per video")


def _keep_frames(text: str):
    text = (text or "").strip()
    if text.lower() == "all":
        return "all"
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--keep-frames takes times in seconds like 12.48,30.5 or 'all'; got {text!r}") from None


def video_settings(args: argparse.Namespace):
    from geoapp.engine.video_inputs import VideoSettings
    from geoapp.imaging.video import KeyframeOptions, VideoLimits

    options = KeyframeOptions(max_per_shot=args.keyframes_per_shot, max_per_video=args.max_keyframes,
                              mode=args.video_mode, sample_interval_s=args.sample_seconds, file_sha256=True)
    limits = VideoLimits(max_file_mb=args.max_video_mb)
    options.check()  # bad numbers fail before anything loads
    limits.check()
    fuse = None
    if not getattr(args, "no_video_fusion", False):
        from geoapp.engine.video_fusion import FrameFusion

        fuse = FrameFusion(levels=getattr(args, "area", None) or (0.9,), keep=_keep_frames(args.keep_frames),
                           clues=tuple(getattr(args, "clues", None) or ()),
                           calibration=getattr(args, "calibration", None), top_k=getattr(args, "top_k", 5),
                           merge_km=getattr(args, "merge_km", None) or 25.0)
    return VideoSettings(keyframes=options, limits=limits, fuse=fuse)


def predict(locator, keys: list[str], options, args: argparse.Namespace, progress=None) -> list:
    """Predictions for photos and videos, in input order (the predict command's text formats and records)."""
    from geoapp.engine.video_inputs import predict_with_videos

    return predict_with_videos(locator, keys, options, video_settings(args), progress=progress)


def keys_to_do(output, keys: list[str]) -> list[str]:
    """Inputs without their records in a record output (a video needs all of its keyframes' records)."""
    from geoapp.engine.output import read_records
    from geoapp.engine.video_inputs import complete_videos, is_video_key

    done = output.done()
    videos = [k for k in keys if k not in done and is_video_key(k)]
    finished = complete_videos(read_records(output.folder, output.format)) if videos and output.resumed else set()
    return [k for k in keys if k not in done and k not in finished]


def count_with_records(output, keys: list[str]) -> int:
    """Inputs with at least one record (a video: any of its keyframes, or its error)."""
    done = output.done()
    videos = {d.rsplit("#t=", 1)[0] for d in done if "#t=" in d}
    return sum(1 for k in keys if k in done or k in videos)


def check_engine(args: argparse.Namespace, keys: list[str]) -> None:
    from geoapp.engine.video_inputs import is_video_key

    video_settings(args)  # bad video options fail before the model loads
    videos = [k for k in keys if is_video_key(k)]
    if videos and args.engine == "ray":
        raise ValueError(f"videos ({videos[0]}{' …' if len(videos) > 1 else ''}) run on the local engine for now: "
                         "drop --engine ray, or run the videos in a separate command")


def _stem(key: str, used: set[str]) -> str:
    stem, n = Path(key).stem or "video", 1
    while (candidate := stem if n == 1 else f"{stem}-{n}") in used:
        n += 1
    used.add(candidate)
    return candidate


def keyframes_only(args: argparse.Namespace, keys: list[str]) -> int:
    """``--keyframes-only DIR``: every video's keyframes as files; a message per file that fails."""
    import os

    from geoapp.engine.video_export import write_keyframes
    from geoapp.engine.video_inputs import is_video_key
    from geoapp.imaging.video import VideoLoadError, extract_keyframes

    settings = video_settings(args)
    folder = Path(args.keyframes_only)
    used: set[str] = set()
    failed = skipped = 0
    for key in keys:
        if not is_video_key(key):
            skipped += 1
            print(f"  {key}: not a video, skipped (--keyframes-only writes video keyframes)", file=sys.stderr)
            continue
        try:
            video = extract_keyframes(os.path.expanduser(key), settings.keyframes, settings.limits,
                                       source=key)
        except VideoLoadError as error:
            failed += 1
            print(f"  {error}", file=sys.stderr)
            continue
        written = write_keyframes(video, folder, _stem(key, used))
        print(f"{key}: {len(video.keyframes)} keyframe(s) from {len(video.shots)} shot(s) -> {written[-2]}"
              + ("" if video.complete else f" ({video.notes[0]})"), file=sys.stderr)
    print(f"{len(keys)} inputs: {len(keys) - failed - skipped} videos written to {folder}, {failed} failed, "
          f"{skipped} skipped", file=sys.stderr)
    done = len(keys) - failed - skipped
    return 1 if (failed and args.strict) or (failed and not done) else 0  # 1 also when no video was written
