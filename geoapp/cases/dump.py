"""Cases as plain documents: for bundles, ``--json`` output and content comparison.

A *case document* is ``{"case": {...}, "evidence": [...], "claims": [...], "analyses":
[...], "notes": [...], "verdicts": [...], "events": [...]}`` with every column of every
row (datetimes as ISO 8601 UTC strings).  :func:`row_values` reads such a row back with
strict type checks (bundles are untrusted input).

:func:`canonical_dump` replaces the local ids by stable tokens (evidence by SHA-256,
the rest by position) and drops import bookkeeping, so the same case compares equal on
two machines; :func:`fingerprint` hashes it (shown in reports).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

import sqlalchemy as sa

from .errors import BundleError
from .models import Analysis, Base, Case, CaseClue, Claim, Event, Evidence, Note, Verdict

# Child tables in insertion order (foreign keys point backwards only).
CHILDREN: tuple[tuple[str, type[Base]], ...] = (
    ("evidence", Evidence), ("claims", Claim), ("analyses", Analysis), ("notes", Note), ("verdicts", Verdict),
    ("clue_records", CaseClue),
)
# Tables added after bundles were first written: an older bundle without them imports with none.
OPTIONAL_CHILDREN = frozenset({"clue_records"})
IMPORT_FIELDS = ("imported_at", "imported_by", "import_source")
MAX_JSON_DEPTH = 40


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.timezone.utc).isoformat()


def row_to_dict(obj: Base) -> dict[str, Any]:
    """Every column of an ORM row, JSON-ready."""
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        out[column.key] = _iso(value) if isinstance(value, dt.datetime) else value
    return out


def case_document(case: Case, events: list[Event]) -> dict[str, Any]:
    """The whole case (its relationships must be loaded) as a document."""
    doc: dict[str, Any] = {"case": row_to_dict(case)}
    for name, _ in CHILDREN:
        doc[name] = [row_to_dict(row) for row in getattr(case, name)]
    doc["events"] = [row_to_dict(e) for e in events]
    return doc


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise BundleError(f"{where}: nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise BundleError(f"{where}: not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BundleError(f"{where}: non-text key")
            _check_json(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where, depth + 1)
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise BundleError(f"{where}: unexpected value type {type(value).__name__}")


# Columns added by later migrations: bundles exported before them lack the field and get this value.
ADDED_LATER: dict[tuple[str, str], Any] = {("evidence", "kind"): "image", ("evidence", "parent_id"): None,
                                           ("evidence", "time_s"): None, ("evidence", "media"): None}


def row_values(model: type[Base], data: Any, where: str) -> dict[str, Any]:
    """Validated column values for ``model`` from an untrusted document row."""
    if not isinstance(data, dict):
        raise BundleError(f"{where}: expected an object")
    values: dict[str, Any] = {}
    for column in model.__table__.columns:
        key = column.key
        if key not in data and (model.__tablename__, key) in ADDED_LATER:
            values[key] = ADDED_LATER[(model.__tablename__, key)]
            continue
        if key not in data:
            raise BundleError(f"{where}: field {key!r} is missing")
        value = data[key]
        label = f"{where}.{key}"
        if value is None:
            if not column.nullable:
                raise BundleError(f"{label} must not be empty")
            values[key] = None
            continue
        kind = column.type
        if isinstance(kind, sa.types.TypeDecorator):  # UTCDateTime
            if not isinstance(value, str):
                raise BundleError(f"{label}: expected an ISO 8601 time")
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError as error:
                raise BundleError(f"{label}: expected an ISO 8601 time") from error
            values[key] = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
        elif isinstance(kind, sa.Boolean):
            if not isinstance(value, bool):
                raise BundleError(f"{label}: expected true/false")
            values[key] = value
        elif isinstance(kind, (sa.Integer, sa.BigInteger)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BundleError(f"{label}: expected an integer")
            values[key] = value
        elif isinstance(kind, sa.Float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BundleError(f"{label}: expected a number")
            values[key] = float(value)
        elif isinstance(kind, sa.JSON):
            _check_json(value, label)
            values[key] = value
        elif isinstance(kind, (sa.String, sa.Text)):
            if not isinstance(value, str) or "\x00" in value:
                raise BundleError(f"{label}: expected text")
            if getattr(kind, "length", None) and len(value) > kind.length:
                raise BundleError(f"{label}: longer than {kind.length} characters")
            values[key] = value
        else:  # pragma: no cover - every column type is handled above
            raise BundleError(f"{label}: unsupported column type")
    return values


def remap(value: Any, mapping: dict[str, str]) -> Any:
    """Replace every string equal to a key of ``mapping`` (ids) inside nested JSON."""
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [remap(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: remap(v, mapping) for k, v in value.items()}
    return value


ID_FIELDS = ("id", "case_id", "evidence_id", "claim_id", "analysis_id", "entity_id", "replaces", "parent_id")
GENERATED_JSON_FIELDS = ("figures", "details")  # machine-written JSON that may mention ids


def remap_row(row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Replace ids in id columns and generated JSON only; free text is never touched."""
    out = dict(row)
    for key in ID_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = mapping.get(out[key], out[key])
    for key in GENERATED_JSON_FIELDS:
        if key in out:
            out[key] = remap(out[key], mapping)
    return out


def _stable_order(rows: list[dict[str, Any]], time_key: str) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple:
        rest = {k: v for k, v in row.items() if k not in ("id", "case_id")}
        return (row.get(time_key) or "", json.dumps(rest, sort_keys=True, default=str))
    return sorted(rows, key=key)


def canonical_dump(doc: dict[str, Any], include_events: bool = False) -> dict[str, Any]:
    """The case content without local ids and import bookkeeping (see module docstring)."""
    mapping: dict[str, str] = {doc["case"]["id"]: "case"}
    ordered: dict[str, list[dict[str, Any]]] = {}
    time_keys = {"evidence": "added_at", "claims": "created_at", "analyses": "finished_at",
                 "notes": "created_at", "verdicts": "created_at", "clue_records": "created_at"}
    for name, _ in CHILDREN:
        ordered[name] = _stable_order(list(doc.get(name, [])), time_keys[name])
        for position, row in enumerate(ordered[name], start=1):
            mapping[row["id"]] = f"evidence:{row['sha256']}" if name == "evidence" else f"{name}:{position}"
    out: dict[str, Any] = {"case": {k: v for k, v in doc["case"].items() if k not in ("id", *IMPORT_FIELDS)}}
    for name, _ in CHILDREN:
        out[name] = [{k: v for k, v in remap_row(row, mapping).items() if k != "id"} for row in ordered[name]]
    if include_events:
        out["events"] = [{k: v for k, v in remap_row(e, mapping).items() if k not in ("id", "imported")}
                         for e in doc.get("events", [])]
    return out


def fingerprint(doc: dict[str, Any]) -> str:
    """SHA-256 of the canonical dump (events excluded): equal for a case and its imported copy."""
    text = json.dumps(canonical_dump(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()  # stays defined for any text
