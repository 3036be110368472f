"""Every place where the reproduction orders two of the paper's rows differently from the paper's Table 1.

    python -m training.regional.compare runs/regional-blocks/results.json runs/regional-random/results.json
    python -m training.regional.compare --table runs/regional-blocks/results.json runs/regional-random/results.json

``--table`` prints the runs of several ``reproduce`` outputs as one table (both splits side by side).

For each split, each column where the paper gives numbers and each pair of methods that the paper has: if
the paper puts A above B and our mean puts B above A (or both level), the pair is listed with both sides'
numbers and whether our difference is within one standard deviation over the seeds (then it is as likely
noise as a real inversion). Pairs the paper has level are listed when ours are not.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

from training.regional.reproduce import COLUMNS, PAPER, aggregate, markdown_table

NAMES = ("country", "1 km", "25 km", "200 km", "750 km")


SHORT = {"classifier": "classifier", "offset": "regression", "cells-down": "top-down", "cells-up-paper":
         "bottom-up (paper)", "retrieval-mlp": "MLP retrieval", "retrieval-rff": "RFF retrieval"}


def disagreements(table: list[dict]) -> list[str]:
    """Markdown bullets, one per split and column, naming every inverted (or newly level) pair."""
    out = []
    for split_name in dict.fromkeys(row["split"] for row in table):
        rows = {row["method"]: row for row in table if row["split"] == split_name}
        for column, (name, key) in enumerate(zip(NAMES, COLUMNS)):
            methods = [m for m in PAPER if PAPER[m][column] is not None and m in rows]
            pairs = [pair for a, b in combinations(methods, 2) if (pair := _pair(rows, a, b, column, key))]
            if pairs:
                out.append(f"- {split_name}, {name}: " + "; ".join(pairs))
    return out


def _pair(rows: dict, a: str, b: str, column: int, key: str) -> str | None:
    """"A > B in the paper (x vs y), ours p vs q" when our order differs; None when it agrees."""
    theirs = PAPER[a][column] - PAPER[b][column]
    ours = rows[a]["mean"][key] - rows[b]["mean"][key]
    if theirs < 0 or (theirs == 0 and ours < 0):
        a, b, theirs, ours = b, a, -theirs, -ours  # A is the paper's higher (or our higher of a level pair)
    if theirs > 0 and ours > 0 or theirs == 0 and ours == 0:
        return None
    noise = max(rows[a]["sd"][key], rows[b]["sd"][key])
    within = ", within one sd" if rows[a]["seeds"] > 1 and 0 < abs(ours) <= noise else ""
    return (f"{SHORT[a]} {'>' if theirs else '='} {SHORT[b]} in the paper ({PAPER[a][column]:g} vs "
            f"{PAPER[b][column]:g}), ours {rows[a]['mean'][key]:.1f} vs {rows[b]['mean'][key]:.1f}{within}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.regional.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json of reproduce runs")
    parser.add_argument("--table", action="store_true", help="print the runs as one table instead")
    args = parser.parse_args(argv)
    table = aggregate([run for path in args.results for run in json.loads(path.read_text())["runs"]])
    if args.table:
        print(markdown_table(table), end="")
        return 0
    lines = disagreements(table)
    print("\n".join(lines) if lines else "no pair ordered differently from the paper")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
