"""Case service: cases, evidence, claims, analyses, notes, verdicts and the audit trail."""

from __future__ import annotations

import numpy as np
import pytest

from geoapp.cases import (CaseInputError, CaseNotFoundError, CaseStore, DuplicateEvidenceError)
from geoapp.cases.claims import resolve_place
from geoapp.geo.distance import haversine_km

from .conftest import fake_prediction, gps_photos, png_bytes


def test_create_list_and_resolve(store: CaseStore):
    a = store.create_case("First", "about a photo", actor="alice")
    b = store.create_case("  Second\tcase  ", actor="bob")
    assert b.title == "Second case"  # one line, whitespace collapsed
    listed = store.list_cases()
    assert [c.id for c in listed] == [b.id, a.id]  # newest change first
    assert listed[0].evidence == 0 and listed[0].verdict is None
    assert store.resolve_case_id(a.id[:8].upper()) == a.id
    with pytest.raises(CaseNotFoundError):
        store.resolve_case_id("zz%_")  # not hex: never reaches a LIKE pattern
    with pytest.raises(CaseNotFoundError):
        store.get_case("0" * 32)
    with pytest.raises(CaseInputError):
        store.create_case("   ", actor="alice")
    assert [e.action for e in store.events(a.id)] == ["case.create"]
    assert store.events(a.id)[0].actor == "alice"


def test_evidence_is_stored_by_hash_not_by_name(store: CaseStore, tmp_path):
    case = store.create_case("c", actor="a")
    photo = gps_photos(1)[0]
    data = photo.read_bytes()
    evidence = store.add_evidence(case.id, data, "../../etc/passwd\x00.jpg", actor="a")
    assert evidence.original_name == "passwd.jpg"  # display only
    stored = store.blobs.path_for(evidence.sha256)
    assert stored.read_bytes() == data and stored.name == evidence.sha256
    assert all(p.name != "passwd.jpg" for p in store.blobs.root.rglob("*"))
    assert not (tmp_path / "etc").exists()
    assert evidence.exif["gps_lat"] == pytest.approx(43.4674, abs=1e-3)
    assert (evidence.width, evidence.height, evidence.file_size) == (640, 480, len(data))
    with pytest.raises(DuplicateEvidenceError) as dup:
        store.add_evidence(case.id, data, "again.jpg", actor="a")
    assert dup.value.existing_id == evidence.id
    other = store.create_case("other", actor="a")
    assert store.add_evidence(other.id, data, "same.jpg", actor="a").sha256 == evidence.sha256  # shared blob
    with pytest.raises(CaseInputError, match="not an image|unrecognised"):
        store.add_evidence(case.id, b"hello, not an image", "x.jpg", actor="a")
    with pytest.raises(CaseNotFoundError):
        store.add_evidence("f" * 32, data, "x.jpg", actor="a")


@pytest.mark.parametrize("text, kind, code", [
    ("Kharkiv", "place", "UA"), ("Kharkov, UA", "place", "UA"), ("Ukraine", "country", "UA"),
    ("country:FR", "country", "FR"), ("49.99, 36.23", "circle", None), ("circle:10,20,5", "circle", None),
])
def test_claim_places_resolve_offline(text, kind, code):
    place = resolve_place(text)
    assert place.kind == kind and place.country_code == code
    region = place.region()
    if kind == "place":
        assert place.radius_km == 25 and region.contains(np.array([49.99]), np.array([36.23]))[0]


def test_claim_errors_are_readable(store: CaseStore):
    case = store.create_case("c", actor="a")
    with pytest.raises(CaseInputError, match="not found"):
        store.add_claim(case.id, "Xyzzyqwv Town", actor="a")
    with pytest.raises(CaseInputError, match="Did you mean: France"):
        store.add_claim(case.id, "country:Frnace", actor="a")
    with pytest.raises(CaseInputError, match="not a date"):
        store.add_claim(case.id, "Kharkiv", claimed_time="last week", actor="a")
    claim = store.add_claim(case.id, "Kharkiv", claimed_time="2024-03-01T10:00", source="https://x.test/1", actor="a")
    assert claim.claimed_time == "2024-03-01T10:00:00" and claim.region_key.startswith("circle:49.98")


def test_verdict_figures_are_computed(store: CaseStore):
    case = store.create_case("Kharkiv?", actor="a")
    evidence = store.add_evidence_file(case.id, gps_photos(1)[0], actor="a")  # EXIF GPS in Tuscany
    claim = store.add_claim(case.id, "circle:49.98,36.25,50", claimed_time="2008-10-20", actor="a")
    # Top candidate Kyiv (outside), second inside Kharkiv circle, third in Tuscany.
    points = [(50.45, 30.52, 0.5), (49.99, 36.23, 0.3), (43.47, 11.88, 0.15), (49.95, 36.30, 0.05)]
    analysis = store.record_analysis(case.id, evidence.id, fake_prediction(evidence.sha256, points), actor="a")
    assert analysis.claim_mass[claim.region_key] == pytest.approx(0.35)
    verdict = store.set_verdict(case.id, "contradicted", "EXIF GPS is in Italy", actor="a")
    assert verdict.claim_id == claim.id and verdict.analysis_id == analysis.id
    assert verdict.distance_km == pytest.approx(float(haversine_km(49.98, 36.25, 50.45, 30.52)), abs=0.01)
    assert verdict.mass_in_claim == pytest.approx(0.35) and verdict.figures["analyses"][0]["mass_exact"] is True
    assert verdict.claim_rank == 2
    exif = verdict.figures["exif"][0]
    assert verdict.exif_distance_km == pytest.approx(float(haversine_km(49.98, 36.25, *evidence.gps)), abs=0.01)
    assert exif["inside_claim"] is False and exif["time_difference_days"] == pytest.approx(2.6866, abs=1e-3)
    assert store.get_case(case.id).status == "decided"
    # A claim added after the analysis: mass estimated from the stored surface summary, and flagged.
    store.add_claim(case.id, "country:IT", actor="a")
    figures = store.compute_verdict_evidence(case.id)
    main = figures["analyses"][0]
    assert main["mass_in_claim"] == pytest.approx(0.15) and main["mass_exact"] is False
    assert main["claim_rank"] == 3 and main["distance_km"] > 0
    assert figures["summary"]["exif_distance_km"] == 0.0
    with pytest.raises(CaseInputError):
        store.set_verdict(case.id, "maybe", "x", actor="a")
    with pytest.raises(CaseInputError):
        store.set_verdict(case.id, "supported", "   ", actor="a")


def test_run_analysis_records_model_identity(store: CaseStore, small_locator):
    case = store.create_case("c", actor="a")
    claim = store.add_claim(case.id, "Kharkiv", actor="a")
    evidence = store.add_evidence_file(case.id, gps_photos(1)[0], actor="a")
    analysis = store.run_analysis(case.id, evidence.id, small_locator, top_k=3, region="UA", tencrop=True,
                                  gradcam=png_bytes(1), actor="analyst")
    identity = small_locator.describe().to_dict()
    assert analysis.model == "geoclip" and analysis.backbone == "tiny-test" and analysis.random_weights
    assert analysis.weights_sha256 == identity["heads_sha256"] and analysis.model_identity["gallery_sha256"]
    assert analysis.parameters["tencrop"] is True and analysis.parameters["region"] == "country:UA"
    assert analysis.evidence_sha256 == evidence.sha256 and len(analysis.candidates) <= 3
    assert analysis.app_version and analysis.started_at <= analysis.finished_at
    assert store.blobs.read(analysis.gradcam_sha256) == png_bytes(1)
    assert 0 <= analysis.claim_mass[claim.region_key] <= 1 + 1e-9
    assert analysis.surface["returned"] <= 2000 and analysis.warnings  # random-weights warning kept
    with pytest.raises(CaseInputError, match="PNG"):
        store.run_analysis(case.id, evidence.id, small_locator, gradcam=b"GIF89a....", actor="a")
    event = store.events(case.id)[-1]
    assert event.action == "analysis.add" and event.actor == "analyst" and event.entity_id == analysis.id
    explained = store.run_analysis(case.id, evidence.id, small_locator, top_k=2, explain=True, actor="a")
    png = store.blobs.read(explained.gradcam_sha256)
    assert png.startswith(b"\x89PNG") and explained.gradcam_sha256 != analysis.gradcam_sha256


def test_notes_and_event_log(store: CaseStore):
    case = store.create_case("c", actor="a")
    note = store.add_note(case.id, "line 1\nline 2", actor="bob")
    assert note.text == "line 1\nline 2"
    with pytest.raises(CaseInputError):
        store.add_note(case.id, "", actor="bob")
    with pytest.raises(CaseInputError):
        store.add_note(case.id, "x", actor="   ")
    events = store.events(case.id)
    assert [(e.action, e.actor) for e in events] == [("case.create", "a"), ("note.add", "bob")]
    opened = store.open_case(case.id)
    assert opened.ok and len(opened.case.notes) == 1 and opened.events[-1].entity_id == note.id
    store.set_status(case.id, "archived", actor="a")
    assert store.list_cases("archived")[0].id == case.id
