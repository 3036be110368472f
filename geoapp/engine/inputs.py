"""Inputs of a batch run and the prediction step both engines share.

* :func:`expand_inputs`: files, folders, glob patterns (``iter_image_paths``), tables (``.csv`` /
  ``.parquet``, a column of paths or URLs) and object-storage URLs (``s3://``, ``gs://``, ...).
* :func:`predict_inputs`: one prediction per input key, ``source`` = the key; URLs are read with
  ``pyarrow.fs`` where this runs (on the Ray workers for the Ray engine).
* :func:`load_family`: load a family; random weights are seeded so every worker holds the same
  random model (and the local engine the same one too).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from geoapp.imaging import ImageLoadError, iter_image_paths
from geoapp.results.prediction import Prediction

TABLE_SUFFIXES = (".csv", ".parquet")
DEFAULT_INPUT_COLUMN = "path"
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
RANDOM_WEIGHTS_SEED = 0


def is_url(text: str) -> bool:
    """``scheme://...`` (s3, gs, hdfs, file ...): read through pyarrow.fs, never as a local path."""
    return bool(_URL.match(str(text)))


def _read_table_column(source: str, column: str) -> list[str]:
    import pyarrow.csv as pcsv
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    filesystem, path = pafs.FileSystem.from_uri(source) if is_url(source) else (None, source)
    if source.lower().endswith(".parquet"):
        table = pq.read_table(path, filesystem=filesystem)
    else:
        opener = filesystem.open_input_stream(path) if filesystem else path
        table = pcsv.read_csv(opener, convert_options=pcsv.ConvertOptions(column_types={column: "string"}))
    if column not in table.column_names:
        raise ValueError(f"{source}: no column {column!r} (columns: {', '.join(table.column_names)}); "
                         "choose one with --input-column")
    base = os.path.dirname(source) if not is_url(source) else None
    values = []
    for value in table.column(column).to_pylist():
        if value is None or not str(value).strip():
            continue
        value = str(value).strip()
        # relative paths in a local table are relative to the table's folder
        if base is not None and not is_url(value) and not os.path.isabs(value):
            value = os.path.join(base, value)
        values.append(value)
    return values


def expand_inputs(items: list[str], input_column: str | None = None) -> list[str]:
    """Input keys in order, de-duplicated: tables give their column, URLs stay as they are, the rest goes
    through :func:`~geoapp.imaging.iter_image_paths` (a missing path stays so its record says so)."""
    keys: list[str] = []
    for item in items:
        text = os.fspath(item)
        if Path(text).suffix.lower() in TABLE_SUFFIXES and (is_url(text) or Path(text).is_file()):
            for value in _read_table_column(text, input_column or DEFAULT_INPUT_COLUMN):
                keys += [value] if is_url(value) else [str(p) for p in iter_image_paths([value])]
        elif is_url(text):
            keys.append(text)
        else:
            keys += [str(p) for p in iter_image_paths([text])]
    return list(dict.fromkeys(keys))


class RemoteFile:
    """A URL readable through ``pyarrow.fs`` (s3://, gs://, hdfs://, ...), opened when the image is read;
    a read error becomes the record's error (OSError -> ImageLoadError in geoapp.imaging)."""

    def __init__(self, url: str):
        self.url = url
        self.name = url  # geoapp.imaging shows the file name part

    def read(self, size: int = -1) -> bytes:
        import pyarrow.fs as pafs

        try:
            filesystem, path = pafs.FileSystem.from_uri(self.url)
            with filesystem.open_input_stream(path) as stream:
                return stream.read(size if size and size > 0 else None)
        except ImageLoadError:
            raise
        except Exception as error:  # ArrowInvalid for bad URLs is not an OSError
            raise OSError(str(error).splitlines()[0] if str(error) else type(error).__name__) from error


def open_input(key: str, location: str | None = None):
    """What the family reads for an input: a path (``location`` resolves a relative key) or a RemoteFile."""
    if is_url(key):
        return RemoteFile(key)
    return location or key


def predict_inputs(family, keys: list[str], options, *, locations: list[str] | None = None, progress=None,
                   isolate_failures: bool = False) -> list[Prediction]:
    """One prediction per key, in order, with ``source`` = the key.

    ``isolate_failures``: an unexpected error in a batch is retried input by input and an input that
    still fails gets an error record (the Ray engine: one bad input never fails a whole run).
    """
    locations = locations or list(keys)
    images = [open_input(key, location) for key, location in zip(keys, locations)]
    try:
        predictions = family.predict_batch(images, options, progress=progress)
    except Exception:
        if not isolate_failures:
            raise
        predictions = []
        for key, image in zip(keys, images):
            try:
                predictions += family.predict_batch([image], options, progress=progress)
            except Exception as error:  # noqa: BLE001 - recorded, never swallowed silently
                failed = Prediction(source=key, error=f"{Path(key).name}: prediction failed "
                                                      f"({type(error).__name__}: {error})")
                predictions.append(family.finish(failed))
    for key, prediction in zip(keys, predictions):
        prediction.source = key
    return predictions


def load_family(spec, options):
    """``spec.load(options)``; with random weights the torch RNG is seeded first, so each process (each
    Ray worker, the local engine) builds the same random model."""
    if getattr(options, "random", False):
        import torch

        torch.manual_seed(RANDOM_WEIGHTS_SEED)
    return spec.load(options)
