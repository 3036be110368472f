"""Reliability: kill -9 mid-write, two writers at once, full disk, read-only store."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from geoapp.cases import (CaseStore, StoreWriteError, canonical_dump, case_document, export_bundle, import_bundle)
from geoapp import fileio as fileio_module
from geoapp.cases import blobs as blobs_module

from ..conftest import REPO
from .conftest import gps_photos, png_bytes, populated_case

TRIALS = 20


def _worker(*args: str, timeout: int = 240) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "tests.cases._workers", *map(str, args)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _json(value):
    """JSON columns read with plain SQL: text on SQLite, already parsed by psycopg on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def _check_database(store: CaseStore) -> None:
    with store.db.engine.connect() as conn:
        if store.db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []


def _check_analyses(store: CaseStore, case_id: str) -> int:
    """Every committed analysis is whole: JSON parses, evidence and Grad-CAM files intact, one event each."""
    with store.db.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT a.id, a.candidates, a.surface, a.parameters, a.model_identity, a.claim_mass, a.gradcam_sha256, "
            "e.sha256 FROM analyses a JOIN evidence e ON e.id = a.evidence_id WHERE a.case_id = :c"),
            {"c": case_id}).fetchall()
        events = conn.execute(sa.text("SELECT entity_id FROM case_events WHERE case_id = :c AND action = 'analysis.add'"),
                              {"c": case_id}).scalars().all()
    for row in rows:
        candidates, surface = _json(row[1]), _json(row[2])
        assert isinstance(candidates, list) and candidates and candidates[0]["rank"] == 1
        assert isinstance(surface["probability"], list) and isinstance(_json(row[3]), dict)
        assert isinstance(_json(row[4]), dict) and isinstance(_json(row[5]), dict)
        assert store.blobs.has_valid(row[7]) and store.blobs.has_valid(row[6])
    assert sorted(events) == sorted(r[0] for r in rows)  # the event commits with its analysis, or neither
    return len(rows)


@pytest.mark.timeout(300)
def test_kill_9_during_analysis(store: CaseStore, db_url: str, small_gallery: Path, tmp_path):
    case = store.create_case("crash during analysis", actor="t")
    store.add_claim(case.id, "Kharkiv", actor="t")
    for photo in gps_photos(2):
        store.add_evidence_file(case.id, photo, actor="t")
    store.close()
    result = _worker("crash-analysis", db_url, store.blobs.root, case.id, small_gallery, TRIALS, 1)
    assert result["kills"] == TRIALS and set(result["integrity"]) == {"ok"}
    reopened = CaseStore.open(database_url=db_url, store_dir=store.blobs.root)
    try:
        _check_database(reopened)
        committed = _check_analyses(reopened, case.id)
        assert committed >= 1  # at least the warm-up; usually many
        opened = reopened.open_case(case.id)
        assert opened.ok and len(opened.case.evidence) == 2
        # The store is still fully usable afterwards.
        reopened.add_note(case.id, "after the crashes", actor="t")
    finally:
        reopened.close()


@pytest.mark.timeout(300)
def test_kill_9_during_bundle_import(store: CaseStore, make_db_url, tmp_path):
    case_id = populated_case(store)
    bundle = tmp_path / "case.zip"
    export_bundle(store, case_id, bundle, actor="t")
    original = canonical_dump(case_document(store.get_case(case_id), store.events(case_id)))
    bundled_events = len(store.events(case_id)) - 1  # the export event itself is not in the bundle
    target_url = make_db_url()
    target_dir = tmp_path / "target-evidence"
    result = _worker("crash-import", target_url, target_dir, bundle, TRIALS, 2)
    assert result["kills"] == TRIALS and set(result["integrity"]) == {"ok"}
    target = CaseStore.open(database_url=target_url, store_dir=target_dir)
    try:
        _check_database(target)
        cases = target.list_cases()
        assert len(cases) >= 1
        for summary in cases:  # no half-imported case: each is complete and identical to the original
            imported = target.get_case(summary.id)
            events = target.events(summary.id)
            copy = canonical_dump(case_document(imported, events))
            assert {k: v for k, v in copy.items() if k != "case"} == {k: v for k, v in original.items() if k != "case"}
            assert len(events) == bundled_events + 1 and events[-1].action == "case.import"
            assert target.open_case(summary.id).ok
    finally:
        target.close()


@pytest.mark.timeout(240)
def test_two_processes_write_to_one_case(store: CaseStore, db_url: str, tmp_path):
    count = 30
    case = store.create_case("busy case", actor="t")
    go = tmp_path / "go"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.cases._workers", "concurrent", db_url, str(store.blobs.root),
                               case.id, str(i), str(count), str(go)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    import time

    time.sleep(2.0)  # let both import and open the store, then release them together
    go.write_text("go")
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=200)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["duplicates"] for r in results) == 1  # the shared file was added exactly once
    _check_database(store)
    full = store.get_case(case.id)
    assert len(full.notes) == 2 * count
    assert len(full.evidence) == 2 * count + 1 == sum(r["evidence"] for r in results)
    assert len(store.events(case.id)) == 1 + 2 * count + 2 * count + 1
    assert {n.text for n in full.notes} == {f"worker {i} note {j}" for i in range(2) for j in range(count)}
    assert store.open_case(case.id).ok


def test_processes_opening_a_new_database_at_once_migrate_it_once(make_db_url, tmp_path):
    """The first open of an empty database creates the schema; several processes doing it at the same
    moment (an analyst's CLI and the app) must not both create it: PostgreSQL serialises them with an
    advisory lock, SQLite with BEGIN IMMEDIATE. Every process ends at the newest revision."""
    from geoapp.cases.db import HEAD_REVISION, create_engine

    url, go = make_db_url(), tmp_path / "go"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.cases._workers", "first-open", url, str(tmp_path), str(go)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    import time

    time.sleep(3.0)  # let every process import SQLAlchemy and Alembic, then release them together
    go.write_text("go")
    for proc in procs:
        out, err = proc.communicate(timeout=200)
        assert proc.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"revision": HEAD_REVISION}
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
            assert set(sa.inspect(conn).get_table_names()) >= {"cases", "evidence", "analyses", "case_events"}
    finally:
        engine.dispose()


def _no_partial_state(store: CaseStore, case_id: str, evidence: int, events: int) -> None:
    case = store.get_case(case_id)
    assert len(case.evidence) == evidence and len(store.events(case_id)) == events and case.analyses == []
    assert not any(store.blobs.tmp.glob("*.part"))


def test_disk_full_is_a_clear_error_with_no_partial_state(store: CaseStore, monkeypatch, tmp_path):
    case = store.create_case("c", actor="t")
    photo = gps_photos(1)[0]

    def full(handle, chunks):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(blobs_module, "_write_chunks", full)
    with pytest.raises(StoreWriteError, match="disk is full.*Nothing was added"):
        store.add_evidence_file(case.id, photo, actor="t")
    _no_partial_state(store, case.id, 0, 1)
    assert not [p for p in store.blobs.root.rglob("*") if p.is_file()]
    monkeypatch.undo()
    evidence = store.add_evidence_file(case.id, photo, actor="t")
    monkeypatch.setattr(blobs_module, "_write_chunks", full)
    from .conftest import fake_prediction

    with pytest.raises(StoreWriteError, match="Grad-CAM"):
        store.record_analysis(case.id, evidence.id, fake_prediction(evidence.sha256, [(1.0, 2.0, 1.0)]),
                              gradcam=png_bytes(3), actor="t")
    _no_partial_state(store, case.id, 1, 2)
    # a bundle import that runs out of space imports nothing
    monkeypatch.undo()
    export_bundle(store, case.id, tmp_path / "b.zip", actor="t")
    other = CaseStore.open(database_url=f"sqlite:///{tmp_path / 'other.db'}", store_dir=tmp_path / "other")
    monkeypatch.setattr(blobs_module, "_write_chunks", full)
    with pytest.raises(StoreWriteError, match="disk is full"):
        import_bundle(other, tmp_path / "b.zip", actor="t")
    assert other.list_cases() == []
    other.close()


def test_read_only_store_is_a_clear_error(store: CaseStore, monkeypatch):
    case = store.create_case("c", actor="t")
    first, second = gps_photos(2)
    store.add_evidence_file(case.id, first, actor="t")
    folders = [store.blobs.root, *[p for p in store.blobs.root.rglob("*") if p.is_dir()]]
    modes = {p: p.stat().st_mode for p in folders}
    try:
        for folder in folders:
            os.chmod(folder, 0o555)
        probe = store.blobs.tmp / "probe"
        try:
            probe.write_bytes(b"x")  # root ignores permissions: simulate what the OS would say instead
            probe.unlink()

            def denied(*args, **kwargs):
                raise PermissionError(errno.EACCES, "Permission denied")

            monkeypatch.setattr(fileio_module.tempfile, "mkstemp", denied)  # the one atomic writer
        except PermissionError:
            pass
        with pytest.raises(StoreWriteError, match="read-only or not writable"):
            store.add_evidence_file(case.id, second, actor="t")
    finally:
        for folder, mode in modes.items():
            os.chmod(folder, mode)
    _no_partial_state(store, case.id, 1, 2)
