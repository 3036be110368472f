"""Evaluate a TransLocator checkpoint: ``python -m training.translocator.evaluate``.

The prediction for an image is the mean coordinate of the training photos in its most probable
*fine* geocell (the cell's ``latitude_mean``/``longitude_mean``); with ``--tencrop`` the
logits of the ten crops are averaged first (the paper's protocol); ``--hierarchical`` ranks fine
cells by the product of their own and their parents' probabilities (ISNs' hierarchy mode). Segmentation maps come from
``--seg-maps DIR`` (precomputed PNGs, as the authors ship them) or ``--segmenter NAME`` (run on
each crop). Unreadable images are counted and listed, never scored. The table is the one
``training.evaluate`` writes (accuracy at 1/25/200/750/2500 km, median, country, GeoGuessr),
next to the published TransLocator numbers.

Example::

    python -m training.translocator.evaluate --checkpoint runs/tl/translocator-last.safetensors \\
        --csv ../shared/data/benchmarks/im2gps3k_places365.csv --images /data/im2gps3k \\
        --seg-maps /data/im2gps3k_seg --tencrop --out runs/tl/eval-im2gps3k
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from geoapp.geo.geocells import GeocellHierarchy
from geoapp.geo.metrics import error_summary
from geoapp.families.translocator.network import TransLocator, load_translocator_checkpoint

from training.data import LAYOUTS, DatasetSpec, read_records
from training.evaluate import RANDOM_BANNER, summarise
from training.tables import ResultRow, markdown_table, reference_rows, write_tables

from .augment import PairedAugmentation
from .data import LabelledRecords, TransLocatorImageDataset, collate_translocator, model_inputs, scene_labels

THRESHOLD_COLUMNS = ("1", "25", "200", "750", "2500")


@torch.inference_mode()
def crop_averaged_logits(model: TransLocator, rgb: torch.Tensor, seg: torch.Tensor | None, crops_per_image: int,
                         chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(coarse, middle, fine) cell logits [B, n] (float32, CPU), averaged over each image's consecutive crops."""
    model.eval()
    levels: list[list[torch.Tensor]] = [[], [], []]
    for start in range(0, rgb.shape[0], chunk):
        part = model(rgb[start:start + chunk], None if seg is None else seg[start:start + chunk])
        for store, logits in zip(levels, part.cell_logits):
            store.append(logits.float().cpu())
    averaged = []
    for store, count in zip(levels, model.config.cell_counts):
        logits = torch.cat(store) if store else torch.zeros(0, count)
        averaged.append(logits.view(-1, crops_per_image, count).mean(dim=1))
    return tuple(averaged)  # type: ignore[return-value]


def fine_cell_scores(cells: GeocellHierarchy, logits: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                     hierarchical: bool = False) -> torch.Tensor:
    """Scores [B, n_fine]: the fine head's logits, or (``hierarchical``, as ISNs' "hierarchy" mode)
    log p(fine) + log p(its middle cell) + log p(its coarse cell)."""
    coarse, middle, fine = logits
    if not hierarchical:
        return fine
    scores = fine.log_softmax(dim=1)
    for parents, level in ((cells.fine_to_middle, middle), (cells.fine_to_coarse, coarse)):
        index = torch.from_numpy(np.asarray(parents, dtype=np.int64))
        parent_scores = level.log_softmax(dim=1)[:, index.clamp(min=0)]
        scores = scores + torch.where(index >= 0, parent_scores, torch.zeros_like(parent_scores))
    return scores


def predicted_locations(cells: GeocellHierarchy, logits: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                        hierarchical: bool = False) -> np.ndarray:
    """[B, 2] (lat, lon): the mean training coordinate of each image's best fine cell."""
    best = fine_cell_scores(cells, logits, hierarchical).argmax(dim=1).numpy()
    return cells.fine.coords[best]


def summary_row(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracies keyed by "1", "25", ... (percent), median km, mean GeoGuessr score, n."""
    summary = error_summary(pred, truth)
    summary["accuracy"] = {f"{int(k)}": v for k, v in summary["accuracy"].items()}
    return summary


def markdown_rows(results: dict[str, dict], labels: dict[str, str]) -> str:
    """Markdown table of summaries (``results[key]`` from :func:`summary_row`), in ``labels`` order."""
    lines = ["| model | n | acc@1 km | acc@25 km | acc@200 km | acc@750 km | acc@2500 km | median km | GeoGuessr |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, label in labels.items():
        if key not in results:
            continue
        r = results[key]
        acc = r["accuracy"]
        lines.append(f"| {label} | {r['n']} | " + " | ".join(f"{acc[t]:.1f}" for t in THRESHOLD_COLUMNS)
                     + f" | {r['median_km']:.0f} | {r['geoguessr_score']:.0f} |")
    return "\n".join(lines)


def predict_loader(model: TransLocator, cells: GeocellHierarchy, batches: Iterable, device: torch.device,
                   segmenter=None, hierarchical: bool = False) -> tuple[dict[int, tuple[float, float]], dict[int, str]]:
    """Run a loader of evaluation batches: {dataset index: (lat, lon)} and {index: error} for failures."""
    found: dict[int, tuple[float, float]] = {}
    errors: dict[int, str] = {}
    for batch in batches:
        for failure in batch.failures:
            errors[failure.index] = failure.error or "unreadable"
        if not len(batch):
            continue
        rgb, seg = model_inputs(batch.rgb, batch.class_maps, None, model.config.dual_branch, device, segmenter)
        logits = crop_averaged_logits(model, rgb, seg, batch.crops_per_image)
        for index, (lat, lon) in zip(batch.indices, predicted_locations(cells, logits, hierarchical)):
            found[index] = (float(lat), float(lon))
    return found, errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.translocator.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, help="translocator-*.safetensors (or an older .pt) from training.translocator.train")
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--layout", default="auto", choices=sorted(LAYOUTS))
    p.add_argument("--name", default=None, help="dataset name in the table")
    maps = p.add_mutually_exclusive_group()
    maps.add_argument("--seg-maps", type=Path, default=None, help="folder of precomputed segmentation PNGs")
    maps.add_argument("--segmenter", default=None, help="segment on the fly with this segmenter (geoapp.families.translocator.segmentation)")
    p.add_argument("--segmenter-weights", default=None, help="segmenter weights: default cache, 'random' or a path")
    p.add_argument("--tencrop", action="store_true", help="average the logits of 10 crops (paper protocol)")
    p.add_argument("--hierarchical", action="store_true",
                   help="pick the fine cell by p(fine) x p(middle parent) x p(coarse parent) instead of p(fine)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.distributed import DistEnv, pick_device

    device = pick_device(DistEnv(), args.device)
    try:
        model, cells, meta = load_translocator_checkpoint(args.checkpoint)
        records = read_records(DatasetSpec(args.csv, args.images, args.layout, args.name), require_images=True)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.limit:
        records = records.head(args.limit)
    segmenter = None
    if args.segmenter and model.config.dual_branch:
        from geoapp.families.translocator.segmentation import load_segmenter

        segmenter = load_segmenter(args.segmenter, args.segmenter_weights, device)
    elif model.config.dual_branch and args.seg_maps is None:
        print("error: this dual-branch model needs --seg-maps DIR or --segmenter NAME", file=sys.stderr)
        return 2
    model = model.to(device)
    # Every row is predicted, in or out of a geocell: labels are not needed to score distances.
    data = LabelledRecords(records, np.full((len(records), 3), -1, dtype=np.int64), scene_labels(records.extras))
    aug = PairedAugmentation.for_crop(model.config.img_size)
    dataset = TransLocatorImageDataset(data, aug, args.seg_maps, mode="tencrop" if args.tencrop else "centre")
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_translocator)
    found, errors = predict_loader(model, cells, loader, device, segmenter, args.hierarchical)
    raw = [(*found[i], float("nan"), "") if i in found else (float("nan"), float("nan"), float("nan"),
                                                             errors.get(i, "not predicted"))
           for i in range(len(records))]
    random_weights = bool(meta["random_weights"] or getattr(segmenter, "random_weights", False))
    method = f"this run (TransLocator{'' if model.config.dual_branch else ' ViT-MT'}, " \
             f"{'TenCrop' if args.tencrop else 'centre crop'}{', hierarchy' if args.hierarchical else ''}, " \
             f"{args.checkpoint.name})"
    frame, row = summarise(records, raw, method, "RANDOM WEIGHTS — MEANINGLESS" if random_weights else "")
    rows: list[ResultRow] = [row, *reference_rows(f"{args.csv} {args.name or ''}")[0]]
    text = markdown_table(rows) + ("\n\n" + RANDOM_BANNER if random_weights else "")
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out / "predictions.csv", index=False, float_format="%.6f")
        write_tables(rows, args.out)
        (args.out / "summary.json").write_text(json.dumps(
            {"n": row.n, "accuracy": {f"{k:g}": v for k, v in row.accuracy.items()}, "median_km": row.median_km,
             "geoguessr": row.geoguessr, "failed": len(errors), "random_weights": random_weights,
             "checkpoint": str(args.checkpoint), "tencrop": args.tencrop}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
