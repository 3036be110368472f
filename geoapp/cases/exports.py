"""One entry point for every export format, shared by the CLI and the UI.

:func:`export_case` renders a format, optionally writes it atomically to a file, and records
the export (format and SHA-256 of the output) in the case's audit trail, so a report handed
to someone can later be matched to the case state it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from geoapp.results.textsafe import unicode_text

from .blobs import write_file_atomically
from .errors import CaseInputError
from .service import CaseStore

FORMATS = ("html", "geojson", "kml", "csv", "bundle")
MEDIA_TYPES = {"html": "text/html", "geojson": "application/geo+json", "kml": "application/vnd.google-earth.kml+xml",
               "csv": "text/csv", "bundle": "application/zip"}
SUFFIXES = {"html": ".html", "geojson": ".geojson", "kml": ".kml", "csv": ".csv", "bundle": ".zip"}


@dataclass(frozen=True)
class ExportResult:
    format: str
    sha256: str
    size: int
    path: Path | None  # where it was written, if a path was given
    data: bytes | None  # the content, for text formats without a path (bundles always go to a file)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def render(store: CaseStore, case_id: str, fmt: str) -> bytes:
    """The content of a text format (html, geojson, kml, csv) as UTF-8 bytes."""
    from . import geoexport, report

    if fmt == "html":
        text = report.render_html(store, case_id)
    elif fmt == "geojson":
        text = json.dumps(geoexport.to_geojson(store, case_id), indent=1, ensure_ascii=False) + "\n"
    elif fmt == "kml":
        text = geoexport.to_kml(store, case_id)
    elif fmt == "csv":
        text = geoexport.to_csv(store, case_id)
    else:
        raise CaseInputError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    return unicode_text(text).encode("utf-8")  # imported text may hold lone surrogates


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file."""
    write_file_atomically(path, lambda handle: handle.write(data), path.name)


def export_case(store: CaseStore, case_id: str, fmt: str, path: str | os.PathLike | None = None, *,
                actor: str | None = None) -> ExportResult:
    """Export ``case_id`` as ``fmt``; written to ``path`` when given (required for bundles); audited."""
    if fmt == "bundle":
        if path is None:
            raise CaseInputError("A bundle must be written to a file; give a path ending in .zip")
        from .bundle import export_bundle

        info = export_bundle(store, case_id, path, actor=actor)  # logs its own audit event
        return ExportResult("bundle", info.sha256, info.size, info.path, None)
    data = render(store, case_id, fmt)
    digest = hashlib.sha256(data).hexdigest()
    target = Path(path) if path is not None else None
    if target is not None:
        write_atomically(target, data)
    store.log_export(case_id, fmt, digest, actor=actor, file=target.name if target else None)
    return ExportResult(fmt, digest, len(data), target, None if target else data)
