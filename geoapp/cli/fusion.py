"""Command line for evidence fusion: ``predict --clue/--fuse/--area``, ``clues show``, ``calibrate``.

``geoapp.cli.main`` only calls the hooks below.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_SOLVED_ROWS = 100_000


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--area takes levels like 0.9 or 0.5,0.9; got {text!r}") from None
    if not levels or not all(0.0 < v < 1.0 for v in levels):
        raise argparse.ArgumentTypeError(f"credible levels must lie between 0 and 1 (e.g. 0.9); got {text!r}")
    return levels


def add_predict_options(p: argparse.ArgumentParser) -> None:
    """The fusion flags of ``predict``."""
    g = p.add_argument_group("evidence fusion (credible areas, clues, several photos)")
    g.add_argument("--clue", action="append", default=[], metavar="CLUE",
                   help='a clue, repeatable: "sun:time=2024-06-21T10:00:00Z,ratio=1.20,ratio_sd=0.05", '
                        '"tz:offset=+02:00,time=2024-06-21T12:00:00", "drive:left", "elevation:min=2000", '
                        '"coast:max_km=20", "exclude:FILE.geojson", "region:FR"')
    g.add_argument("--fuse", action="store_true", help="the photos show one place: multiply their maps (near-"
                                                       "duplicates count once) into one map")
    g.add_argument("--area", type=_levels, default=None, metavar="LEVELS",
                   help="credible areas to write, e.g. 0.9 or 0.5,0.8,0.9,0.95 (default with --clue/--fuse: 0.9)")
    g.add_argument("--calibration", default=None, metavar="NAME",
                   help="use the calibration of this name for the model (default: yours, else the shipped one)")


def fusion_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "clue", None) or getattr(args, "fuse", False) or getattr(args, "area", None))


def check_predict_args(args: argparse.Namespace, fmt: str):
    """Parse the clues before any model loads (a bad clue stops at once); None when fusion is off."""
    from geoapp.fusion import parse_clue, parse_clues

    if not fusion_requested(args) and fmt != "kml":
        return None
    if fmt not in ("json", "csv", "geojson", "kml"):
        raise ValueError(f"credible areas are written as json, csv, geojson or kml, not {fmt}")
    clues = parse_clues(args.clue)
    if getattr(args, "region", None) and not any(c.kind == "region" for c in clues):
        clues.append(parse_clue(f"region:{args.region}"))  # the search region is a hard clue of the map too
    return clues


def fused_text(args: argparse.Namespace, predictions: list, clues: list, fmt: str) -> str:
    """The output of ``predict`` with fusion: candidates plus credible areas (and the clue layers)."""
    from geoapp.fusion import Tempering, find_calibration, fuse, proposed_from_exif

    levels = args.area or (0.9,)
    ok = [p for p in predictions if p.ok and not p.image.get("fused_video")]  # a video's record has its areas
    calibrations = [find_calibration(p.model, args.calibration) for p in ok]
    posteriors = []
    if args.fuse and ok:
        posteriors.append(fuse(ok, clues, Tempering.from_hashes([_phash(p.source) for p in ok]),
                               calibrations=calibrations))
    else:
        posteriors += [fuse([p], clues, calibrations=[c]) for p, c in zip(ok, calibrations)]
    if not ok and clues:
        posteriors.append(fuse([], clues))
    for p in ok:
        proposal = proposed_from_exif((p.image.get("exif") or {}).get("capture_time"))
        if proposal is not None and proposal.text not in {c.text for c in clues}:
            print(f"{p.source}: EXIF proposes the clue {proposal.text!r} (EXIF can be edited: add --clue "
                  f"'{proposal.text}' to apply it)", file=sys.stderr)
    for post in posteriors:
        for warning in post.warnings + [f"conflict: {' x '.join(c.names)}: {c.detail}" for c in post.conflicts]:
            print(f"WARNING ({post.source}): {warning}", file=sys.stderr)
        for area in post.areas(levels):
            print(f"{post.source}: {area.summary()}", file=sys.stderr)
    return render(predictions, posteriors, levels, fmt)


def _phash(path: str) -> str | None:
    """64-bit perceptual hash of a photo (None when it cannot be read: it then counts as unrelated)."""
    from geoapp.imaging.phash import phash_hex

    return phash_hex(path)


def render(predictions: list, posteriors: list, levels: tuple[float, ...], fmt: str) -> str:
    from geoapp.results import formats

    if fmt == "json":
        data = json.loads(formats.to_json(predictions)) if predictions else []
        return json.dumps({"predictions": data, "fusion": [p.to_dict(levels) for p in posteriors]}, indent=2,
                          ensure_ascii=False)
    features = _area_features(posteriors, levels)
    if fmt == "geojson":
        base = json.loads(formats.to_geojson(predictions)) if predictions else {"features": [], "errors": []}
        base["features"] = base["features"] + features
        base["conflicts"] = [{"source": p.source, **c.to_dict()} for p in posteriors for c in p.conflicts]
        return json.dumps({"type": "FeatureCollection", **base}, indent=2, ensure_ascii=False)
    if fmt == "kml":
        from geoapp.results.kml import features_to_kml

        base = json.loads(formats.to_geojson(predictions))["features"] if predictions else []
        return features_to_kml("geoapp credible areas", "candidates and credible areas", base + features)
    return formats.to_csv(predictions) + "\n" + _areas_csv(features) if predictions else _areas_csv(features)


def _area_features(posteriors: list, levels: tuple[float, ...]) -> list[dict]:
    features = []
    for post in posteriors:
        features += [area.to_feature() for area in post.areas(levels)]
        features += [post.layer_feature(layer) for layer in post.layers if layer.kind != "photo"]
    return features


def _areas_csv(features: list[dict]) -> str:
    import io

    import shapely
    from shapely.geometry import shape

    from geoapp.results.textsafe import csv_cell

    buffer = io.StringIO()
    columns = ("kind", "source", "level", "mass", "area_km2", "parts", "calibrated", "calibration", "clues", "name",
               "share_of_globe", "wkt")
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for feature in features:
        props = dict(feature["properties"])
        props["clues"] = " | ".join(props.get("clues", []))
        props["wkt"] = shapely.to_wkt(shape(feature["geometry"]), rounding_precision=5) \
            if feature["geometry"].get("coordinates") else ""
        writer.writerow({k: csv_cell(v) for k, v in props.items() if k in columns})
    return buffer.getvalue()


# ----------------------------------------------------------------------------------- clues show
def add_commands(sub: argparse._SubParsersAction) -> None:
    """``clues show`` and ``calibrate``."""
    from geoapp.cli.family import add_family_options, add_model_arguments

    p = sub.add_parser("clues", help="map clues without a photo (sun and shadows, time zone, driving side ...)")
    csub = p.add_subparsers(dest="clues_command", required=True)
    s = csub.add_parser("show", help="each clue as a map layer, and where they all hold together",
                        description="Map clues without a photo: each clue as its own layer (what it is, how much of "
                                    "the globe it leaves) and their product with its credible areas. "
                                    "Clue syntax as for predict --clue.")
    s.add_argument("clues", nargs="+", metavar="CLUE")
    s.add_argument("--format", choices=("geojson", "json", "kml", "csv"), default="geojson")
    s.add_argument("--area", type=_levels, default=(0.9,), metavar="LEVELS")
    s.add_argument("--output", "-o", default=None)
    s.set_defaults(handler=_cmd_clues_show)

    c = sub.add_parser("calibrate", help="calibrate a model's credible areas on solved images (split conformal)",
                       description="Predict each solved image (CSV with columns path, lat, lon: your own solved "
                                   "cases or a benchmark), fit the model's map kernel on one half and store, for "
                                   "this model identity, the split-conformal thresholds from the other half: on new "
                                   "images of the same kind the calibrated 90 %% area then holds the truth in at "
                                   "least 90 %% of cases.")
    c.add_argument("--csv", required=True, help="solved images: columns path, lat, lon (paths relative to the CSV)")
    c.add_argument("--name", default="default", help="name of this calibration (default: default)")
    c.add_argument("--data", default=None, help="what the images are, shown with every calibrated area "
                                                "(default: the CSV's name and size)")
    c.add_argument("--note", default="", help="shown with every area it calibrates, after --data (e.g. what a "
                                              "coverage check on other images found)")
    c.add_argument("--output-dir", default=None, help="where to write it (default: your data folder's calibrations/)")
    c.add_argument("--seed", type=int, default=0, help="seed of the kernel-fit / calibration split and of the "
                                                       "randomised tie-breaking (recorded in the calibration)")
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--points-cache", default=None, metavar="FILE.npz",
                   help="keep the images' map points here (a rerun with the same model and images skips predicting)")
    add_model_arguments(c)
    add_family_options(c)
    c.set_defaults(handler=_cmd_calibrate)


def _write(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


def _cmd_clues_show(args: argparse.Namespace) -> int:
    from geoapp.fusion import fuse, parse_clues

    post = fuse([], parse_clues(args.clues))
    for layer in post.layers:
        print(f"{layer.name}: {layer.description}; leaves {layer.share_of_globe(post.grid):.2%} of the globe",
              file=sys.stderr)
    for warning in post.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    _write(render([], [post], args.area, args.format), args.output)
    return EXIT_OK


# ----------------------------------------------------------------------------------- calibrate
def read_solved(path: str | Path) -> tuple[list[tuple[str, float, float]], list[str]]:
    """(path, lat, lon) rows of a solved-images CSV, and one message per unusable row."""
    path = Path(path)
    rows, problems = [], []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "lat", "lon"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path.name} needs the columns path, lat, lon (missing {', '.join(sorted(missing))})")
        for number, row in enumerate(reader, start=2):
            if len(rows) >= MAX_SOLVED_ROWS:
                problems.append(f"{path.name}: more than {MAX_SOLVED_ROWS} rows; the rest is ignored")
                break
            try:
                lat, lon = float(row["lat"]), float(row["lon"])
            except (TypeError, ValueError):
                problems.append(f"{path.name} line {number}: lat/lon {row.get('lat')!r}, {row.get('lon')!r} are not numbers")
                continue
            if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
                problems.append(f"{path.name} line {number}: ({lat}, {lon}) is not a place on Earth")
                continue
            image = Path(row["path"] or "")
            rows.append((str(image if image.is_absolute() else path.parent / image), lat, lon))
    return rows, problems


def solved_points(args: argparse.Namespace, rows: list[tuple[str, float, float]]):
    """Each solved image's map points: [(source, PointMass, lat, lon)] and the model identity.

    With ``args.points_cache`` (an .npz), the points of images already there (same model identity) are read
    from it and only the others are predicted; the file then holds them all (so the calibration and check
    halves of one set of images can share one cache with the sets they came from).
    """
    from tqdm import tqdm

    from geoapp.cli.family import family_extras, load_family_from_args
    from geoapp.engine.inputs import predict_inputs
    from geoapp.families import PredictOptions
    from geoapp.fusion import PointMass

    family = load_family_from_args(args)
    model = family.describe().to_dict()
    identity = json.dumps({"family": model["family"], "weights": model.get("heads_sha256"),
                           "options": {k: str(v) for k, v in sorted(family_extras(args).items())}}, sort_keys=True)
    cache = Path(args.points_cache) if getattr(args, "points_cache", None) else None
    known = _read_points_cache(cache, identity) if cache is not None else {}
    missing = [r for r in rows if r[0] not in known]
    if known:
        print(f"read the points of {len(rows) - len(missing)} images from {cache}", file=sys.stderr)
    options = PredictOptions.build(batch_size=max(1, args.batch_size), extras=family_extras(args))
    new = {}
    with tqdm(total=len(missing), unit="img", file=sys.stderr, disable=None if missing else True,
              desc="predict") as bar:
        for start in range(0, len(missing), 256):
            chunk = missing[start:start + 256]
            for prediction, (_, lat, lon) in zip(predict_inputs(family, [r[0] for r in chunk], options,
                                                                progress=bar.update), chunk):
                if prediction.ok:
                    new[prediction.source] = PointMass.from_prediction(prediction)
                else:
                    print(f"  skipped: {prediction.error}", file=sys.stderr)
    known.update(new)
    if cache is not None and new:
        _write_points_cache(cache, identity, known)
    out = [(r[0], known[r[0]], r[1], r[2]) for r in rows if r[0] in known]
    return out, model


def _read_points_cache(cache: Path, identity: str) -> dict:
    """source -> PointMass from a points cache of this model identity ({} when absent or of another model)."""
    import numpy as np

    from geoapp.fusion import PointMass

    if not cache.is_file():
        return {}
    with np.load(cache, allow_pickle=False) as data:
        if str(data["identity"]) != identity:
            return {}
        # Each data[key] decompresses the whole array again: read each once, copy the slices.
        bounds, sources = data["offsets"], data["sources"]
        lat, lon, weight = data["lat"], data["lon"], data["weight"]
    return {str(source): PointMass(lat[a:b].copy(), lon[a:b].copy(), weight[a:b].copy())
            for source, a, b in zip(sources, bounds[:-1], bounds[1:]) if b > a}


def _write_points_cache(cache: Path, identity: str, points: dict) -> None:
    import numpy as np

    from geoapp.fileio import atomic_write

    sources = sorted(points)
    sizes = [len(points[s].lat) for s in sources]
    atomic_write(cache, lambda handle: np.savez_compressed(
        handle, identity=np.array(identity), sources=np.array(sources),
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        lat=np.concatenate([points[s].lat for s in sources]), lon=np.concatenate([points[s].lon for s in sources]),
        weight=np.concatenate([points[s].weight for s in sources])))


def split_halves(count: int, seed: int):
    import numpy as np

    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[: count // 2]), np.sort(order[count // 2:])


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from geoapp.fusion.calibration import Calibration, score_photo, tie_shares
    from geoapp.fusion.density import fit_kernel
    from geoapp.fusion.posterior import PhotoMap

    rows, problems = read_solved(args.csv)
    for problem in problems:
        print(f"  skipped: {problem}", file=sys.stderr)
    if len(rows) < 20:
        raise ValueError(f"{args.csv}: {len(rows)} usable solved images; calibration needs at least 20 (100+ advised)")
    solved, model = solved_points(args, rows)
    if len(solved) < 20:
        raise ValueError(f"only {len(solved)} solved images could be predicted; calibration needs at least 20")
    fit_half, cal_half = split_halves(len(solved), args.seed)
    data = args.data or f"{Path(args.csv).name}: {len(solved)} solved images"
    kernel, table = fit_kernel([solved[i][1:] for i in fit_half],
                               fitted_on=f"{data} (half {len(fit_half)}, seed {args.seed})")
    print(f"kernel: sigma {kernel.sigma_km:g} km, floor {kernel.floor:g} (mean log density "
          f"{table['mean_log_density_km2']:.3f} per km² over {len(fit_half)} images)", file=sys.stderr)
    scores = []
    for i, u in zip(tqdm(cal_half, unit="img", file=sys.stderr, disable=None, desc="score"),
                    tie_shares(args.seed, len(cal_half))):
        source, points, lat, lon = solved[i]
        scores.append(score_photo(PhotoMap(source, points, kernel, model), lat, lon)[0].score(u))
    calibration = Calibration(family=model["family"], weights_sha256=model.get("heads_sha256"), name=args.name,
                              data=data, scores=tuple(sorted(scores)), kernel=kernel,
                              created=datetime.now(timezone.utc).isoformat(timespec="seconds"), tie_seed=args.seed,
                              note=args.note)
    path = calibration.save(Path(args.output_dir) if args.output_dir else None)
    levels = ", ".join(f"{k}: {v:.4f}" for k, v in calibration.to_dict()["thresholds"].items())
    print(f"{model['family']} ({model.get('heads_sha256') or 'no digest'}): calibrated on {len(scores)} images, "
          f"kernel fitted on {len(fit_half)}; thresholds (posterior mass ahead of the truth) {levels} -> {path}")
    return EXIT_OK
