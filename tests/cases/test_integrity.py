"""Evidence integrity: tampered or missing files are reported, never silently used."""

from __future__ import annotations

import os

import pytest

from geoapp.cases import CaseStore, DuplicateEvidenceError, EvidenceIntegrityError, export_bundle, render_html

from .conftest import gps_photos, populated_case


def _tamper(store: CaseStore, sha256: str) -> None:
    path = store.blobs.path_for(sha256)
    os.chmod(path, 0o644)  # stored files are read-only
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_open_case_reports_tampered_and_missing_files(store: CaseStore):
    case_id = populated_case(store)
    case = store.get_case(case_id)
    first, second = case.evidence
    assert store.open_case(case_id).ok
    _tamper(store, first.sha256)
    store.blobs.path_for(case.analyses[1].gradcam_sha256).unlink()
    opened = store.open_case(case_id, actor="auditor")
    kinds = {(p.what, p.kind, p.evidence_id) for p in opened.problems}
    assert kinds == {("evidence", "modified", first.id), ("gradcam", "missing", case.analyses[1].evidence_id)}
    assert "modified" in opened.problems[0].message and first.original_name in opened.problems[0].message
    logged = [e for e in store.events(case_id) if e.action == "integrity.problem"]
    assert len(logged) == 2 and logged[0].actor == "auditor"
    # Removing the evidence file entirely is reported too.
    store.blobs.path_for(second.sha256).unlink()
    assert {p.kind for p in store.open_case(case_id).problems if p.what == "evidence"} == {"modified", "missing"}


def test_analysis_refuses_tampered_evidence(store: CaseStore, small_locator):
    case = store.create_case("c", actor="a")
    evidence = store.add_evidence_file(case.id, gps_photos(1)[0], actor="a")
    _tamper(store, evidence.sha256)
    with pytest.raises(EvidenceIntegrityError, match="modified on disk"):
        store.run_analysis(case.id, evidence.id, small_locator, actor="a")
    store.blobs.path_for(evidence.sha256).unlink()
    with pytest.raises(EvidenceIntegrityError, match="missing"):
        store.run_analysis(case.id, evidence.id, small_locator, actor="a")
    assert store.get_case(case.id).analyses == []
    # Re-adding the original file repairs the store (same content, same hash).
    with pytest.raises(DuplicateEvidenceError):
        store.add_evidence_file(case.id, gps_photos(1)[0], actor="a")  # duplicate row, but the blob is rewritten
    assert store.open_case(case.id).ok
    assert store.run_analysis(case.id, evidence.id, small_locator, actor="a").evidence_sha256 == evidence.sha256


def test_prediction_of_another_file_is_not_recorded(store: CaseStore, small_locator):
    case = store.create_case("c", actor="a")
    one, two = gps_photos(2)
    evidence = store.add_evidence_file(case.id, one, actor="a")
    prediction = small_locator.predict(str(two))
    with pytest.raises(EvidenceIntegrityError, match="another file"):
        store.record_analysis(case.id, evidence.id, prediction, actor="a")


def test_exports_refuse_or_flag_tampered_evidence(store: CaseStore, tmp_path):
    case_id = populated_case(store, photos=1)
    evidence = store.get_case(case_id).evidence[0]
    _tamper(store, evidence.sha256)
    with pytest.raises(EvidenceIntegrityError, match="Cannot export"):
        export_bundle(store, case_id, tmp_path / "b.zip", actor="a")
    assert not (tmp_path / "b.zip").exists()
    html = render_html(store, case_id)
    assert "Integrity problems found" in html and "has been modified" in html
    assert "data:image/jpeg" not in html  # the altered file is not shown as if it were the evidence
