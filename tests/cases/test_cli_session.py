"""An analyst's whole session through ``python -m geoapp case ...`` (subprocesses), then import elsewhere."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from geoapp.cases import canonical_dump

from ..conftest import REPO, shared_path

TINY = ["--backbone", "tiny-test", "--backbone-weights", "random", "--device", "cpu"]


def run_case(env_extra: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    import time

    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GEOAPP_ACTOR": "analyst-1", **env_extra}
    result = subprocess.run([sys.executable, "-m", "geoapp", "case", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, input=stdin)
    print(f"{time.perf_counter() - start:6.2f}s case {' '.join(args[:2])}")
    return result


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.mark.timeout(600)
def test_scripted_session_and_import_elsewhere(make_db_url, tmp_path, small_gallery):
    here = {"GEOAPP_DATABASE_URL": make_db_url(), "GEOAPP_CASE_STORE": str(tmp_path / "store-a")}
    there = {"GEOAPP_DATABASE_URL": make_db_url(), "GEOAPP_CASE_STORE": str(tmp_path / "store-b")}
    gps = shared_path("exif-samples", "jpg", "gps")
    photos = [str(gps / "DSCN0010.jpg"), str(gps / "DSCN0012.jpg")]

    case_id = ok(run_case(here, "new", "Photo claimed to show Kharkiv", "--description", "From a Telegram channel"))
    case_id = case_id.strip()
    assert len(case_id) == 32 and case_id.isalnum()

    added = ok(run_case(here, "add", case_id[:8], *photos)).splitlines()
    assert [line.split("\t")[0] for line in added] == ["added", "added"]
    evidence_ids = [line.split("\t")[1] for line in added]

    claim = ok(run_case(here, "claim", case_id, "Kharkiv", "--time", "2024-03-01", "--source", "https://t.me/x/1"))
    assert len(claim.strip()) == 32

    # The small gallery keeps this quick; GeoCLIP's 100K gallery is exercised by tests/test_cli.py.
    analyses = ok(run_case(here, "analyze", case_id, *TINY, "--top-k", "3", "--gallery", str(small_gallery),
                           "--gradcam")).splitlines()
    assert len(analyses) == 2 and {line.split("\t")[1] for line in analyses} == set(evidence_ids)

    ok(run_case(here, "note", case_id, "-", stdin="Shadows suggest late afternoon.\nSigns are in Italian."))
    verdict = json.loads(ok(run_case(here, "verdict", case_id, "contradicted", "--rationale",
                                     "EXIF GPS and signage point to Tuscany", "--json")))
    summary = verdict["figures"]["summary"]
    assert summary["exif_distance_km"] == pytest.approx(1982.7, abs=1.0)  # Tuscany -> Kharkiv
    assert summary["distance_km"] is not None and summary["mass_in_claim"] is not None

    outputs = {fmt: tmp_path / f"case.{ext}" for fmt, ext in
               (("html", "html"), ("geojson", "geojson"), ("kml", "kml"), ("csv", "csv"), ("bundle", "zip"))}
    for fmt, path in outputs.items():
        assert ok(run_case(here, "export", case_id, fmt, "-o", str(path))).strip() == str(path)
    html = outputs["html"].read_text()
    assert "<script" not in html and "Photo claimed to show Kharkiv" in html and "RANDOM" in html
    assert html.count("data:image/jpeg") == 2 and html.count("data:image/png") == 2  # photos and Grad-CAMs
    geojson = json.loads(outputs["geojson"].read_text())
    kinds = [f["properties"]["kind"] for f in geojson["features"]]
    # claim point + area, 2 EXIF GPS, 2 analyses x 3 candidates, 2 analyses x 4 credible areas
    assert geojson["type"] == "FeatureCollection" and len(kinds) == 2 + 2 + 6 + 8
    assert kinds.count("credible_area") == 8 and kinds.count("candidate") == 6
    assert ET.parse(outputs["kml"]).getroot().findall(".//{http://www.opengis.net/kml/2.2}Placemark")
    assert len(list(csv.DictReader(io.StringIO(outputs["csv"].read_text())))) == 6

    shown = json.loads(ok(run_case(here, "show", case_id, "--json")))
    assert shown["problems"] == [] and len(shown["evidence"]) == 2 and len(shown["analyses"]) == 2

    new_id = ok(run_case(there, "import", str(outputs["bundle"]))).strip()
    assert len(new_id) == 32 and new_id != case_id
    copied = json.loads(ok(run_case(there, "show", new_id, "--json")))
    assert canonical_dump(copied) == canonical_dump(shown)
    assert copied["fingerprint"] == shown["fingerprint"]
    assert copied["case"]["imported_by"] == "analyst-1"
    again = run_case(there, "import", str(outputs["bundle"]))
    assert again.returncode == 1 and "already in the store" in again.stderr and "--new-id" in again.stderr
    listed = json.loads(ok(run_case(there, "list", "--json")))
    assert [c["id"] for c in listed] == [new_id] and listed[0]["verdict"] == "contradicted"


def test_batch_add_reports_every_file(make_db_url, tmp_path):
    env = {"GEOAPP_DATABASE_URL": make_db_url(), "GEOAPP_CASE_STORE": str(tmp_path / "store")}
    gps = shared_path("exif-samples", "jpg", "gps")
    case_id = ok(run_case(env, "new", "batch")).strip()
    (tmp_path / "notes.txt").write_text("not an image")
    first = run_case(env, "add", case_id, str(gps / "DSCN00[12]*.jpg"), str(tmp_path / "missing.jpg"),
                     str(tmp_path / "notes.txt"))
    lines = [line.split("\t") for line in first.stdout.splitlines()]
    assert first.returncode == 1 and "failed" in first.stderr
    statuses = [line[0] for line in lines]
    assert statuses.count("error") == 2 and statuses.count("added") == len(lines) - 2 >= 2
    assert all(len(line) == 3 or line[0] == "error" for line in lines)
    again = run_case(env, "add", case_id, str(gps / "*.jpg"), "--json")
    records = json.loads(again.stdout)
    assert {r["status"] for r in records} <= {"added", "duplicate"} and again.returncode == 0
    assert sum(r["status"] == "duplicate" for r in records) == statuses.count("added")
    bad = run_case(env, "show", "nothex!")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    wrong = run_case(env, "claim", case_id, "Atlantis-upon-Nowhere")
    assert wrong.returncode == 2 and "not found" in wrong.stderr
