"""A model family's caveat (SatWorld: not for ground-level photos) follows its analyses in the case store:
computed evidence, the verdict and `case verdict` output, the Cases tab figures, the map, CSV and report."""

from __future__ import annotations

import contextlib
import io

from geoapp.families.satworld import CAVEAT

from .conftest import fake_prediction, gps_photos

POINTS = [(50.45, 30.52, 0.5), (49.99, 36.23, 0.3), (43.47, 11.88, 0.2)]


def satworld_analysis(store, case_id, evidence, *, old_style: bool = False):
    prediction = fake_prediction(evidence.sha256, POINTS)
    prediction.model = {**prediction.model, "model": "satworld", "family": "satworld"}
    if not old_style:
        prediction.model["caveat"] = CAVEAT
    prediction.warnings = [CAVEAT]  # what every SatWorld result carries
    return store.record_analysis(case_id, evidence.id, prediction, actor="alice")


def test_caveat_in_figures_verdict_and_views(store):
    from geoapp.cases.figures import analysis_caveats
    from geoapp.ui.case_service import stored_prediction
    from geoapp.ui.case_views import figures_markdown

    case = store.create_case("SatWorld on a street photo", actor="alice")
    evidence = store.add_evidence_file(case.id, gps_photos(1)[0], actor="alice")
    store.add_claim(case.id, "Kharkiv", actor="alice")
    analysis = satworld_analysis(store, case.id, evidence)
    assert analysis_caveats(analysis) == [CAVEAT]
    figures = store.compute_verdict_evidence(case.id)
    assert figures["analyses"][0]["caveats"] == [CAVEAT]
    assert any(CAVEAT in note for note in figures["notes"])
    text = figures_markdown(figures, store.get_case(case.id))
    assert "Model caveat (satworld)" in text and "not made for ground" in text
    assert stored_prediction(analysis).caveats == [CAVEAT]
    verdict = store.set_verdict(case.id, "inconclusive", "SatWorld only", actor="alice")
    assert any(CAVEAT in note for note in verdict.figures["notes"])


def test_old_analyses_without_the_identity_field_keep_their_caveat(store):
    from geoapp.cases.figures import analysis_caveats

    case = store.create_case("old", actor="alice")
    evidence = store.add_evidence_file(case.id, gps_photos(1)[0], actor="alice")
    analysis = satworld_analysis(store, case.id, evidence, old_style=True)
    assert analysis_caveats(analysis) == [CAVEAT]


def test_case_verdict_cli_prints_the_caveat_and_csv_carries_it(store, db_url, tmp_path, monkeypatch):
    from geoapp.cases.geoexport import to_csv
    from geoapp.cli.main import main

    case = store.create_case("cli", actor="alice")
    evidence = store.add_evidence_file(case.id, gps_photos(1)[0], actor="alice")
    store.add_claim(case.id, "Kharkiv", actor="alice")
    satworld_analysis(store, case.id, evidence)
    assert CAVEAT in to_csv(store, case.id)
    monkeypatch.setenv("GEOAPP_DATABASE_URL", db_url)
    monkeypatch.setenv("GEOAPP_CASE_STORE", str(tmp_path / "evidence"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["case", "verdict", case.id, "inconclusive", "--rationale", "SatWorld only"])
    assert code == 0 and "caveat (satworld)" in err.getvalue() and "not made for ground" in err.getvalue()
