"""How well could *any* retrieval over a GPS gallery do? ``python -m training.gallery_ceiling``.

A retrieval geolocator (GeoCLIP) answers with one of its gallery points, so its error on an
image is at least the distance from the true location to the nearest gallery point. This
report computes that distance for every ground-truth location of a benchmark: the
accuracy-at-thresholds and median it gives are the ceiling of any model using that gallery
(a perfect image encoder would reach exactly them). It needs coordinates only, no images.

With ``--refine-km R`` the report adds the ceiling of retrieval + fine refinement
(:mod:`geoapp.geo.refine`): a perfect model ranks the nearest gallery point first, and the
refinement's coarse-to-fine search around it, scored by closeness to the truth, ends where a
perfect location encoder would. Refinement only adds points, so this ceiling is never lower.

Nearest neighbours are found on 3-D unit vectors with scipy's cKDTree: the Euclidean (chord)
distance c between unit vectors is monotone in the great-circle distance 2·asin(c/2), so the
nearest chord is the nearest point on the sphere.

Example::

    python -m training.gallery_ceiling --csv ../shared/data/benchmarks/im2gps3k_places365.csv \\
        --csv ../shared/data/benchmarks/yfcc4k_coordinates.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from geoapp.galleries.gallery import Gallery
from geoapp.geo.distance import EARTH_RADIUS_KM, haversine_km
from geoapp.geo.metrics import THRESHOLDS_KM, geoguessr_score
from geoapp.geo.refine import RefineSpec, refine_places

from training.data import LAYOUTS, DatasetSpec, read_records
from training.tables import ResultRow, markdown_table, write_tables

# Country accuracy has no ceiling here: a farther gallery point may lie in the right country.
CEILING_SKIP = ("country %",)


def unit_vectors(latlon: np.ndarray) -> np.ndarray:
    """(lat, lon) degrees [N, 2] -> points on the unit sphere [N, 3] (float64)."""
    lat, lon = np.radians(np.asarray(latlon, dtype=np.float64).reshape(-1, 2)).T
    cos_lat = np.cos(lat)
    return np.stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)), axis=1)


class NearestGallery:
    """Great-circle nearest gallery point for many queries (the k-d tree is built once)."""

    def __init__(self, gallery_coords: np.ndarray) -> None:
        if len(gallery_coords) == 0:
            raise ValueError("the gallery is empty")
        self.coords = np.asarray(gallery_coords, dtype=np.float64).reshape(-1, 2)
        self.tree = cKDTree(unit_vectors(self.coords))

    def query(self, latlon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance km [N], index of the nearest gallery point [N])."""
        chord, index = self.tree.query(unit_vectors(latlon), k=1)
        # chord = 2 sin(angle / 2); clip guards rounding just above 2 for antipodes.
        angle = 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0))
        return angle * EARTH_RADIUS_KM, np.asarray(index)


def refined_distances(true_latlon: np.ndarray, nearest: NearestGallery, spec: RefineSpec) -> np.ndarray:
    """Error km of retrieval + refinement for a perfect model (scores = closeness to the truth)."""
    truth = np.asarray(true_latlon, dtype=np.float64).reshape(-1, 2)
    _, index = nearest.query(truth)
    seeds = [nearest.coords[i:i + 1] for i in np.atleast_1d(index)]

    def closeness(grids):
        return [-haversine_km(t[0], t[1], g[:, 0], g[:, 1]) for t, g in zip(truth, grids)]

    refined = refine_places(seeds, closeness, spec)
    return np.array([haversine_km(t[0], t[1], r.points[0, 0], r.points[0, 1]) for t, r in zip(truth, refined)],
                    dtype=np.float64).reshape(-1)


def ceiling_row(dataset: str, true_latlon: np.ndarray, nearest: NearestGallery, gallery_name: str,
                refine: RefineSpec | None = None) -> ResultRow:
    """The best-possible accuracy row for ``true_latlon`` against the gallery (+ refinement)."""
    if refine is not None and refine.enabled:
        distances = refined_distances(true_latlon, nearest, refine)
        how = f" + refinement {refine.radius_km:g} km at {refine.step_km:g} km"
    else:
        distances, _ = nearest.query(true_latlon)
        how = ""
    n = int(distances.size)
    accuracy = {float(t): float(np.mean(distances <= t) * 100) if n else float("nan") for t in THRESHOLDS_KM}
    return ResultRow(
        method=f"gallery ceiling ({gallery_name}, {len(nearest.coords):,} points){how}", dataset=dataset, n=n,
        accuracy=accuracy,
        median_km=float(np.median(distances)) if n else None,
        geoguessr=float(np.mean(geoguessr_score(distances))) if n else None,
        note=f"mean {np.mean(distances):.1f} km, max {np.max(distances):.0f} km" if n else "",
    )


def load_gallery_coords(option: str | None) -> Gallery:
    """--gallery: None (MP-16 100K), "dense[:SPACING_KM]", a .npy of coordinates, a dense gallery folder, a CSV."""
    from geoapp.galleries import dense as dense_gallery
    if not option:
        return Gallery.default()
    if option == "dense" or option.startswith("dense:"):
        spacing = float(option.partition(":")[2] or dense_gallery.DEFAULT_SPACING_KM)
        coords, _ = dense_gallery.dense_coords(spacing)
        return Gallery(f"dense {spacing:g} km land grid + MP-16", coords, option)
    path = Path(option)
    if path.is_dir():
        path = path / "coords.npy"
    if path.suffix == ".npy":
        coords = np.load(path, mmap_mode="r")
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"{path} must hold [N, 2] (lat, lon); got shape {coords.shape}")
        return Gallery(path.parent.name if path.name == "coords.npy" else path.stem,
                       np.asarray(coords, dtype=np.float32), str(path))
    return Gallery.from_csv(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.gallery_ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, action="append", help="ground-truth CSV with LAT/LON (repeatable)")
    p.add_argument("--layout", default="auto", choices=sorted(LAYOUTS))
    p.add_argument("--gallery", default=None,
                   help="gallery CSV, a .npy of float32 [N, 2] (lat, lon), a built dense gallery folder, or "
                        "dense[:SPACING_KM] for the dense land grid + MP-16 points computed on the fly (coordinates "
                        "only, no embeddings needed); default: GeoCLIP's 100K MP-16 gallery")
    p.add_argument("--refine-km", type=float, action="append", default=None, metavar="KM",
                   help="also report retrieval + fine refinement within KM of the top place (repeatable; "
                        "the app's default is 15)")
    p.add_argument("--refine-step-km", type=float, default=0.5, help="final refinement spacing (default 0.5 km)")
    p.add_argument("--out", default=None, help="folder for ceiling.md / ceiling.csv")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gallery = load_gallery_coords(args.gallery)
    nearest = NearestGallery(gallery.coords)
    rows = []
    for csv_path in args.csv:
        records = read_records(DatasetSpec(Path(csv_path), None, args.layout))
        name = f"{records.name}" + (f" ({records.skipped_rows} rows skipped)" if records.skipped_rows else "")
        rows.append(ceiling_row(name, records.coords, nearest, gallery.name))
        for radius in args.refine_km or ():
            spec = RefineSpec(radius_km=radius, step_km=args.refine_step_km)
            rows.append(ceiling_row(name, records.coords, nearest, gallery.name, spec))
    print(markdown_table(rows, skip=CEILING_SKIP))
    print("\nAccuracy columns: % of true locations with a gallery point within that distance "
          "(the best any retrieval over this gallery can score).")
    if args.out:
        md, table = write_tables(rows, Path(args.out), stem="ceiling", skip=CEILING_SKIP)
        print(f"\nwrote {md} and {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
