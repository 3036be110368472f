"""Case bundles: one zip that carries a case to another machine, hash-checked end to end.

Layout (nothing else is accepted on import)::

    manifest.json        format, versions, and {"members": {name: {"sha256", "size"}}}
    case.json            the case document (see geoapp.cases.dump)
    objects/<sha256>     every evidence file and Grad-CAM image, named by its own hash

Import treats the zip as hostile: member names must match the layout exactly (so no
``..``, absolute paths, backslashes or drive letters), symlinks and duplicate names are
refused, sizes are checked from the headers *and* enforced while streaming (a lying
header or a zip bomb hits the cap; the rules are :mod:`geoapp.safezip`'s, shared with the
regional-build upload, including the cap in proportion to the bundle's size), every member must match the manifest's SHA-256, and
objects are verified against their names before they are stored, also when the store
already holds that hash.  A bundle carries exactly the files its case refers to: an
unreferenced object is refused (it would only fill the disk), and an evidence file must
have the size its evidence record states, so the bundle's total is bounded by the case.  Files are written to
the store first; then the whole case (new ids, original content and timestamps) is
inserted in one transaction with an ``case.import`` event.  A case whose origin id is
already in the store is refused unless ``as_new=True`` (it then gets a new origin too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from geoapp.safezip import UnsafeZipError, ZipLimits, check_archive, open_member, open_zip, read_member

from .blobs import is_sha256, write_file_atomically
from .dump import CHILDREN, OPTIONAL_CHILDREN, case_document, remap_row, row_values
from .errors import BundleError, CaseError, DuplicateCaseError, EvidenceIntegrityError
from .models import Case, Event, new_id, utcnow
from .service import CaseStore, _short

FORMAT = "geoapp-case-bundle"
FORMAT_VERSION = 1
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_OBJECT_BYTES = 512 * 1024 * 1024  # the image loader's own limit
MAX_TOTAL_BYTES = 8 * 1024 * 1024 * 1024
MAX_MEMBERS = 20_000
MAX_GRADCAM_BYTES = 64 * 1024 * 1024  # a Grad-CAM is a PNG of one photo's size
_OBJECT_RE = re.compile(r"^objects/([0-9a-f]{64})$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    sha256: str
    size: int
    members: int


@dataclass(frozen=True)
class ImportResult:
    case_id: str
    origin_id: str
    title: str
    bundle_sha256: str
    evidence: int
    analyses: int


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _referenced_objects(doc: dict[str, Any]) -> set[str]:
    shas = {row["sha256"] for row in doc.get("evidence", [])}
    shas |= {row["gradcam_sha256"] for row in doc.get("analyses", []) if row.get("gradcam_sha256")}
    return shas


# ---------------------------------------------------------------------------- export
def export_bundle(store: CaseStore, case_id: str, path: str | os.PathLike, *, actor: str | None = None) -> BundleInfo:
    """Write the case as a bundle zip at ``path`` (atomically); refuses if any file fails its hash."""
    from geoapp.version import __version__

    target = Path(path)
    case = store.get_case(case_id)
    problems = store.check_integrity(case)
    if problems:
        raise EvidenceIntegrityError("Cannot export: " + "; ".join(p.message for p in problems))
    doc = case_document(case, store.events(case_id))
    case_json = json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    members: dict[str, dict[str, Any]] = {"case.json": {"sha256": hashlib.sha256(case_json).hexdigest(),
                                                         "size": len(case_json)}}
    objects = sorted(_referenced_objects(doc))
    for sha in objects:
        members[f"objects/{sha}"] = {"sha256": sha, "size": store.blobs.path_for(sha).stat().st_size}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "app_version": __version__,
                "created_at": utcnow().isoformat(), "created_by": store._actor(actor), "case_id": case.id,
                "origin_id": case.origin_id, "title": case.title, "members": members}
    def write_zip(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False),
                             compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr("case.json", case_json, compress_type=zipfile.ZIP_DEFLATED)
            for sha in objects:
                # read() re-verifies: a file altered since the integrity check is not exported
                data = store.blobs.read(sha, what=f"stored file {sha[:12]}")
                archive.writestr(f"objects/{sha}", data, compress_type=zipfile.ZIP_STORED)

    write_file_atomically(target, write_zip, f"the bundle {target.name}")
    info = BundleInfo(target, _file_sha256(target), target.stat().st_size, len(members) + 1)
    store.log_export(case_id, "bundle", info.sha256, actor=actor, file=target.name)
    return info


# ---------------------------------------------------------------------------- import
def _limits(max_total: int) -> ZipLimits:
    # Read at call time (tests lower MAX_OBJECT_BYTES); the ratio and free-disk rules are safezip's.
    return ZipLimits(max_members=MAX_MEMBERS, max_member_bytes=MAX_OBJECT_BYTES,
                     max_total_bytes=min(max_total, ZipLimits().max_total_bytes), allow_dirs=False)


def _check_members(archive: zipfile.ZipFile, archive_bytes: int, max_total: int,
                   unpack_dir: Path | None) -> dict[str, zipfile.ZipInfo]:
    for info in archive.infolist()[:MAX_MEMBERS + 1]:  # the layout first: the names a bundle may hold
        name = info.filename
        if name not in ("manifest.json", "case.json") and not _OBJECT_RE.match(name):
            raise BundleError(f"Unsafe or unexpected member name in bundle: {name!r} (refused)")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for info in check_archive(archive, archive_bytes, _limits(max_total), unpack_dir=unpack_dir):
        if not info.filename.startswith("objects/") and info.file_size > MAX_JSON_BYTES:
            raise BundleError(f"Bundle member {info.filename!r} declares {info.file_size} bytes; "
                              f"the limit is {MAX_JSON_BYTES}")
        by_name[info.filename] = info
    for required in ("manifest.json", "case.json"):
        if required not in by_name:
            raise BundleError(f"Not a geoapp case bundle: {required} is missing")
    return by_name


def _load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BundleError(f"{what} in the bundle is not valid JSON ({error.__class__.__name__})") from error


def _verify_manifest(manifest: Any, by_name: dict[str, zipfile.ZipInfo]) -> dict[str, dict[str, Any]]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError("Not a geoapp case bundle (manifest.json has the wrong format)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"Unsupported bundle format version {manifest.get('format_version')!r}; "
                          f"this geoapp reads version {FORMAT_VERSION}")
    members = manifest.get("members")
    if not isinstance(members, dict):
        raise BundleError("manifest.json lists no members")
    present = set(by_name) - {"manifest.json"}
    if set(members) != present:
        extra, missing = sorted(present - set(members)), sorted(set(members) - present)
        raise BundleError(f"The bundle does not match its manifest (unlisted: {extra[:3]}, missing: {missing[:3]})")
    for name, entry in members.items():
        if not isinstance(entry, dict) or not is_sha256(entry.get("sha256")) or not isinstance(entry.get("size"), int):
            raise BundleError(f"manifest.json entry for {name!r} is malformed")
        if by_name[name].file_size != entry["size"]:
            raise BundleError(f"Bundle member {name!r} has {by_name[name].file_size} bytes; the manifest says {entry['size']}")
        match = _OBJECT_RE.match(name)
        if match and match.group(1) != entry["sha256"]:
            raise BundleError(f"Bundle member {name!r} is not named after its SHA-256")
    return members


def _validated_document(doc: Any) -> dict[str, Any]:
    """Typed rows for every table, with cross-references checked (untrusted input)."""
    if not isinstance(doc, dict):
        raise BundleError("case.json is not an object")
    out: dict[str, Any] = {"case": row_values(Case, doc.get("case"), "case")}
    for name, model in CHILDREN:
        rows = doc.get(name, [] if name in OPTIONAL_CHILDREN else None)
        if not isinstance(rows, list):
            raise BundleError(f"case.json: {name} must be a list")
        out[name] = [row_values(model, row, f"{name}[{i}]") for i, row in enumerate(rows)]
    events = doc.get("events", [])
    if not isinstance(events, list):
        raise BundleError("case.json: events must be a list")
    out["events"] = [row_values(Event, row, f"events[{i}]") for i, row in enumerate(events)]
    case_id = out["case"]["id"]
    ids = {case_id}
    for name, _ in CHILDREN:
        for row in out[name]:
            if row["case_id"] != case_id or row["id"] in ids:
                raise BundleError(f"case.json: {name} row {row['id']!r} does not belong to this case or repeats an id")
            ids.add(row["id"])
    evidence_ids = {r["id"] for r in out["evidence"]}
    clue_ids = {r["id"] for r in out["clue_records"]}
    if any(r["replaces"] is not None and r["replaces"] not in clue_ids for r in out["clue_records"]):
        raise BundleError("case.json: a clue replaces a clue that is not in this bundle")
    for row in out["evidence"]:
        if not is_sha256(row["sha256"]):
            raise BundleError("case.json: an evidence hash is malformed")
        if row["parent_id"] is not None and row["parent_id"] not in evidence_ids:
            raise BundleError(f"case.json: frame {row['id']!r} refers to a video that is not in the case")
    for row in out["analyses"]:
        if row["evidence_id"] not in evidence_ids or (row["gradcam_sha256"] and not is_sha256(row["gradcam_sha256"])):
            raise BundleError(f"case.json: analysis {row['id']!r} refers to unknown evidence or a bad hash")
    claim_ids, analysis_ids = {r["id"] for r in out["claims"]}, {r["id"] for r in out["analyses"]}
    for row in out["verdicts"]:
        if (row["claim_id"] and row["claim_id"] not in claim_ids) or (row["analysis_id"] and row["analysis_id"] not in analysis_ids):
            raise BundleError(f"case.json: verdict {row['id']!r} refers to an unknown claim or analysis")
    for row in out["events"]:
        if row["case_id"] != case_id:
            raise BundleError("case.json: an event belongs to another case")
    return out


def import_bundle(store: CaseStore, path: str | os.PathLike, *, actor: str | None = None, as_new: bool = False,
                  max_total_bytes: int = MAX_TOTAL_BYTES) -> ImportResult:
    """Import a bundle as a new case (new ids, identical content).  See the module docstring."""
    source = Path(path)
    actor = store._actor(actor)
    try:
        bundle_sha = _file_sha256(source)
        archive = open_zip(source, source.name)
    except FileNotFoundError as error:
        raise BundleError(f"{source}: no such file") from error
    except (UnsafeZipError, OSError) as error:
        raise BundleError(f"{source.name} is not a geoapp case bundle (not a readable zip file)") from error
    with archive:
        try:
            by_name = _check_members(archive, source.stat().st_size, max_total_bytes, store.blobs.root)
            manifest = _load_json(read_member(archive, by_name["manifest.json"], MAX_JSON_BYTES), "manifest.json")
            members = _verify_manifest(manifest, by_name)
            case_bytes = read_member(archive, by_name["case.json"], MAX_JSON_BYTES)
            if hashlib.sha256(case_bytes).hexdigest() != members["case.json"]["sha256"]:
                raise BundleError("case.json does not match its SHA-256 in the manifest (damaged or altered bundle)")
            doc = _validated_document(_load_json(case_bytes, "case.json"))
            needed = {row["sha256"] for row in doc["evidence"]} | {
                row["gradcam_sha256"] for row in doc["analyses"] if row["gradcam_sha256"]}
            missing = sorted(sha for sha in needed if f"objects/{sha}" not in members)
            if missing:
                raise BundleError(f"The bundle lacks the file with SHA-256 {missing[0][:12]}… that the case refers to")
            _check_objects_referenced(members, doc)
            origin = doc["case"]["origin_id"]
            existing = _existing_origin(store, origin)
            if existing and not as_new:
                raise DuplicateCaseError(f"This case is already in the store as {existing} (same origin); "
                                         "import it with --new-id to keep a separate copy", existing)
            for name, entry in members.items():  # files first; unreferenced leftovers are harmless
                if name.startswith("objects/"):
                    info = by_name[name]
                    with open_member(archive, info) as handle:
                        # verify_existing: deduplication must not skip the check of what the bundle holds
                        store.blobs.put_stream(handle, entry["sha256"], min(info.file_size, MAX_OBJECT_BYTES),
                                               what=f"bundle member {name}", verify_existing=True)
        except UnsafeZipError as error:
            raise BundleError(f"{error} (nothing imported)") from error
        except EvidenceIntegrityError as error:
            raise BundleError(f"{error} (damaged or altered bundle; nothing imported)") from error
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as error:
            raise BundleError(f"The bundle is damaged ({error}); nothing imported") from error
        except OSError as error:  # reading the zip (store write failures arrive as StoreWriteError)
            raise BundleError(f"Cannot read the bundle: {error}") from error
    return _insert(store, doc, actor, bundle_sha, manifest, as_new)


def _check_objects_referenced(members: dict[str, dict[str, Any]], doc: dict[str, Any]) -> None:
    """Every object is a file the case refers to, of the size the case says (evidence) or plausible (Grad-CAM)."""
    sizes = {row["sha256"]: row["file_size"] for row in doc["evidence"]}
    gradcams = {row["gradcam_sha256"] for row in doc["analyses"] if row["gradcam_sha256"]}
    for name, entry in members.items():
        if not name.startswith("objects/"):
            continue
        sha = entry["sha256"]
        if sha not in sizes and sha not in gradcams:
            raise BundleError(f"The bundle carries a file ({sha[:12]}…, {entry['size']} bytes) that the case does "
                              "not refer to; a genuine export has none (refused, nothing imported)")
        if sha in sizes and sizes[sha] is not None and entry["size"] != sizes[sha]:
            raise BundleError(f"The evidence file {sha[:12]}… is {entry['size']} bytes in the bundle but "
                              f"{sizes[sha]} bytes in its record (refused, nothing imported)")
        if sha not in sizes and entry["size"] > MAX_GRADCAM_BYTES:
            raise BundleError(f"The Grad-CAM image {sha[:12]}… declares {entry['size']} bytes; the limit is "
                              f"{MAX_GRADCAM_BYTES} (refused, nothing imported)")


def _existing_origin(store: CaseStore, origin: str) -> str | None:
    with store.db.read() as session:
        return session.scalar(sa.select(Case.id).where(Case.origin_id == origin).limit(1))


def _insert(store: CaseStore, doc: dict[str, Any], actor: str, bundle_sha: str, manifest: dict[str, Any],
            as_new: bool) -> ImportResult:
    tables = CHILDREN
    old_case = doc["case"]
    mapping = {old_case["id"]: new_id()}
    for name, _ in tables:
        for row in doc[name]:
            mapping[row["id"]] = new_id()
    now = utcnow()
    case_values = {**old_case, "id": mapping[old_case["id"]], "imported_at": now, "imported_by": actor,
                   "import_source": bundle_sha}
    if as_new:
        case_values["origin_id"] = case_values["id"]
    try:
        with store._write() as session:
            if not as_new and session.scalar(sa.select(Case.id).where(Case.origin_id == old_case["origin_id"])):
                raise DuplicateCaseError("This case was imported by someone else meanwhile; use --new-id", "")
            session.add(Case(**case_values))
            session.flush()
            for name, model in tables:
                for row in doc[name]:
                    session.add(model(**remap_row(row, mapping)))
                session.flush()  # parents before children (foreign keys)
            for row in doc["events"]:
                values = {k: v for k, v in remap_row(row, mapping).items() if k != "id"}
                values["imported"] = True
                session.add(Event(**values))
            session.add(Event(case_id=case_values["id"], at=now, actor=actor, action="case.import", entity_type="case",
                              entity_id=case_values["id"], imported=False,
                              details={"bundle_sha256": bundle_sha, "source_case_id": old_case["id"],
                                       "origin_id": old_case["origin_id"], "as_new_case": as_new,
                                       "exported_by": str(manifest.get("created_by", ""))[:200],
                                       "exported_at": str(manifest.get("created_at", ""))[:40],
                                       "app_version": str(manifest.get("app_version", ""))[:40]}))
    except sa.exc.IntegrityError as error:
        raise CaseError(f"The bundle could not be imported: {_short(error)}") from error
    return ImportResult(case_values["id"], case_values["origin_id"], old_case["title"], bundle_sha,
                        len(doc["evidence"]), len(doc["analyses"]))

