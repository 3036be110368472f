"""SatWorld's held-out test split as image files, for ``python -m training.evaluate``.

    python -m training.satworld.testset --out runs/satworld-test
    python -m training.evaluate --csv runs/satworld-test/ground_truth.csv --images runs/satworld-test \\
        --model satworld --compare-refinement --out runs/satworld-refine

Writes the test locations of the shipped model's split (seed 0, the same ``TrainConfig`` as
``training.satworld.train``) as the crops its own evaluation scores: north up, the nominal 600 km
window, 64 px, lossless PNG. ``ground_truth.csv`` has every location; ``ground_truth_land.csv`` only
the random land points. The app's SatWorld scores GeoCLIP's 100K MP-16 gallery, and the test
locations drawn from MP-16 are points of that gallery (the trainer's own candidates leave them out),
so the land-only file is the one without that leak.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from .train import TrainConfig, eval_images


def export(out: Path, seed: int = 0, limit: int | None = None) -> dict:
    """Render and write the test split; returns counts."""
    from geoapp.galleries.gallery import Gallery

    from .splits import make_splits

    config = TrainConfig(seed=seed)
    config = replace(config, split=replace(config.split, seed=seed))
    gallery = Gallery.default().coords
    splits = make_splits(gallery, config.split)
    test = splits.test if limit is None else splits.test[:limit]
    in_gallery = {tuple(p) for p in np.asarray(gallery, dtype=np.float32).tolist()}
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for start in range(0, len(test), 256):  # render in slices: memory stays small
        chunk = test[start:start + 256]
        for offset, (image, (lat, lon)) in enumerate(zip(eval_images(config, chunk.astype(np.float64)), chunk)):
            name = f"test-{start + offset:05d}.png"
            Image.fromarray(image).save(out / name)
            rows.append({"IMG_ID": name, "LAT": f"{lat:.6f}", "LON": f"{lon:.6f}",
                         "SOURCE": "mp16-gallery" if (float(lat), float(lon)) in in_gallery else "random-land"})
    for filename, keep in (("ground_truth.csv", rows), ("ground_truth_land.csv",
                                                        [r for r in rows if r["SOURCE"] == "random-land"])):
        with open(out / filename, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["IMG_ID", "LAT", "LON", "SOURCE"])
            writer.writeheader()
            writer.writerows(keep)
    land = sum(r["SOURCE"] == "random-land" for r in rows)
    return {"images": len(rows), "random_land": land, "mp16_gallery": len(rows) - land}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="split seed (0: the shipped model's)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test locations")
    args = parser.parse_args(argv)
    counts = export(args.out, args.seed, args.limit)
    print(f"wrote {counts['images']} test crops to {args.out} ({counts['mp16_gallery']} MP-16 gallery locations, "
          f"{counts['random_land']} random land points); ground_truth.csv, ground_truth_land.csv")


if __name__ == "__main__":
    main()
