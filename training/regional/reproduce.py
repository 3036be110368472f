"""The paper's comparison (Table 1) on real geography: ``python -m training.regional reproduce --out DIR``.

Data and splits: :mod:`training.regional.repro_data`. One *run* is one split and one seed: every method is
trained on the training part (early stopping on the validation part) and scored on the test part, next to the
most-common-cell baseline; ``--finetune`` adds end-to-end fine-tuned rows (:mod:`.finetune`), ``--sweep`` the
paper's dataset-size sweep (growing subsets of the training part, same test part; first seed only). With
several seeds every row is the mean ± sample standard deviation over the seeds.

    python -m training.regional reproduce --out runs/regional --split blocks,random --seeds 0,1,2 \\
        --finetune classifier,cells-up-paper --sweep 0.1,0.25,0.5,1

Writes ``data.npz`` (rendered crops and features, reused by later runs), ``runs/SPLIT-seedN.json``,
``results.json``, ``table.md`` and ``sweep.md`` into DIR.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from training.regional.fit import METHODS, TrainConfig, TrainingSet, evaluate, fit, most_common_cell
from training.regional.repro_data import SPLITS, ReproConfig, ReproData, load_data, split

PAPER = {  # Engdahl & Heubi, Table 1 (test set): country %, then % within 1 / 25 / 200 / 750 km
    "classifier": (77, None, None, None, None), "offset": (78.1, 0.1, 4.8, 63.4, 77.2),
    "cells-down": (75.4, 14.8, 31.4, 61.8, 74.7), "cells-up-paper": (75.9, 15.5, 31.8, 61.2, 75.0),
    "retrieval-mlp": (76.7, 0.1, 6.7, 53.3, 73.4), "retrieval-rff": (77, 15.1, 30, 61.9, 76),
}
BEST_CELLS = "best-cells"  # sweep: the cell method with the best validation accuracy at 200 km in that run
FINETUNE_SUFFIX = "+finetune"
COLUMNS = ("country_accuracy", "1", "25", "200", "750", "median_km")


@dataclass(frozen=True)
class ReproOptions:
    """What a reproduction runs (the data settings are a :class:`ReproConfig`)."""

    methods: tuple[str, ...] = tuple(METHODS)
    seeds: tuple[int, ...] = (0,)
    splits: tuple[str, ...] = ("blocks",)
    finetune: tuple[str, ...] = ()  # methods fine-tuned end to end after their frozen run
    finetune_epochs: int = 5
    sweep: tuple[float, ...] = ()  # fractions of the training part
    sweep_methods: tuple[str, ...] = ("classifier", BEST_CELLS, "retrieval-rff")


def reproduce(out: Path, config: ReproConfig = ReproConfig(), options: ReproOptions = ReproOptions(),
              train: TrainConfig | None = None) -> dict:
    """Every (split, seed) run, then ``results.json``, ``table.md`` and ``sweep.md`` in ``out``.

    ``train`` default: n = 100 images per cell (the paper's 200 on a collection about twice as big), 30 for
    quick runs (``max_points`` set).
    """
    started = time.time()
    train = train or TrainConfig(cell_min=30 if config.max_points else 100)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(out, config)
    runs = []
    for split_name in options.splits:
        for index, seed in enumerate(options.seeds):
            run_config = replace(config, seed=seed, split=split_name)
            run = run_once(data, run_config, options, replace(train, seed=seed), sweep=index == 0)
            (out / "runs").mkdir(exist_ok=True)
            (out / "runs" / f"{split_name}-seed{seed}.json").write_text(json.dumps(run, indent=2))
            runs.append(run)
    summary = {"config": asdict(config), "options": asdict(options), "train": asdict(train), "runs": runs,
               "table": aggregate(runs), "seconds": round(time.time() - started, 1)}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "table.md").write_text(markdown_table(summary["table"]))
    if options.sweep:
        (out / "sweep.md").write_text(sweep_table(runs))
    return summary


def parts(data: ReproData, config: ReproConfig) -> tuple[np.ndarray, TrainingSet, TrainingSet, TrainingSet]:
    """The split's assignment and its train / validation / test sets."""
    assignment = split(data, config)
    full = TrainingSet(data.features, data.coords, data.country, list(config.countries))
    return assignment, full.subset(assignment == 0), full.subset(assignment == 1), full.subset(assignment == 2)


def run_once(data: ReproData, config: ReproConfig, options: ReproOptions, train: TrainConfig,
             sweep: bool = True) -> dict:
    """One split and seed: every method's test metrics (and fine-tuned rows, and the sweep when asked)."""
    assignment, train_set, val_set, test_set = parts(data, config)
    sizes = {"train": len(train_set), "val": len(val_set), "test": len(test_set),
             "dropped": int((assignment == -1).sum())}
    print(f"split {config.split}, seed {config.seed}: {sizes['train']} train, {sizes['val']} val, {sizes['test']} "
          f"test ({sizes['dropped']} held-out dropped within {config.buffer_km:g} km of train)")
    rows: dict[str, dict] = {"most-common": {"title": "Most common cell (baseline)",
                                             **most_common_cell(train_set, test_set, train).to_dict()}}
    frozen = {}
    for name in options.methods:
        start = time.time()
        result = fit(name, train_set, train, validation=val_set)
        frozen[name] = result
        rows[name] = {"title": METHODS[name].title, **evaluate(result.model, test_set).to_dict(),
                      "validation": evaluate(result.model, val_set).to_dict(), "best_epoch": result.best_epoch,
                      "epochs_run": result.epochs_run, "seconds": round(time.time() - start, 1),
                      "cells": None if result.cells is None else len(result.cells)}
        print(f"  {METHODS[name].title}: {_line(rows[name])} ({rows[name]['seconds']} s)")
        if name in options.finetune:
            rows[name + FINETUNE_SUFFIX] = finetuned_row(result, data, assignment, train_set, val_set, test_set,
                                                         options, train.seed)
            print(f"  {rows[name + FINETUNE_SUFFIX]['title']}: {_line(rows[name + FINETUNE_SUFFIX])}")
    run = {"split": config.split, "seed": config.seed, "sizes": sizes, "rows": rows}
    if sweep and options.sweep:
        run["sweep"] = size_sweep(rows, train_set, val_set, test_set, options, train)
    return run


def finetuned_row(result, data: ReproData, assignment: np.ndarray, train_set: TrainingSet, val_set: TrainingSet,
                  test_set: TrainingSet, options: ReproOptions, seed: int) -> dict:
    from geoapp.families.regional.backbone import load_extractor
    from training.regional.finetune import FinetuneConfig, finetune, finetuned_features

    extractor = load_extractor("satworld")
    tuned = finetune(result, extractor.network, extractor.preprocess, train_set, data.images[assignment == 0],
                     val_set, data.images[assignment == 1], FinetuneConfig(epochs=options.finetune_epochs, seed=seed))
    features = finetuned_features(tuned, data.images[assignment == 2], extractor.preprocess)
    metrics = evaluate(tuned.model, TrainingSet(features, test_set.coords, test_set.country, test_set.countries))
    title = (f"{METHODS[result.model.method].title}, fine-tuned end to end (SatWorld encoder + head, Adam 1e-5, "
             f"{options.finetune_epochs} epochs)")
    return {"title": title, **metrics.to_dict(), "best_epoch": tuned.best_epoch, "seconds": tuned.seconds,
            "validation_km": [round(v, 1) for v in tuned.validation_km],
            "cells": None if result.cells is None else len(result.cells)}


def size_sweep(rows: dict, train_set: TrainingSet, val_set: TrainingSet, test_set: TrainingSet,
               options: ReproOptions, train: TrainConfig) -> list[dict]:
    """Nested subsets (a seeded permutation's first fraction) of the training part; the same test part."""
    cell_rows = [n for n in rows if n in METHODS and METHODS[n].kind == "cells"]
    best_cells = max(cell_rows, key=lambda n: rows[n]["validation"]["within_km"]["200"], default="cells-down")
    order = np.random.default_rng(train.seed + 3).permutation(len(train_set))
    out = []
    for fraction in options.sweep:
        subset = train_set.subset(np.sort(order[:max(2, round(fraction * len(train_set)))]))
        for name in options.sweep_methods:
            method = best_cells if name == BEST_CELLS else name
            result = fit(method, subset, train, validation=val_set)
            out.append({**evaluate(result.model, test_set).to_dict(), "fraction": fraction, "method": method,
                        "train_images": len(subset),
                        "title": METHODS[method].title + (" (best cells on validation)" if name == BEST_CELLS else "")})
            print(f"  sweep {fraction:g} ({len(subset)} images) {method}: {_line(out[-1])}")
    return out


# ---------------------------------------------------------------------------------------------- tables
def _values(row: dict) -> list[float]:
    within = row["within_km"]
    return [row["country_accuracy"], within["1"], within["25"], within["200"], within["750"], row["median_km"]]


def _line(row: dict) -> str:
    country, *within, median = _values(row)
    return f"country {country:.1f} %, " + ", ".join(
        f"{k} km {v:.1f} %" for k, v in zip((1, 25, 200, 750), within)) + f", median {median:.0f} km"


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per (method, split): mean and sample standard deviation of every column over the seeds."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        for name, row in run["rows"].items():
            grouped.setdefault((name, run["split"]), []).append(row)
    order = list(dict.fromkeys(name for run in runs for name in run["rows"]))
    table = []
    for name in order:
        for split_name in SPLITS:
            rows = grouped.get((name, split_name))
            if not rows:
                continue
            values = np.array([_values(r) for r in rows], dtype=np.float64)
            sd = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(values.shape[1])
            cells = sorted({r["cells"] for r in rows if r.get("cells")})
            table.append({"method": name, "title": rows[0]["title"], "split": split_name, "seeds": len(rows),
                          "mean": dict(zip(COLUMNS, values.mean(axis=0).round(2))),
                          "sd": dict(zip(COLUMNS, sd.round(2))),
                          "cells": "–".join(str(c) for c in dict.fromkeys((cells[0], cells[-1]))) if cells else None})
    return table


def _cell(mean: float, sd: float, seeds: int, digits: int = 1) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if seeds > 1 else f"{mean:.{digits}f}"


def markdown_table(table: list[dict]) -> str:
    """The paper's columns (mean ± sd over seeds), the split, the paper's numbers where it has the row."""
    lines = ["| model | split | seeds | country | 1 km | 25 km | 200 km | 750 km | median km | cells | "
             "paper (country / 1 / 25 / 200 / 750) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        paper = PAPER.get(row["method"])
        paper_text = " / ".join("–" if v is None else f"{v:g}" for v in paper) if paper else ""
        cells = [_cell(row["mean"][c], row["sd"][c], row["seeds"], 0 if c == "median_km" else 1) for c in COLUMNS]
        lines.append(f"| {row['title']} | {row['split']} | {row['seeds']} | " + " | ".join(cells)
                     + f" | {row.get('cells') or ''} | {paper_text} |")
    return "\n".join(lines) + "\n"


def sweep_table(runs: list[dict]) -> str:
    lines = ["| model | split | seed | fraction of train | train images | country | 25 km | 200 km | 750 km | "
             "median km |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for row in run.get("sweep", []):
            country, _, w25, w200, w750, median = _values(row)
            lines.append(f"| {row['title']} | {run['split']} | {run['seed']} | {row['fraction']:g} | {row['train_images']} | "
                         f"{country:.1f} | {w25:.1f} | {w200:.1f} | {w750:.1f} | {median:.0f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--split", default="blocks", help="blocks, random, or both (blocks,random)")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed")
    parser.add_argument("--seeds", default=None, help="several seeds (e.g. 0,1,2): rows become mean ± sd")
    parser.add_argument("--finetune", nargs="?", const="classifier,cells-up-paper", default=None,
                        help="also fine-tune these methods end to end with SatWorld's encoder (Adam 1e-5; "
                             "default when given alone: classifier,cells-up-paper)")
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--sweep", nargs="?", const="0.1,0.25,0.5,1", default=None,
                        help="dataset-size sweep: fractions of the training part (default 0.1,0.25,0.5,1)")
    parser.add_argument("--sweep-methods", default=None,
                        help=f"methods of the sweep (default classifier,{BEST_CELLS},retrieval-rff)")
    parser.add_argument("--quick", action="store_true", help="a small run (300 locations per country, 2 copies)")
    parser.add_argument("--max-points", type=int, default=None, help="gallery points per country (default: all)")
    parser.add_argument("--copies", type=int, default=None, help="jittered copies per point (default 4)")


def _names(text: str | None, allowed: set[str], what: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown {what} {unknown or text!r}; choose from {', '.join(sorted(allowed))}")
    return names


def run_cli(args: argparse.Namespace) -> int:
    config = ReproConfig()
    if args.quick:
        config = quick_config(config)
    if args.max_points is not None or args.copies is not None:
        config = replace(config, max_points=args.max_points or config.max_points,
                         copies=config.copies if args.copies is None else args.copies)
    options = ReproOptions(splits=_names(args.split, set(SPLITS), "split"),
                           seeds=tuple(int(s) for s in args.seeds.split(",")) if args.seeds else (args.seed,),
                           finetune_epochs=args.finetune_epochs)
    methods = _names(args.methods, set(METHODS), "methods")
    finetune = _names(args.finetune, set(METHODS), "methods to fine-tune") or ()
    if methods:
        options = replace(options, methods=methods + tuple(m for m in finetune if m not in methods))
    if args.sweep:
        fractions = tuple(float(f) for f in args.sweep.split(","))
        if any(not 0 < f <= 1 for f in fractions):
            raise ValueError(f"sweep fractions must lie in (0, 1]; got {args.sweep}")
        options = replace(options, sweep=fractions)
        sweep_methods = _names(args.sweep_methods, set(METHODS) | {BEST_CELLS}, "sweep methods")
        if sweep_methods:
            options = replace(options, sweep_methods=sweep_methods)
    options = replace(options, finetune=finetune)
    summary = reproduce(args.out, config, options)
    print((args.out / "table.md").read_text())
    if options.sweep:
        print((args.out / "sweep.md").read_text())
    print(f"{summary['seconds']} s; results in {args.out}")
    return 0


def quick_config(config: ReproConfig) -> ReproConfig:
    """A small run (a few hundred locations per country) for CI and smoke tests."""
    return replace(config, max_points=300, copies=2)
