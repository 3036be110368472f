"""Command line: ``python -m geoapp predict|models|gallery ...`` and the parser of every command.

Heavy imports (torch, open_clip) happen inside the commands that need them, so that
``weights status`` and ``--help`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geoapp.cli import fusion as cli_fusion
from geoapp.cli import video as cli_video
from geoapp.cli.cases import add_case_parser as _add_case
from geoapp.cli.family import add_family_options, add_model_arguments
from geoapp.cli.runtime import add_runtime_commands as _add_runtime
from geoapp.cli.serve import add_serve_command as _add_serve
from geoapp.cli.tiles import add_tiles_commands as _add_tiles
from geoapp.cli.weights import add_weights_commands as _add_weights
from geoapp.cli.weights import settings_from_args as _settings
from geoapp.engine.ray_local import add_engine_commands as _add_engine

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = ("Exit status: 0 done (predict: at least one input predicted); 1 nothing could be done (predict: "
              "every input failed, or any failed with --strict; a missing file, source or weights); 2 bad "
              "arguments (flags, region, no inputs); 130 interrupted.")


def program_name(argv0: str | None = None) -> str:
    """How the user ran us, for usage lines: ``geoapp`` (the installed command) or ``python -m geoapp``."""
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    return name if name.startswith("geoapp") and not name.endswith(".py") else "python -m geoapp"


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict where photos were taken",
                       description="Predict where photos were taken. PATHs are files, folders (searched "
                                   "recursively for images), glob patterns, object-storage URLs (s3://, gs:// ...; "
                                   "read with pyarrow.fs) or tables (.csv/.parquet) with a column of paths or URLs "
                                   "(--input-column). Every input gets a record.",
                       epilog="Record outputs (--output results.parquet or results.jsonl) are folders of parts, "
                              "written as results arrive; rerunning the same command skips inputs already there "
                              "(resume). Read them with pandas.read_parquet('results.parquet') or "
                              "geoapp.engine.output.read_records('results.jsonl'). --engine ray runs on a Ray "
                              "cluster (a local one for the run by default; Ray's usage statistics are off). "
                              + EXIT_CODES)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--top-k", type=int, default=5, help="distinct candidate places per image (default 5)")
    p.add_argument("--region", default=None,
                   help='restrict the search: country ("FR", "France"), continent ("Europe"), '
                        '"circle:LAT,LON,KM", "bbox:SOUTH,WEST,NORTH,EAST", or a GeoJSON file')
    p.add_argument("--tencrop", action="store_true", help="average the logits of 10 crops (paper evaluation)")
    add_model_arguments(p)
    add_family_options(p)
    p.add_argument("--merge-km", type=float, default=None,
                   help="merge candidates closer than this (default 25 km; finer inside small regions)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--format", choices=("json", "csv", "geojson", "kml", "parquet", "jsonl"), default=None,
                   help="json (default), csv, geojson, or flat records: parquet, jsonl (default from the "
                        "--output suffix .parquet/.jsonl)")
    p.add_argument("--output", "-o", default=None, help="write here instead of standard output")
    p.add_argument("--surface", action="store_true", help="include the probability surface in JSON output")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 if any input failed (without it: only when every input failed)")
    p.add_argument("--input-column", default=None,
                   help="the column of paths/URLs in a .csv/.parquet input (default: path)")
    p.add_argument("--part-rows", type=int, default=1000, help="records per output part (parquet/jsonl)")
    cli_fusion.add_predict_options(p)
    cli_video.add_video_arguments(p)
    engine = p.add_argument_group("batch engine")
    engine.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local (default): this process; ray: a Ray cluster, one model per worker "
                             "(needs --output .parquet/.jsonl)")
    engine.add_argument("--address", default=None,
                        help="Ray cluster to join: auto, ray://HOST:10001 ... (default: start a local one for "
                             "this run, stopped at the end)")
    engine.add_argument("--workers", type=int, default=None,
                        help="Ray workers, each holding one model (default: CPU cores / --cpus-per-worker; "
                             "1 with --device cuda)")
    engine.add_argument("--cpus-per-worker", type=int, default=1, help="CPU cores (torch threads) per Ray worker")
    engine.add_argument("--gpus-per-worker", type=float, default=None,
                        help="GPUs per Ray worker (default: 1 with --device cuda, else 0)")
    engine.add_argument("--no-worker", action="store_true",
                        help="predict in this process even when a local worker (`geoapp serve`) with the same "
                             "model options is running (by default it is used: no model load per call)")
    p.set_defaults(handler=_cmd_predict)


def _output_format(args: argparse.Namespace) -> str:
    from geoapp.engine.output import format_for

    if args.format:
        return args.format
    return (format_for(args.output) if args.output else None) or "json"


def _cmd_predict(args: argparse.Namespace) -> int:
    from geoapp.engine.inputs import expand_inputs

    keys = expand_inputs(args.paths, args.input_column)
    if not keys:
        print("error: no input files", file=sys.stderr)
        return EXIT_USAGE
    if args.keyframes_only:
        return cli_video.keyframes_only(args, keys)
    region = None
    if args.region:  # a bad region fails before the model loads
        from geoapp.geo.regions import parse_region

        region = parse_region(args.region)
    if not 1 <= args.top_k <= 1000:
        raise ValueError(f"--top-k must be between 1 and 1000; got {args.top_k}")
    fmt = _output_format(args)
    args.clues = cli_fusion.check_predict_args(args, fmt)  # a bad clue fails before the model loads
    if fmt in ("parquet", "jsonl"):
        if not args.output:
            raise ValueError(f"--format {fmt} writes a folder of parts: give --output (e.g. results.{fmt})")
        return _predict_records(args, keys, fmt, region)
    if args.engine == "ray":
        raise ValueError("--engine ray writes records: give --output results.parquet (or results.jsonl)")
    return _predict_text(args, keys, fmt, region)


def _predict_text(args: argparse.Namespace, keys: list[str], fmt: str, region) -> int:
    from tqdm import tqdm

    from geoapp.cli.predict_route import run_text

    with tqdm(total=len(keys), unit="img", file=sys.stderr, disable=None, desc="predict") as bar:
        result = run_text(args, keys, fmt, region, bar)
    text = result.text
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
    failed = result.failed
    print(f"{result.count} inputs: {result.count - len(failed)} predicted, {len(failed)} failed", file=sys.stderr)
    for error in failed:
        print(f"  {error}", file=sys.stderr)
    return _predict_status(result.count, len(failed), args.strict)


def _predict_status(ran: int, failed: int, strict: bool) -> int:
    """1 when nothing was predicted (scripts must see it), or with --strict when anything failed."""
    return EXIT_FAILED if failed and (failed == ran or strict) else EXIT_OK


def _predict_records(args: argparse.Namespace, keys: list[str], fmt: str, region) -> int:
    """Flat records into a folder of parts (resumable), by the local engine or on Ray."""
    import os

    from tqdm import tqdm

    from geoapp.cli.predict_job import predict_options
    from geoapp.cli.predict_route import RecordsRunner
    from geoapp.engine.output import PartsOutput

    output = PartsOutput(args.output, fmt, part_rows=args.part_rows)
    cli_video.check_engine(args, keys)
    todo = cli_video.keys_to_do(output, keys)
    if output.resumed:
        print(f"Resuming {args.output}: {len(keys) - len(todo)} of {len(keys)} inputs already have a record.",
              file=sys.stderr)
    options = predict_options(args, region)
    failed = ran = 0  # records this run (a video gives one per keyframe) and how many of them failed
    if todo and args.engine == "ray":
        summary = _predict_on_ray(args, keys, output, options, len(todo))
        failed, ran = summary["failed"], summary["written"]
    elif todo:
        with RecordsRunner(args, region) as runner, \
                tqdm(total=len(todo), unit="img", file=sys.stderr, disable=None, desc="predict") as bar:
            try:
                step = max(1, args.batch_size) * 4  # records reach the output (and its parts) as they come
                for start in range(0, len(todo), step):
                    records = runner.records(todo[start:start + step], bar)
                    output.add(records)
                    failed += sum(1 for r in records if not r["ok"])
                    ran += len(records)
            finally:
                output.flush()
    total = cli_video.count_with_records(output, keys)
    reader = "pandas.read_parquet" if fmt == "parquet" else "geoapp.engine.output.read_records"
    print(f"{len(keys)} inputs: {total} have a record in {args.output} ({len(todo)} this run, {failed} of them "
          f"failed). Read it with {reader}({os.fspath(args.output)!r}).", file=sys.stderr)
    return _predict_status(ran, failed, args.strict)


def _predict_on_ray(args: argparse.Namespace, keys: list[str], output, options, todo: int) -> dict:
    import os

    from tqdm import tqdm

    from geoapp.cli.family import resolve_family_from_args
    from geoapp.engine import ray_engine
    from geoapp.engine.inputs import is_url

    spec, load_options = resolve_family_from_args(args)
    cuda = str(args.device or "").startswith("cuda")
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else (1.0 if cuda else 0.0)
    cpus = max(1, args.cpus_per_worker)
    workers = args.workers or (1 if gpus else max(1, (os.cpu_count() or 1) // cpus))
    job = ray_engine.RayJob(family=spec.key, load=load_options, predict=options, workers=workers,
                            cpus_per_worker=cpus, gpus_per_worker=gpus, batch_size=max(1, args.batch_size))
    weights = "RANDOM backbone weights" if load_options.random else "pretrained"
    where = args.address or "a local Ray cluster"
    print(f"Ray: {workers} worker(s) x {cpus} CPU{f' + {gpus:g} GPU' if gpus else ''} on {where}, "
          f"each loading {spec.key} ({weights})...", file=sys.stderr)
    started = ray_engine.connect(args.address, num_cpus=None if args.address else max(os.cpu_count() or 1,
                                                                                      workers * cpus))
    locations = [k if is_url(k) or os.path.isabs(k) else os.path.abspath(k) for k in keys]
    try:
        with tqdm(total=todo, unit="img", file=sys.stderr, disable=None, desc="predict (ray)") as bar:
            return ray_engine.run(keys, job, output, progress=bar.update, locations=locations)
    finally:
        if started:
            ray_engine.disconnect()


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="every model family and trained variant: input, capabilities, weights (offline)",
                       description="Every registered model family and your trained variants (family:tag), with "
                                   "the input they are made for, what they can do and whether their weights are here.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--weights-dir", default=None, help="extra folder to look in (or $GEOAPP_WEIGHTS_DIR)")
    p.set_defaults(handler=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from geoapp.families import registry

    settings = _settings(args)
    records = []
    for spec in registry.families():
        missing = spec.missing_files(settings)
        records.append({
            "key": spec.key, "label": spec.label, "description": spec.description, "input": spec.input_domain,
            "caveat": spec.caveat, "capabilities": spec.capabilities.names(), "members": list(spec.members),
            "options": [option.name for option in spec.options], "ready": not missing,
            "missing": [{"file": w.filename, "fix": w.fix_hint()} for w in missing],
            "variant_of": spec.key.split(":")[0] if spec.variant else None,
            "auto_priority": spec.auto_priority,
        })
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
        return EXIT_OK
    chosen, _ = registry.choose(settings=settings)
    for record in records:
        mark = "ready  " if record["ready"] else "MISSING"
        auto = "  <- auto" if record["key"] == chosen.key else ""
        print(f"[{mark}] {record['key']}: {record['label']}{auto}")
        print(f"          input: {record['input']}   can: {', '.join(record['capabilities'])}"
              + (f"   combines: {', '.join(record['members'])}" if record["members"] else "")
              + (f"   options: {', '.join('--' + o.replace('_', '-') for o in record['options'])}" if record["options"]
                 else ""))
        print(f"          {record['description']}")
        if record["caveat"]:
            print(f"          caveat: {record['caveat']}")
        for item in record["missing"]:
            print(f"          missing {item['file']}: {item['fix']}")
    print(f"\nauto = {chosen.key}. Trained variants (family:tag) are read from {settings.model_variants_dir}.")
    return EXIT_OK


def _add_gallery(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gallery", help="prebuilt GPS galleries for the retrieval families (dense global gallery)")
    gsub = p.add_subparsers(dest="gallery_command", required=True)
    b = gsub.add_parser(
        "build-dense", help="embed a global dense gallery (land grid + MP-16) once and index it (IVF-PQ)",
        description="Embed a near-equal-area grid over land plus GeoCLIP's 100K MP-16 points with GeoCLIP's "
                    "location encoder, in chunks (resumable: a rerun skips finished parts), then build an "
                    "IVF-PQ index. Writes $GEOAPP_CACHE_DIR/galleries/NAME/. The default 3.8 km spacing gives "
                    "10.3 M points: about 30-60 min on a 2-core CPU and 10.5 GB of float16 embeddings. "
                    "Use it with --gallery dense.")
    b.add_argument("--spacing-km", type=float, default=3.8, help="grid spacing over land (default 3.8 km)")
    b.add_argument("--name", default=None, help="gallery folder name (default: dense, or dense-SPACINGkm)")
    b.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    b.add_argument("--chunk", type=int, default=262144, help="points per embedding part (default 262144)")
    b.add_argument("--heads", default="pretrained",
                   help="GeoCLIP heads: pretrained (the geoclip package) or a geoapp heads checkpoint")
    b.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                   help="encoder MLP precision (default bf16: ~2x faster on CPU, cosine ≥ 0.9999 to fp32; the "
                        "Fourier phases are always fp32)")
    b.add_argument("--nlist", type=int, default=None,
                   help="IVF cells of the IVF-PQ index (default 1024, nprobe = nlist/32)")
    b.add_argument("--no-index", action="store_true", help="embed only; a later run builds the index")
    b.set_defaults(handler=_cmd_gallery_build_dense)


def _cmd_gallery_build_dense(args: argparse.Namespace) -> int:
    import time

    from geoapp.galleries.dense import build_dense

    start = time.perf_counter()
    result = build_dense(args.spacing_km, name=args.name, device=args.device, chunk=args.chunk, heads=args.heads,
                         build_index=not args.no_index, precision=args.precision, nlist=args.nlist, log=lambda m: print(m, file=sys.stderr))
    m = result.manifest
    sizes = m.get("disk_bytes", {})
    print(f"{m['name']}: {m['points']:,} points ({m['land_points']:,} land grid at {m['spacing_km']:g} km + "
          f"{m['mp16_points']:,} MP-16), {len(m['parts_done'])}/{m['parts']} parts, "
          f"embeddings {sizes.get('embeddings', 0) / 1e9:.2f} GB, index {sizes.get('index', 0) / 1e9:.2f} GB, "
          f"this run {time.perf_counter() - start:.0f} s; timings {m['timings_s']} -> {result.folder}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=program_name(), description="geoapp: image geolocation workbench",
                                     epilog=EXIT_CODES)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_models(sub)
    _add_weights(sub)
    _add_gallery(sub)
    _add_case(sub)
    _add_serve(sub)
    _add_engine(sub)
    _add_runtime(sub)
    cli_fusion.add_commands(sub)
    groups = {"root": sub, "tiles": _add_tiles(sub)}
    _add_family_commands(groups)
    return parser


def _add_family_commands(groups: dict) -> None:
    """Commands a family brings along (e.g. `tiles embed` of the map-tile family), from its spec."""
    import importlib

    from geoapp.families import registry

    for spec in registry.families(include_variants=False):
        if spec.cli_commands:
            module_name, _, function = spec.cli_commands.partition(":")
            getattr(importlib.import_module(module_name), function)(groups)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `serve --detach` starts itself again with them
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        # Bad regions, unknown models, missing weights: one readable line, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ValueError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
