"""Bundles built to waste disk or to slip content past deduplication (see geoapp.cases.bundle)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from geoapp.cases import BundleError, CaseStore, export_bundle, import_bundle
from tests.cases.conftest import populated_case


@pytest.fixture
def bundle(store: CaseStore, tmp_path: Path) -> Path:
    path = tmp_path / "case.zip"
    export_bundle(store, populated_case(store), path, actor="alice")
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(path: Path, members: dict[str, bytes]) -> Path:
    """A bundle whose manifest lists ``members`` with their true hashes and sizes (a careful forger)."""
    manifest = json.loads(members["manifest.json"])
    manifest["members"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                           for name, data in members.items() if name != "manifest.json"}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            if name != "manifest.json":
                archive.writestr(name, data)
    return path


def _stored_files(store: CaseStore) -> int:
    return sum(1 for p in store.blobs.objects.rglob("*") if p.is_file()) if store.blobs.objects.exists() else 0


def test_unreferenced_objects_are_refused_and_leave_nothing(make_db_url, bundle, tmp_path):
    fresh = CaseStore.open(database_url=make_db_url(), store_dir=tmp_path / "fresh")
    try:
        members = _members(bundle)
        junk = b"\0" * 200_000  # stands for the 500 MB a hostile bundle would carry
        members[f"objects/{hashlib.sha256(junk).hexdigest()}"] = junk
        with pytest.raises(BundleError, match="does not refer to"):
            import_bundle(fresh, _rewrite(tmp_path / "padded.zip", members), actor="x")
        assert fresh.list_cases() == [] and _stored_files(fresh) == 0
    finally:
        fresh.close()


def test_evidence_must_have_the_size_its_record_states(make_db_url, bundle, tmp_path):
    fresh = CaseStore.open(database_url=make_db_url(), store_dir=tmp_path / "fresh")
    try:
        members = _members(bundle)
        doc = json.loads(members["case.json"])
        doc["evidence"][0]["file_size"] += 1
        members["case.json"] = json.dumps(doc).encode()
        with pytest.raises(BundleError, match="bytes in its record"):
            import_bundle(fresh, _rewrite(tmp_path / "sized.zip", members), actor="x")
        assert fresh.list_cases() == [] and _stored_files(fresh) == 0
    finally:
        fresh.close()


def test_objects_are_verified_even_when_the_store_has_their_hash(store: CaseStore, bundle, tmp_path):
    members = _members(bundle)
    name = next(n for n in members if n.startswith("objects/"))
    data = members[name]
    members[name] = data[:-1] + bytes([data[-1] ^ 1])  # same name and size, other content
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as archive:  # manifest untouched: it still names the true hash
        for member, content in members.items():
            archive.writestr(member, content)
    before = len(store.list_cases())
    with pytest.raises(BundleError, match="does not match its SHA-256"):
        import_bundle(store, forged, actor="x", as_new=True)  # this store already holds every object
    assert len(store.list_cases()) == before
    assert store.blobs.has_valid(name.split("/")[1])  # the stored original is untouched
