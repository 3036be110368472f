"""Clues as case evidence: add / edit / remove in the audit log (append-only rows), the case keeps its
clues, and the report states the credible areas of each analysis times the clues, calibrated or not."""

from __future__ import annotations

import pytest

from geoapp.cases import CaseStore
from geoapp.cases.clues import add_clue, analysis_areas, edit_clue, remove_clue
from geoapp.cases.errors import CaseInputError, CaseNotFoundError
from geoapp.cases.report import render_html

from .conftest import populated_case

TZ = "tz:offset=+03:00,time=2008-10-20T12:00:00"  # Kharkiv (the populated case's claim) in October 2008: EEST


def test_clues_are_kept_with_source_and_every_change_is_audited(store: CaseStore):
    case_id = store.create_case("Clues", actor="alice").id
    first = add_clue(store, case_id, "drive:left", source="street view of the photo", actor="alice")
    add_clue(store, case_id, TZ, source="EXIF OffsetTimeOriginal (accepted)", actor="bob")
    edited = edit_clue(store, case_id, first.id[:8], "drive:right", actor="alice")
    case = store.get_case(case_id)
    assert [(c.text, c.source) for c in case.clues] == [(TZ, "EXIF OffsetTimeOriginal (accepted)"),
                                                       ("drive:right", "street view of the photo")]
    remove_clue(store, case_id, edited.id, actor="carol")
    case = store.get_case(case_id)
    assert [c.text for c in case.clues] == [TZ]
    assert len(case.clue_records) == 4  # every version stays
    actions = [(e.action, e.actor) for e in store.events(case_id) if e.entity_type == "clue"]
    assert actions == [("clue.add", "alice"), ("clue.add", "bob"), ("clue.edit", "alice"), ("clue.remove", "carol")]


def test_bad_clues_are_refused_and_nothing_is_stored(store: CaseStore):
    case_id = store.create_case("Bad", actor="alice").id
    with pytest.raises(CaseInputError, match="drive:middle"):
        add_clue(store, case_id, "drive:middle", actor="alice")
    with pytest.raises(CaseNotFoundError):
        remove_clue(store, case_id, "abcdef12", actor="alice")
    clue = add_clue(store, case_id, "drive:left", actor="alice")
    edit_clue(store, case_id, clue.id, "drive:right", actor="alice")
    with pytest.raises(CaseNotFoundError):  # the old version is no longer current
        edit_clue(store, case_id, clue.id, "coast:max_km=20", actor="alice")
    assert [c.text for c in store.get_case(case_id).clues] == ["drive:right"]
    assert [e.action for e in store.events(case_id) if e.entity_type == "clue"] == ["clue.add", "clue.edit"]


def test_analysis_areas_with_clues_place_the_claim(store: CaseStore):
    case_id = populated_case(store, photos=1)
    add_clue(store, case_id, TZ, actor="alice")
    case = store.get_case(case_id)
    claim = case.claims[-1]
    areas = analysis_areas(case.analyses[0], case.clues, (claim.lat, claim.lon))
    assert [a.level for a in areas.areas] == [0.5, 0.8, 0.9, 0.95]
    assert all(a.area_km2 > 0 and not a.calibrated and "not calibrated" in a.calibration for a in areas.areas)
    assert areas.clues == [TZ]
    assert areas.claim.startswith("inside the")  # Kharkiv holds 30 % of the stored map and is UTC+3
    far = analysis_areas(case.analyses[0], case.clues, (-33.9, 151.2))
    assert far.claim.startswith("outside the 95 % area")


def test_report_states_the_clues_and_the_areas(store: CaseStore):
    case_id = populated_case(store, photos=1)
    add_clue(store, case_id, TZ, source="posted caption", actor="alice")
    page = render_html(store, case_id)
    section = page[page.index('id="clues"'):page.index('id="map"')]
    assert "Clues and credible areas" in section and "posted caption" in section
    assert "tz&#58;offset" in section or "tz:offset" in section
    assert "90 %: " in section and "km²" in section and "not calibrated" in section
    assert "The claimed place" in section and "lies inside the" in section


def test_a_verdict_keeps_the_areas_and_clues_it_was_decided_on(store: CaseStore):
    case_id = populated_case(store, photos=1)
    add_clue(store, case_id, TZ, source="posted caption", actor="alice")
    verdict = store.set_verdict(case_id, "supported", "The time zone and the map agree.", actor="alice")
    areas = verdict.figures["areas"]
    assert areas["clues"] == [TZ] and [a["level"] for a in areas["levels"]] == [0.5, 0.8, 0.9, 0.95]
    assert all(a["area_km2"] > 0 and a["calibrated"] is False for a in areas["levels"])
    assert areas["claim"].startswith("inside the")
    add_clue(store, case_id, "drive:left", actor="bob")  # a later clue does not rewrite the decision
    stored = store.get_case(case_id).verdicts[-1].figures["areas"]
    assert stored == areas
    assert store.compute_verdict_evidence(case_id)["areas"]["clues"] == [TZ, "drive:left"]  # the preview moves on
    page = render_html(store, case_id)
    section = page[page.index('id="verdict"'):]
    assert "Credible areas when decided" in section and "90 %" in section


def test_geojson_and_kml_exports_carry_the_areas_with_the_clues(store: CaseStore):
    from geoapp.cases.geoexport import to_geojson, to_kml

    case_id = populated_case(store, photos=1)
    plain = [f for f in to_geojson(store, case_id)["features"] if f["properties"]["kind"] == "credible_area"]
    add_clue(store, case_id, TZ, source="posted caption", actor="alice")
    areas = [f for f in to_geojson(store, case_id)["features"] if f["properties"]["kind"] == "credible_area"]
    assert [f["properties"]["level"] for f in areas] == [0.95, 0.9, 0.8, 0.5]  # large first: small drawn on top
    for feature in areas:
        props = feature["properties"]
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon") and props["area_km2"] > 0
        assert props["calibrated"] is False and "not calibrated" in props["calibration"]
        assert props["clues"] == [TZ] and props["analysis_id"] and props["parts"] >= 1
    # The time-zone clue narrows each area (a +03:00 offset leaves a band of the globe).
    assert all(a["properties"]["area_km2"] < p["properties"]["area_km2"] for a, p in zip(areas, plain))
    kml = to_kml(store, case_id)
    assert "Credible areas (analysis × clues)" in kml and "95 % area:" in kml and "<Polygon>" in kml


def test_case_clue_command_adds_edits_removes_and_refuses_bad_clues(db_url, tmp_path, capsys):
    from geoapp.cli.main import main

    base = ["--database-url", db_url, "--case-store", str(tmp_path / "ev"), "--actor", "dana"]
    assert main(["case", "new", "CLI clues", *base]) == 0
    case_id = capsys.readouterr().out.strip().split()[0]
    sun = "sun:time=2024-06-21T10:00:00Z,ratio=1.20,ratio_sd=0.05"
    assert main(["case", "clue", case_id, sun, "--source", "pole shadow", *base]) == 0
    clue_id = capsys.readouterr().out.strip()
    assert main(["case", "clue", case_id, "drive:left", *base]) == 0
    left_id = capsys.readouterr().out.strip()
    assert main(["case", "clue", case_id, "--remove", left_id, *base]) == 0
    assert main(["case", "clue", case_id, "sun:ratio=oops", *base]) == 2
    assert "sun:ratio=oops" in capsys.readouterr().err
    with CaseStore.open(database_url=db_url, store_dir=tmp_path / "ev") as store:
        case = store.get_case(case_id)
        assert [(c.id, c.text, c.source) for c in case.clues] == [(clue_id, sun, "pole shadow")]
        assert [e.actor for e in store.events(case_id) if e.entity_type == "clue"] == ["dana"] * 3
