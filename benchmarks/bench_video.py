"""Keyframe selection speed: ours vs the plain approach vs the FFmpeg command line, and end to end.

Same videos for all: a generated 1080p H.264 flyover (``training.video.flyover``: NASA Blue Marble, a cut to a
studio and to other places, sensor grain for a realistic bitrate, x264 veryfast CRF 23, its default GOP of
250 frames with scene-cut keyframes), 1 minute rendered and encoded, longer clips that minute repeated by
stream copy; made once into ``--clip-dir``. Every file is read once before timing (all runs read from the
page cache).

- **ours**: ``extract_keyframes(path)`` (auto mode: the codec's keyframes only, reached by seeking through the
  MP4 index; shots, sharpness, hashes); **ours, reading** the same with ``seek=False``: every packet read,
  only the keyframes decoded (what happens for Matroska/WebM/AVI, which index only some frames);
- **plain**: decode every frame and analyse every frame with the same code (``mode="sampled"``,
  ``sample_interval_s=0``: hash, sharpness and cut test per frame), then pick;
- **ffmpeg**: ``ffmpeg -skip_frame nokey -i CLIP -f null -`` (keyframes decoded, nothing written) and the same
  writing each keyframe as a JPEG (``-fps_mode vfr -q:v 3 %05d.jpg``);
- **end to end**: ``geoapp.engine.video_inputs.predict_with_videos`` (keyframes + prediction of each) with
  SatWorld and with GeoCLIP's ViT-L/14 architecture with random weights (``backbone_weights="random"``: the
  cost of the real model, meaningless answers); model loading and gallery preparation timed apart.

Wall seconds (best of ``--repeat``) and CPU seconds (this process's threads, or FFmpeg's) are both reported:
on a shared machine the CPU ratio is the steadier one. Machine and ``os.getloadavg()`` are recorded.

    python benchmarks/bench_video.py [--minutes 1,5] [--clip-dir DIR] [--repeat 2] [--models satworld,geoclip] [--json OUT]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
from _common import bench_parser, emit, load_average, machine_line  # puts the repository on sys.path

from geoapp.fileio import move_into_place
from geoapp.imaging.video import KeyframeOptions, extract_keyframes
from geoapp.settings import get_settings
from training.video.flyover import ClipSpec, demo_segments, repeat_clip, write_clip


def make_clip(folder: Path, minutes: float) -> Path:
    """The 1-minute flyover is rendered and encoded; longer clips repeat it (stream copy, timestamps shifted):
    encoding minutes of 1080p takes an hour on a busy 2-core machine, and decoding costs the same per frame."""
    path = folder / f"flyover-1080p-{minutes:g}min.mp4"
    if not path.is_file():
        print(f"generating {path} (once) ...", file=sys.stderr)
        partial = path.with_name(f".{path.stem}.partial.mp4")  # an interrupted run leaves no half clip to reuse
        if minutes == 1:
            write_clip(partial, ClipSpec(demo_segments(60.0), size=(1920, 1080), fps=25.0, grain=8.0,
                                         preset="veryfast", crf=23))
        else:
            if minutes != int(minutes):
                raise ValueError("clips are whole minutes: the 1-minute render repeated")
            repeat_clip(make_clip(folder, 1), partial, int(minutes))
        move_into_place(partial, path)
    return path


def clip_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames
        seconds = float(stream.duration * stream.time_base)
        keys = sum(1 for entry in stream.index_entries if entry.is_keyframe)
    return {"file": path.name, "seconds": round(seconds, 2), "frames": frames, "keyframes": keys,
            "mbit_s": round(path.stat().st_size * 8 / seconds / 1e6, 2)}


def timed(function, repeat: int) -> tuple[object, dict]:
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, {"wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3), "walls": [round(w, 3) for w in walls]}


def ffmpeg(args: list[str], repeat: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *args], check=True)
        walls.append(time.perf_counter() - wall)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {"wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3), "walls": [round(w, 3) for w in walls]}


def selection(path: Path, facts: dict, repeat: int) -> dict:
    out: dict = {"clip": facts, "load_before": load_average()}
    ours, out["ours"] = timed(lambda: extract_keyframes(path), repeat)
    out["ours"].update(decoded=ours.stats.decoded_frames, chosen=len(ours.keyframes), shots=len(ours.shots),
                       seeking=ours.stats.seeking, packets_read=ours.stats.packets, notes=ours.notes)
    reading, out["ours_reading"] = timed(lambda: extract_keyframes(path, KeyframeOptions(seek=False)), repeat)
    out["ours_reading"].update(decoded=reading.stats.decoded_frames, chosen=len(reading.keyframes),
                               packets_read=reading.stats.packets,
                               same_keyframes=[k.time_s for k in reading.keyframes] == [k.time_s for k in ours.keyframes])
    plain, out["plain"] = timed(lambda: extract_keyframes(path, KeyframeOptions(mode="sampled",
                                                                               sample_interval_s=0.0)), 1)
    out["plain"].update(decoded=plain.stats.decoded_frames, chosen=len(plain.keyframes), shots=len(plain.shots))
    if shutil.which("ffmpeg"):
        out["ffmpeg_null"] = ffmpeg(["-skip_frame", "nokey", "-i", str(path), "-an", "-f", "null", "-"], repeat)
        with tempfile.TemporaryDirectory() as folder:
            out["ffmpeg_jpeg"] = ffmpeg(["-skip_frame", "nokey", "-i", str(path), "-an", "-fps_mode", "vfr",
                                         "-q:v", "3", f"{folder}/%05d.jpg"], repeat)
            out["ffmpeg_jpeg"]["written"] = len(os.listdir(folder))
    for name in ("ours", "ours_reading", "plain", "ffmpeg_null", "ffmpeg_jpeg"):
        if name in out:
            out[name]["video_frames_per_s"] = round(facts["frames"] / out[name]["wall_s"], 1)
    out["plain_over_ours"] = {k: round(out["plain"][k] / out["ours"][k], 1) for k in ("wall_s", "cpu_s")}
    if "ffmpeg_null" in out:
        for mine in ("ours", "ours_reading"):
            for ref in ("ffmpeg_null", "ffmpeg_jpeg"):
                out[f"{mine}_over_{ref}"] = {k: round(out[mine][k] / out[ref][k], 2) for k in ("wall_s", "cpu_s")}
    out["load_after"] = load_average()
    return out


def end_to_end(paths: list[Path], facts: list[dict], model: str) -> dict:
    import torch

    from geoapp import Geolocator
    from geoapp.engine.video_inputs import predict_with_videos
    from geoapp.families import PredictOptions

    start = time.perf_counter()
    locator = Geolocator.load(model, backbone_weights="random" if model == "geoclip" else None, device="cpu")
    locator.prepare()
    loading = time.perf_counter() - start
    rows = []
    for path, fact in zip(paths, facts):
        before = load_average()
        records, cost = timed(lambda: predict_with_videos(locator, [str(path)], PredictOptions(top_k=5)), 1)
        frames = sum(1 for r in records if r.ok)
        rows.append({"clip": fact["file"], "records": len(records), "keyframes": frames, **cost,
                     "s_per_video_minute": round(cost["wall_s"] / (fact["seconds"] / 60), 2),
                     "cpu_s_per_video_minute": round(cost["cpu_s"] / (fact["seconds"] / 60), 2),
                     "load_before": before, "load_after": load_average()})
    return {"model": model, "random_weights": model == "geoclip", "torch_threads": torch.get_num_threads(),
            "load_and_prepare_s": round(loading, 1), "clips": rows}


def main() -> None:
    parser = bench_parser(__doc__, device=False)
    parser.add_argument("--minutes", default="1,5", help="clip lengths in minutes (default 1,5)")
    parser.add_argument("--clip-dir", default=None, help="where the generated clips live (default: cache dir)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--models", default="satworld,geoclip", help="end-to-end models ('' for none)")
    args = parser.parse_args()
    folder = Path(args.clip_dir) if args.clip_dir else get_settings().cache_dir / "bench-video"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [make_clip(folder, float(m)) for m in args.minutes.split(",")]
    for path in paths:
        path.read_bytes()  # into the page cache: every run below reads from memory
    facts = [clip_facts(p) for p in paths]
    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if shutil.which("ffmpeg") else None
    report = {"machine": machine_line(), "load_start": load_average(), "pyav": av.__version__,
              "pyav_ffmpeg": ".".join(map(str, av.library_versions["libavcodec"])), "ffmpeg_cli": ffmpeg_version,
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "selection": []}
    for path, fact in zip(paths, facts):
        row = selection(path, fact, args.repeat)
        report["selection"].append(row)
        print(json.dumps({k: row[k] for k in row if k != "clip"} | {"clip": fact}), file=sys.stderr)
    report["end_to_end"] = [end_to_end(paths, facts, m) for m in args.models.split(",") if m]
    report["load_end"] = load_average()
    emit(report, args.json)


if __name__ == "__main__":
    main()
