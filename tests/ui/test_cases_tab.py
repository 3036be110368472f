"""The Cases tab: handlers called directly on a temporary case store and the tiny random model."""

from __future__ import annotations

import html
import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from geoapp.cases.settings import CaseSettings, sqlite_url
from geoapp.ui.case_service import CaseWorkbench
from geoapp.ui.cases_tab import CaseSession, CasesHandlers, case_errors
from geoapp.ui.config import AppConfig
from geoapp.ui.forms import REGION_COUNTRY
from geoapp.ui.service import GeolocationService, ModelSettings
from tests.conftest import shared_path

ALICE = SimpleNamespace(username="alice")  # what gr.Request carries when the app runs with --auth


def no_progress(*_args, **_kwargs) -> None:
    return None


def gps_photos(count: int = 2) -> list[str]:
    photos = sorted(shared_path("exif-samples", "jpg", "gps").glob("*.jpg"))[:count]
    if len(photos) < count:
        pytest.skip("not enough GPS sample photos in ../shared")
    return [str(p) for p in photos]


@pytest.fixture
def handlers(ctx, tmp_path) -> CasesHandlers:
    settings = CaseSettings(sqlite_url(tmp_path / "cases.db"), tmp_path / "evidence")
    workbench = CaseWorkbench(ctx.service, settings, export_dir=tmp_path / "exports")
    yield CasesHandlers(ctx, workbench)
    workbench.store.close()


def call(handler, *args, **kwargs):
    """Through the same error translation as the app (CaseError/FormError -> gr.Error)."""
    return case_errors(handler)(*args, **kwargs)


def counts(handlers: CasesHandlers, session: CaseSession) -> tuple[int, ...]:
    case = handlers.workbench.get_case(session.case_id)
    return len(case.evidence), len(case.claims), len(case.analyses), len(case.notes), len(case.verdicts)


def test_case_workflow_from_creation_to_exports(handlers, tmp_path):
    session, title, _ = call(handlers.create, "Tuscany photo", "claimed: near Arezzo", request=ALICE)
    assert session.case_id and title == ""
    session, cleared = call(handlers.add_evidence, session, gps_photos(2), request=ALICE)
    assert cleared is None
    call(handlers.add_claim, session, "circle:43.47,11.88,30", None, "2008-10-22", "https://example.test/post",
         request=ALICE)
    session = call(handlers.analyse, session, [], "geoclip", 3, False, request=ALICE, progress=no_progress)
    assert session.analysis_id
    assert counts(handlers, session)[:3] == (2, 1, 2)

    shown = call(handlers.show, session)
    header, banner, evidence, pick, claims, analyses, analysis_choice, notes = shown[:8]
    assert "Tuscany photo" in header and "RANDOM WEIGHTS" in banner
    assert len(evidence) == 2 and len(pick["choices"]) == 2 and len(claims) == 1 and len(analyses) == 2
    assert analysis_choice["value"] == session.analysis_id and "RANDOM WEIGHTS" in analysis_choice["choices"][0][0]
    page, candidates = call(handlers.show_map, session, analysis_choice["value"], False)
    assert page.count("geoapp-candidate") == 3 == len(candidates)  # numbered candidates of the chosen analysis
    assert page.count("geoapp-reference") == 3  # EXIF GPS of both photos + the claimed point
    assert "Claimed area" in page and "RANDOM WEIGHTS" in page
    assert "tile.openstreetmap.org" not in page  # offline-map mode: no tile server

    session, note = call(handlers.add_note, session, "Shadows point north-east.", request=ALICE)
    figures = call(handlers.preview, session, None, None)
    for label in ("Distance claim → top candidate", "Probability mass inside the claimed area",
                  "Rank of the claim", "EXIF GPS → claim", "RANDOM WEIGHTS"):
        assert label in figures
    call(handlers.set_verdict, session, None, session.analysis_id, "supported", "EXIF GPS inside the claimed circle.",
         request=ALICE)
    assert counts(handlers, session) == (2, 1, 2, 1, 1)

    for fmt in ("html", "geojson", "kml", "csv", "bundle"):
        path = Path(call(handlers.export, session, fmt, request=ALICE))
        assert path.is_file() and path.stat().st_size > 0, fmt
    geojson = json.loads(next((tmp_path / "exports").glob("*/*.geojson")).read_text())
    assert geojson["features"]
    with zipfile.ZipFile(next((tmp_path / "exports").glob("*/*.zip"))) as bundle:
        assert "case.json" in bundle.namelist()

    events = handlers.workbench.events(session.case_id)
    assert {e.actor for e in events} == {"alice"}
    assert sum(e.action == "case.export" for e in events) == 5
    table, picker, info = call(handlers.refresh, session)
    assert picker["value"] == session.case_id and table.iloc[0]["Verdict"] == "supported" and "cases.db" in info


def test_clues_are_added_removed_and_fused_with_each_analysis(handlers):
    session, _, _ = call(handlers.create, "Clues in the tab", "", request=ALICE)
    call(handlers.add_evidence, session, gps_photos(1), request=ALICE)
    call(handlers.add_claim, session, "circle:43.47,11.88,30", None, None, None, request=ALICE)
    session = call(handlers.analyse, session, [], "geoclip", 3, False, request=ALICE, progress=no_progress)
    before = call(handlers.show, session)[-1]
    tz = "tz:offset=+02:00,time=2008-10-22T12:00:00"  # Italy in October 2008: CEST
    session, cleared = call(handlers.add_clue, session, tz, "caption of the post", request=ALICE)
    assert cleared == ""
    session, _ = call(handlers.add_clue, session, "drive:right", None, request=ALICE)
    shown = call(handlers.show, session)
    clues, areas = shown[-2], html.unescape(shown[-1])  # Markdown-escaped (":" as &#58;)
    assert list(clues["Clue"]) == [tz, "drive:right"] and list(clues["Source"]) == ["caption of the post", "analyst"]
    assert "× 2 clue(s)" in areas and "90 %: " in areas and "km²" in areas and "not calibrated" in areas
    assert "The claimed place" in areas and "RANDOM WEIGHTS" in areas
    assert areas != before  # the clues changed the areas
    with pytest.raises(gr.Error, match="drive:middle"):
        call(handlers.add_clue, session, "drive:middle", None, request=ALICE)
    call(handlers.remove_clue, session, clues["Id"].iloc[1], request=ALICE)
    assert list(call(handlers.show, session)[-2]["Clue"]) == [tz]
    actions = [e.action for e in handlers.workbench.events(session.case_id) if e.entity_type == "clue"]
    assert actions == ["clue.add", "clue.add", "clue.remove"]


def test_tampered_evidence_is_shown_and_blocks_analysis(handlers):
    session, _, _ = call(handlers.create, "Tampered", "", request=ALICE)
    call(handlers.add_evidence, session, gps_photos(1), request=ALICE)
    evidence = handlers.workbench.get_case(session.case_id).evidence[0]
    blob = handlers.workbench.store.blobs.path_for(evidence.sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-100] + b"x" * 100)

    with pytest.warns(UserWarning, match="missing or altered"):
        session = call(handlers.open, session.case_id, request=ALICE)
    assert session.problems and session.problems[0].kind == "modified"
    banner = call(handlers.show, session)[1]
    assert "EVIDENCE INTEGRITY PROBLEM" in banner and evidence.original_name in banner
    with pytest.raises(gr.Error) as error:
        call(handlers.analyse, session, [], "geoclip", 3, request=ALICE, progress=no_progress)
    assert evidence.original_name in error.value.message
    assert counts(handlers, session)[2] == 0
    assert any(e.action == "integrity.problem" for e in handlers.workbench.events(session.case_id))


def test_bad_inputs_give_readable_errors_and_store_nothing(handlers, tmp_path):
    with pytest.raises(gr.Error, match="Open a case"):
        call(handlers.add_note, CaseSession(), "orphan note")
    with pytest.raises(gr.Error, match="title"):
        call(handlers.create, "   ", "")
    assert handlers.workbench.list_cases() == []

    session, _, _ = call(handlers.create, "Bad inputs", "", request=ALICE)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(gr.Error) as error:
        call(handlers.add_evidence, session, [str(broken)], request=ALICE)
    assert "broken.jpg" in error.value.message
    with pytest.warns(UserWarning, match="broken.jpg"):  # the good file is added, the bad one reported
        call(handlers.add_evidence, session, [gps_photos(1)[0], str(broken)], request=ALICE)
    with pytest.warns(UserWarning, match="already evidence"):
        call(handlers.add_evidence, session, [gps_photos(1)[0], gps_photos(2)[1]], request=ALICE)

    with pytest.raises(gr.Error) as error:
        call(handlers.add_claim, session, "country:Frnace", request=ALICE)
    assert "Frnace" in error.value.message and "France" in error.value.message
    with pytest.raises(gr.Error, match="(?i)latitude"):
        call(handlers.add_claim, session, "95.5, 200", request=ALICE)
    with pytest.raises(gr.Error, match="radius"):
        call(handlers.add_claim, session, "43.4, 11.8", "wide", request=ALICE)
    with pytest.raises(gr.Error, match="Frnace"):
        call(handlers.analyse, session, [], "geoclip", 3, False, REGION_COUNTRY, "Frnace", request=ALICE,
             progress=no_progress)
    with pytest.raises(gr.Error, match="between 1 and"):
        call(handlers.analyse, session, [], "geoclip", 0, request=ALICE, progress=no_progress)
    with pytest.raises(gr.Error, match="rationale"):
        call(handlers.set_verdict, session, None, None, "supported", "  ", request=ALICE)
    with pytest.raises(gr.Error, match="Unknown verdict"):
        call(handlers.set_verdict, session, None, None, "probably", "because", request=ALICE)
    with pytest.raises(gr.Error, match="No case"):
        call(handlers.open, "ffffffff", request=ALICE)
    assert counts(handlers, session) == (2, 0, 0, 0, 0)
    assert len(handlers.workbench.list_cases()) == 1


def test_bundle_import_refuses_a_duplicate_then_imports_a_copy(handlers):
    session, _, _ = call(handlers.create, "Round trip", "", request=ALICE)
    call(handlers.add_evidence, session, gps_photos(1), request=ALICE)
    session = call(handlers.analyse, session, [], "geoclip", 2, gradcam=True, request=ALICE, progress=no_progress)
    assert handlers.workbench.get_case(session.case_id).analyses[0].gradcam_sha256  # stored with the analysis
    bundle = call(handlers.export, session, "bundle", request=ALICE)
    with pytest.raises(gr.Error, match="separate copy"):
        call(handlers.import_bundle, bundle, False, request=ALICE)
    copy, cleared = call(handlers.import_bundle, bundle, True, request=SimpleNamespace(username="bob"))
    assert copy.case_id != session.case_id and cleared is None and not copy.problems
    assert counts(handlers, copy)[:3] == (1, 0, 1)
    assert "Imported" in call(handlers.show, copy)[0]
    with pytest.raises(gr.Error, match="Drop a case bundle"):
        call(handlers.import_bundle, None, False)


def test_missing_weights_are_said_plainly_and_nothing_is_recorded(handlers, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOAPP_WEIGHTS_DIR", str(tmp_path))  # nothing there; the HF cache has no CLIP either
    real = GeolocationService(ModelSettings())  # real weights requested
    if real.weights_problem() is None:
        pytest.skip("the real CLIP weights are installed on this machine")
    session, _, _ = call(handlers.create, "No weights", "", request=ALICE)
    call(handlers.add_evidence, session, gps_photos(1), request=ALICE)
    handlers.workbench.geolocation = real
    with pytest.raises(gr.Error, match="weights download"):
        call(handlers.analyse, session, [], "geoclip", 3, request=ALICE, progress=no_progress)
    assert counts(handlers, session)[2] == 0


def test_the_app_builds_with_the_cases_tab(monkeypatch, tmp_path):
    from geoapp.ui.app import build_app

    monkeypatch.setenv("GEOAPP_DATA_DIR", str(tmp_path))
    demo, _ = build_app(AppConfig(backbone="tiny-test", backbone_weights="random", offline_map=True))
    config = demo.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"tab-cases", "geoapp-case-map", "geoapp-case-evidence", "geoapp-case-picker"} <= ids
    assert not (tmp_path / "cases.db").exists()  # the store opens on first use, not when the app is built
