"""Result rows, published reference numbers, and their Markdown / CSV tables."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from geoapp.geo.metrics import THRESHOLDS_KM


@dataclass
class ResultRow:
    """One line of a results table (accuracies in percent, thresholds ``THRESHOLDS_KM``)."""

    method: str
    dataset: str
    n: int | None
    accuracy: dict[float, float]  # threshold km -> percent
    median_km: float | None = None
    country_accuracy: float | None = None
    geoguessr: float | None = None
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)


# Published accuracies (%, within 1 / 25 / 200 / 750 / 2500 km) on the full benchmarks.
PUBLISHED: dict[str, list[ResultRow]] = {
    "im2gps3k": [
        ResultRow("GeoCLIP (Vivanco et al. 2023, published)", "Im2GPS3k (2997)", 2997,
                  dict(zip(THRESHOLDS_KM, (14.11, 34.47, 50.65, 69.67, 83.82)))),
        ResultRow("TransLocator (Pramanick et al. 2022, published)", "Im2GPS3k (2997)", 2997,
                  dict(zip(THRESHOLDS_KM, (11.8, 31.1, 46.7, 58.9, 80.1)))),
    ],
}


def published_for(dataset_hint: str) -> list[ResultRow]:
    """Published rows for a dataset named like ``dataset_hint`` (a CSV path or name); [] if none known."""
    hint = dataset_hint.lower().replace("-", "").replace("_", "")
    return [row for key, rows in PUBLISHED.items() if key in hint for row in rows]


def reference_rows(dataset_hint: str, fallback: str = "im2gps3k") -> tuple[list[ResultRow], bool]:
    """Published rows to print beside a run, and whether they are for the run's own dataset.

    Unknown datasets still get the ``fallback`` benchmark's rows (labelled with their dataset),
    so every report shows where the published models stand.
    """
    matched = published_for(dataset_hint)
    return (matched, True) if matched else (list(PUBLISHED[fallback]), False)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


HEADER = ["method", "dataset", "n", *[f"{t:g} km" for t in THRESHOLDS_KM], "median km", "country %", "GeoGuessr",
          "note"]


def _cells(row: ResultRow) -> list[str]:
    return [row.method, row.dataset, "" if row.n is None else str(row.n),
            *[_fmt(row.accuracy.get(float(t))) for t in THRESHOLDS_KM],
            _fmt(row.median_km, 1), _fmt(row.country_accuracy), _fmt(row.geoguessr, 0), row.note]


def _select(skip: tuple[str, ...]) -> list[int]:
    unknown = set(skip) - set(HEADER)
    if unknown:
        raise ValueError(f"unknown columns {sorted(unknown)}; columns are {HEADER}")
    return [i for i, name in enumerate(HEADER) if name not in skip]


def markdown_table(rows: list[ResultRow], skip: tuple[str, ...] = ()) -> str:
    """A GitHub Markdown table (accuracy columns = % within that distance); ``skip`` drops columns by name."""
    keep = _select(skip)
    align = ["---", "---", *["---:"] * (len(HEADER) - 3), "---"]
    lines = ["| " + " | ".join(HEADER[i] for i in keep) + " |", "|" + "|".join(align[i] for i in keep) + "|"]
    lines += ["| " + " | ".join(_cells(row)[i] for i in keep) + " |" for row in rows]
    return "\n".join(lines)


def csv_table(rows: list[ResultRow], skip: tuple[str, ...] = ()) -> str:
    keep = _select(skip)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([HEADER[i] for i in keep])
    writer.writerows([_cells(row)[i] for i in keep] for row in rows)
    return buffer.getvalue()


def write_tables(rows: list[ResultRow], out_dir: Path, stem: str = "results", skip: tuple[str, ...] = ()) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, table = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    md.write_text(markdown_table(rows, skip) + "\n")
    table.write_text(csv_table(rows, skip))
    return md, table
