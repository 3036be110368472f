"""Hostile text in every writer: XML-forbidden characters, lone surrogates, formulas, terminal
escapes and Unicode direction overrides, from titles, file names, places and notes."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sqlalchemy as sa

from geoapp.results import formats
from geoapp.cases import CaseStore, geoexport, render_html
from geoapp.cases.exports import render
from geoapp.cases.models import Case
from geoapp.cli.main import main as cli_main
from geoapp.results.textsafe import csv_cell, display_text, terminal_text, xml_text
from tests.cases.conftest import gps_photos, populated_case
from tests.cases.test_exports import StrictHTML

# Every code point below 0x20, the two non-characters, lone surrogates (high, low, and the ones a
# non-UTF-8 file name decodes to), DEL and a C1 control, and the right-to-left override.
FUZZ = [chr(c) for c in range(0x20)] + ["\ufffe", "\uffff", "\ud800", "\udbff", "\udc00", "\udfff", "\udce9",
                                        "\x7f", "\x9b", "\u202e"]
HOSTILE = "".join(FUZZ)


# XML 1.0 allows tab, line feed and carriage return below 0x20; every other control is forbidden.
XML_ALLOWED = {"\t", "\n", "\r", "\x7f", "\x9b", "\u202e"}


@pytest.mark.parametrize("char", FUZZ, ids=[f"U+{ord(c):04X}" for c in FUZZ])
def test_xml_text_keeps_every_document_well_formed(char):
    kept = char if char in XML_ALLOWED else "\ufffd"
    assert xml_text(f"a{char}b") == f"a{kept}b"
    element = ET.Element("name")
    element.text = xml_text(f"a{char}b")
    element.set("value", xml_text(char))
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode").encode("utf-8"))
    # What a reader gets back is what was written (a raw carriage return in text reads as a line end)
    assert parsed.text == f"a{kept}b".replace("\r", "\n")
    assert parsed.get("value") == kept  # attributes: ElementTree writes \t \n \r as character references


@pytest.fixture
def hostile_case(store: CaseStore, monkeypatch) -> str:
    """A case whose stored text holds every hostile character (as an imported bundle could)."""
    case_id = populated_case(store, title="x")
    case = store.get_case(case_id)
    case.title = f"Title {HOSTILE}"
    for item in case.evidence:
        item.original_name = f"photo{HOSTILE}gpj.exe"
    for claim in case.claims:
        claim.label, claim.source = f"Kharkiv {HOSTILE}", f"=cmd {HOSTILE}"
    for note in case.notes:
        note.text = f"note {HOSTILE}"
    for analysis in case.analyses:
        analysis.candidates = [{**c, "place": f"=HYPERLINK({HOSTILE})"} for c in analysis.candidates]
    monkeypatch.setattr(store, "get_case", lambda _case_id: case)
    return case_id


def test_kml_html_geojson_and_csv_survive_hostile_text(store: CaseStore, hostile_case: str):
    kml = render(store, hostile_case, "kml")
    root = ET.fromstring(kml)  # parses: nothing XML forbids got through
    names = [el.text for el in root.iter("{http://www.opengis.net/kml/2.2}name")]
    assert any(name.startswith("Title ") for name in names)

    page = render(store, hostile_case, "html").decode("utf-8")
    parser = StrictHTML()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert not [ch for ch in FUZZ if ch not in "\t\n\r" and ch in page]  # nothing XML forbids, no raw override
    assert "[U+202E]gpj.exe" in page  # the override is shown, not obeyed

    data = json.loads(render(store, hostile_case, "geojson"))
    assert data["name"].startswith("Title ")

    rows = list(csv.reader(io.StringIO(render(store, hostile_case, "csv").decode("utf-8"))))
    place = rows[0].index("place")
    assert all(row[place].startswith("'=HYPERLINK") for row in rows[1:])


def test_one_formula_guard_for_every_csv_writer():
    assert geoexport.csv_cell is csv_cell and formats.csv_cell is csv_cell
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "ok", -12.5, 3)] == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "ok", -12.5, 3]


def southern_western_prediction(source: str, place: str):
    """A prediction whose every candidate has a negative latitude and longitude (Buenos Aires,
    Santiago) and whose place names start like formulas: data a CSV writer must keep apart."""
    from geoapp.geo.places import Place
    from geoapp.results.prediction import build_prediction

    lat, lon = np.array([-34.6037, -33.4489]), np.array([-58.3816, -70.6693])
    prediction = build_prediction(source, lat, lon, np.array([0.7, 0.3]), top_k=2, merge_km=1.0)
    for candidate in prediction.candidates:
        candidate.place = Place(place, "", "", "AR", candidate.lat, candidate.lon, 0.0)
    return prediction


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\")", "+cmd", "-2", "@SUM(1)"])
def test_predict_csv_guards_text_and_keeps_negative_coordinates(name):
    prediction = southern_western_prediction(name, f"{name} place")
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([prediction]))))
    assert len(rows) == 2
    for row, candidate in zip(rows, prediction.candidates):
        assert row["source"] == "'" + name  # the text, whole, behind the guard
        assert row["place"] == f"'{name} place"
        # a negative coordinate is data: written as the number, no quote in front
        assert row["lat"] == str(round(candidate.lat, 6)) and row["lat"].startswith("-")
        assert row["lon"] == str(round(candidate.lon, 6)) and row["lon"].startswith("-")
    assert [float(r["lat"]) for r in rows] == pytest.approx([-34.6037, -33.4489])
    assert [float(r["lon"]) for r in rows] == pytest.approx([-58.3816, -70.6693])


def test_predict_outputs_encode_with_a_non_utf8_source():
    source = os.fsdecode(b"caf\xe9.jpg")  # how Python names a non-UTF-8 file (a lone surrogate)
    prediction = southern_western_prediction(source, "-Santiago")
    written = "caf\ufffd.jpg"  # the surrogate becomes U+FFFD, the rest of the name stays
    rows = list(csv.DictReader(io.StringIO(formats.to_csv([prediction]).encode("utf-8").decode("utf-8"))))
    assert [r["source"] for r in rows] == [written, written]
    assert [r["place"] for r in rows] == ["'-Santiago", "'-Santiago"]
    records = json.loads(formats.to_json([prediction]).encode("utf-8"))
    assert records[0]["source"] == written
    assert records[0]["candidates"][0]["lat"] == pytest.approx(-34.6037)
    features = json.loads(formats.to_geojson([prediction]).encode("utf-8"))["features"]
    assert [f["properties"]["source"] for f in features] == [written, written]
    assert features[0]["geometry"]["coordinates"] == pytest.approx([-58.3816, -34.6037])


def test_terminal_and_display_text():
    assert terminal_text("a\x1b[2Jb\u202ec\td\x9b") == "a\\x1b[2Jb[U+202E]c\\x09d\\x9b"
    assert terminal_text(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert display_text("photo\u202egpj.exe") == "photo[U+202E]gpj.exe"


def _cli(capsys, db_url: str, store_dir, *args: str) -> tuple[int, str, str]:
    code = cli_main(["case", *args, "--database-url", db_url, "--case-store", str(store_dir)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_case_list_and_show_neutralise_control_characters(db_url, tmp_path, capsys):
    store = CaseStore.open(database_url=db_url, store_dir=tmp_path / "evidence")
    case_id = populated_case(store, title="plain", photos=1)
    with store._write() as session:  # as an imported bundle can store it
        session.execute(sa.update(Case).where(Case.id == case_id).values(title="evil\x1b]0;pwned\x07\x1b[2J\u202egpj.exe"))
    store.close()
    for command in (["list"], ["show", case_id], ["list", "--json"]):
        _, out, _ = _cli(capsys, db_url, tmp_path / "evidence", *command)
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, command
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J[U+202E]gpj.exe" in _cli(capsys, db_url, tmp_path / "evidence", "list")[1]


def test_case_add_carries_on_past_a_non_utf8_file_name(db_url, tmp_path, capsys):
    first, second = gps_photos(2)
    odd = tmp_path / os.fsdecode(b"caf\xe9.jpg")
    shutil.copy(first, odd)
    store = CaseStore.open(database_url=db_url, store_dir=tmp_path / "evidence")
    case_id = store.create_case("batch").id
    store.close()
    code, out, err = _cli(capsys, db_url, tmp_path / "evidence", "add", case_id, str(odd), str(second))
    assert code == 0, err
    assert [line.split("\t")[0] for line in out.splitlines()] == ["added", "added"]
    assert "caf\\xe9.jpg" in out and "Traceback" not in err
    store = CaseStore.open(database_url=db_url, store_dir=tmp_path / "evidence")
    names = sorted(e.original_name for e in store.get_case(case_id).evidence)
    objects = list((tmp_path / "evidence" / "objects").rglob("*"))
    store.close()
    assert "caf%E9.jpg" in names
    assert len([o for o in objects if o.is_file()]) == 2  # no orphan file


def test_report_map_tells_analyses_apart(store: CaseStore):
    case_id = populated_case(store, photos=2)
    page = render_html(store, case_id)
    assert ">A1<" in page and ">B1<" in page and "Candidates by analysis" in page
    assert "<rect " in page  # the second analysis' candidates are squares, the first's circles




def test_the_ui_shows_direction_overrides():
    from geoapp.ui.maps.render import _text
    from geoapp.ui.views import escape

    assert "U+202E" in escape("photo\u202egpj.exe") and "\u202e" not in escape("photo\u202egpj.exe")
    assert "[U+202E]" in _text("photo\u202egpj.exe")
