"""Case bundles: identical round trip, duplicates, and hostile zips."""

from __future__ import annotations

import hashlib
import json
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from geoapp.cases import (BundleError, CaseStore, DuplicateCaseError, canonical_dump, case_document, export_bundle,
                          import_bundle)
from geoapp.cases import bundle as bundle_module

from .conftest import populated_case


@pytest.fixture
def other_store(make_db_url, tmp_path):
    opened = CaseStore.open(database_url=make_db_url(), store_dir=tmp_path / "other-evidence")
    yield opened
    opened.close()


@pytest.fixture
def exported(store: CaseStore, tmp_path) -> tuple[str, Path, dict]:
    case_id = populated_case(store)
    doc = case_document(store.get_case(case_id), store.events(case_id))
    path = tmp_path / "case.zip"
    export_bundle(store, case_id, path, actor="alice")
    return case_id, path, doc


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: dict[str, bytes], infos: dict[str, zipfile.ZipInfo] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr((infos or {}).get(name, name), data)
    return path


def _assert_nothing_imported(store: CaseStore, tmp_path: Path) -> None:
    assert store.list_cases() == []
    assert not any(tmp_path.rglob("evil*")) and not Path("/tmp/geoapp-zip-slip-evil").exists()


def test_round_trip_keeps_content_identical(store, other_store, exported):
    case_id, path, doc = exported
    result = import_bundle(other_store, path, actor="bob")
    assert result.case_id != case_id and result.origin_id == doc["case"]["origin_id"]
    imported = other_store.get_case(result.case_id)
    events = other_store.events(result.case_id)
    copy = case_document(imported, events)
    assert canonical_dump(copy) == canonical_dump(doc)
    assert {e.id for e in imported.evidence}.isdisjoint({row["id"] for row in doc["evidence"]})  # new ids
    for item in imported.evidence:
        assert other_store.blobs.read(item.sha256) == store.blobs.read(item.sha256)
    assert canonical_dump(copy, include_events=True)["events"][:-1] == canonical_dump(doc, include_events=True)["events"]
    assert events[-1].action == "case.import" and events[-1].actor == "bob" and not events[-1].imported
    assert all(e.imported for e in events[:-1])
    assert imported.imported_by == "bob" and imported.import_source == result.bundle_sha256
    assert other_store.open_case(result.case_id).ok
    # The verdict's figures point at the new ids.
    verdict = imported.verdict
    assert verdict.analysis_id in {a.id for a in imported.analyses}
    assert verdict.figures["analysis_id"] == verdict.analysis_id


def test_duplicate_import_is_refused_unless_new_id(store, other_store, exported):
    _, path, doc = exported
    first = import_bundle(other_store, path, actor="bob")
    with pytest.raises(DuplicateCaseError, match="new-id") as error:
        import_bundle(other_store, path, actor="bob")
    assert error.value.existing_id == first.case_id
    with pytest.raises(DuplicateCaseError):
        import_bundle(store, path, actor="alice")  # the original store holds the original
    second = import_bundle(other_store, path, actor="bob", as_new=True)
    assert second.case_id != first.case_id and second.origin_id == second.case_id
    assert len(other_store.list_cases()) == 2


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/geoapp-zip-slip-evil", "objects/../../evil", "objects\\..\\evil",
                                  "C:/evil", "objects/" + "A" * 64, "evil/manifest.json"])
def test_unsafe_member_names_are_refused(other_store, exported, tmp_path, name):
    _, path, _ = exported
    members = _members(path)
    members[name] = b"pwned"
    with pytest.raises(BundleError, match="Unsafe or unexpected member"):
        import_bundle(other_store, _write(tmp_path / "hostile.zip", members), actor="x")
    _assert_nothing_imported(other_store, tmp_path)


def test_symlink_member_is_refused(other_store, exported, tmp_path):
    _, path, _ = exported
    members = _members(path)
    name = next(n for n in members if n.startswith("objects/"))
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    members[name] = b"/etc/passwd"
    with pytest.raises(BundleError, match="link or special file"):
        import_bundle(other_store, _write(tmp_path / "hostile.zip", members, {name: info}), actor="x")
    _assert_nothing_imported(other_store, tmp_path)


def test_tampered_members_are_refused(other_store, exported, tmp_path):
    _, path, _ = exported
    members = _members(path)
    name = next(n for n in members if n.startswith("objects/"))
    altered = dict(members)
    altered[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    with pytest.raises(BundleError, match="does not match its SHA-256"):
        import_bundle(other_store, _write(tmp_path / "a.zip", altered), actor="x")
    assert not other_store.blobs.exists(name.split("/")[1])  # the bad content never lands under the good name
    doc = json.loads(members["case.json"])
    doc["notes"][0]["text"] = "rewritten history"
    altered = {**members, "case.json": json.dumps(doc).encode()}
    with pytest.raises(BundleError, match="case.json does not match|bytes; the manifest says"):
        import_bundle(other_store, _write(tmp_path / "b.zip", altered), actor="x")
    unlisted = {**members, "objects/" + "0" * 64: b"extra"}
    with pytest.raises(BundleError, match="does not match its manifest"):
        import_bundle(other_store, _write(tmp_path / "c.zip", unlisted), actor="x")
    missing = {k: v for k, v in members.items() if k != name}
    with pytest.raises(BundleError, match="does not match its manifest"):
        import_bundle(other_store, _write(tmp_path / "d.zip", missing), actor="x")
    (tmp_path / "e.zip").write_bytes(b"not a zip at all")
    with pytest.raises(BundleError, match="not a readable zip"):
        import_bundle(other_store, tmp_path / "e.zip", actor="x")
    _assert_nothing_imported(other_store, tmp_path)


def test_oversized_members_are_refused(other_store, exported, tmp_path, monkeypatch):
    _, path, _ = exported
    with pytest.raises(BundleError, match="unpacks to more than"):
        import_bundle(other_store, path, actor="x", max_total_bytes=10_000)
    monkeypatch.setattr(bundle_module, "MAX_OBJECT_BYTES", 1000)
    with pytest.raises(BundleError, match="declares .* bytes; the limit is 1000"):
        import_bundle(other_store, path, actor="x")
    _assert_nothing_imported(other_store, tmp_path)


def test_lying_size_header_is_caught(other_store, exported, tmp_path):
    """A member whose headers understate its size (a classic bomb trick) never gets through."""
    _, path, _ = exported
    members = _members(path)
    name = next(n for n in members if n.startswith("objects/"))
    manifest = json.loads(members["manifest.json"])
    real = manifest["members"][name]["size"]
    manifest["members"][name]["size"] = real - 100
    members["manifest.json"] = json.dumps(manifest).encode()
    raw = bytearray(_write(tmp_path / "lie.zip", members).read_bytes())
    encoded = name.encode()
    for signature, size_offset, name_offset in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            if raw[start + name_offset:start + name_offset + len(encoded)] == encoded:
                struct.pack_into("<I", raw, start + size_offset, real - 100)
            start += 4
    (tmp_path / "lie.zip").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="damaged|larger than|bytes in its record"):
        import_bundle(other_store, tmp_path / "lie.zip", actor="x")
    _assert_nothing_imported(other_store, tmp_path)


def test_clues_travel_in_bundles_and_older_bundles_without_them_import(store, other_store, tmp_path):
    from geoapp.cases.clues import add_clue, edit_clue

    case_id = populated_case(store)
    first = add_clue(store, case_id, "tz:offset=+02:00,time=2008-10-20T12:00:00", source="EXIF", actor="alice")
    edit_clue(store, case_id, first.id, "tz:offset=+03:00,time=2008-10-20T12:00:00", actor="alice")
    add_clue(store, case_id, "drive:left", actor="alice")
    path = tmp_path / "clues.zip"
    export_bundle(store, case_id, path, actor="alice")
    doc = case_document(store.get_case(case_id), store.events(case_id))
    assert len(doc["clue_records"]) == 3

    imported = other_store.get_case(import_bundle(other_store, path, actor="bob").case_id)
    assert canonical_dump(case_document(imported, [])) == canonical_dump(doc)
    assert sorted(c.text for c in imported.clues) == ["drive:left", "tz:offset=+03:00,time=2008-10-20T12:00:00"]
    edited = next(c for c in imported.clue_records if c.replaces is not None)
    assert edited.replaces in {c.id for c in imported.clue_records} and edited.replaces != first.id  # new ids

    # A bundle written before clues were stored (no "clue_records" list) still imports, with no clues.
    members = _members(path)
    old = json.loads(members["case.json"])
    old.pop("clue_records")
    members["case.json"] = json.dumps(old).encode()
    manifest = json.loads(members["manifest.json"])
    manifest["members"]["case.json"] = {"sha256": hashlib.sha256(members["case.json"]).hexdigest(),
                                        "size": len(members["case.json"])}
    members["manifest.json"] = json.dumps(manifest).encode()
    result = import_bundle(other_store, _write(tmp_path / "old.zip", members), actor="bob", as_new=True)
    older = other_store.get_case(result.case_id)
    assert older.clue_records == [] and len(older.evidence) == len(doc["evidence"])

    # A clue that replaces one missing from the bundle is refused before anything is stored.
    broken = json.loads(_members(path)["case.json"])
    broken["clue_records"][-1]["replaces"] = "0" * 32
    members["case.json"] = json.dumps(broken).encode()
    manifest["members"]["case.json"] = {"sha256": hashlib.sha256(members["case.json"]).hexdigest(),
                                        "size": len(members["case.json"])}
    members["manifest.json"] = json.dumps(manifest).encode()
    cases_before = len(other_store.list_cases())
    with pytest.raises(BundleError, match="replaces a clue"):
        import_bundle(other_store, _write(tmp_path / "broken.zip", members), actor="bob", as_new=True)
    assert len(other_store.list_cases()) == cases_before
