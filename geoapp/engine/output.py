"""Record output as a folder of parts (``results.parquet/part-*.parquet``, ``results.jsonl/part-*.jsonl``).

Used by both batch engines. Each part is written to a hidden temporary file and renamed into place,
so a run that is killed leaves only whole parts; a rerun reads the parts that are there and skips
their inputs (:meth:`PartsOutput.done`). Inputs are de-duplicated here, on the writing side: an input
already written is never written again, whatever a retried worker sends back.

Read the result with ``pandas.read_parquet("results.parquet")`` (pyarrow skips the hidden temporary
files) or :func:`read_records` (both formats). Torch-free.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from geoapp.fileio import atomic_write, atomic_write_path
from geoapp.results.formats import RECORD_COLUMN_NAMES, RECORD_FORMATS, record_schema

PART_PREFIX = "part-"
TEMP_PREFIX = f".{PART_PREFIX}"  # geoapp.fileio writes each part as ".<name>.<random>.tmp" beside it
TEMP_SUFFIX = ".tmp"


def format_for(path: str | os.PathLike, explicit: str | None = None) -> str | None:
    """``parquet``/``jsonl`` from ``explicit`` or the output's suffix; None for other outputs."""
    if explicit:
        return explicit if explicit in RECORD_FORMATS else None
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in RECORD_FORMATS else None


def _part_files(folder: Path, fmt: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(PART_PREFIX) and p.suffix == f".{fmt}")


def _read_part(path: Path, fmt: str) -> list[dict]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_records(path: str | os.PathLike, fmt: str | None = None) -> list[dict]:
    """Every record in an output folder (parts in name order)."""
    folder = Path(path)
    fmt = format_for(folder, fmt)
    if fmt is None:
        raise ValueError(f"{folder}: not a .parquet or .jsonl output (give the format)")
    return [record for part in _part_files(folder, fmt) for record in _read_part(part, fmt)]


class PartsOutput:
    """Writes records to a folder of parts, once per input, resuming from the parts already there."""

    def __init__(self, path: str | os.PathLike, fmt: str | None = None, part_rows: int = 1000,
                 part_seconds: float = 60.0):
        self.folder = Path(path)
        self.format = format_for(self.folder, fmt)
        if self.format is None:
            raise ValueError(f"record output must end in .parquet or .jsonl (or give --format); got {self.folder}")
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"{self.folder} is a file; record output is a folder of parts (choose a new name)")
        self.part_rows = max(1, int(part_rows))
        self.part_seconds = float(part_seconds)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self._pending: list[dict] = []
        self._since = time.monotonic()
        self._parts = 0
        self.written = 0
        self.duplicates = 0
        self._done: set[str] = set()
        for part in _part_files(self.folder, self.format):
            self._done.update(str(r["input"]) for r in _read_part(part, self.format))
        self.resumed = len(self._done)
        for stale in self.folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}") if self.folder.is_dir() else []:
            stale.unlink(missing_ok=True)  # a part cut short by a kill: it never counted

    def done(self) -> set[str]:
        """Inputs that already have a record (from earlier runs and this one)."""
        return set(self._done)

    def add(self, records: Iterable[dict]) -> int:
        """Queue records (skipping inputs already written); writes a part when enough are queued. Returns
        how many were new."""
        new = 0
        for record in records:
            key = str(record["input"])
            if key in self._done:
                self.duplicates += 1
                continue
            self._done.add(key)
            self._pending.append({name: record.get(name) for name in RECORD_COLUMN_NAMES})
            new += 1
        if self._pending and time.monotonic() - self._since >= self.part_seconds:
            self.flush()  # slow runs: nothing waits longer than part_seconds in memory
        else:
            self.flush(full_only=True)
        return new

    def flush(self, full_only: bool = False) -> None:
        """Write the queued records as parts of ``part_rows`` (each to a temporary file, then renamed
        atomically); ``full_only`` keeps a last, partial part queued."""
        while self._pending and (len(self._pending) >= self.part_rows or not full_only):
            rows, self._pending = self._pending[:self.part_rows], self._pending[self.part_rows:]
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{PART_PREFIX}{self.run_id}-{self._parts:05d}.{self.format}"
            if self.format == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pylist(rows, schema=record_schema())
                atomic_write_path(self.folder / name, lambda temp: pq.write_table(table, temp), durable=True,
                                  suffix=TEMP_SUFFIX)
            else:
                text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                atomic_write(self.folder / name, text, durable=True)
            self._parts += 1
            self.written += len(rows)
        self._since = time.monotonic()
