"""What `case verdict` and `case import --help` say to a person (in process, no model)."""

from __future__ import annotations

import pytest

from geoapp.cli.main import build_parser, main

from .conftest import populated_case


def test_verdict_prints_formatted_figures_and_names_its_analysis(store, db_url, tmp_path, capsys):
    case_id = populated_case(store, photos=2)
    first = store.get_case(case_id).analyses[0]
    code = main(["case", "verdict", case_id, "supported", "--rationale", "matches", "--analysis", first.id,
                 "--database-url", db_url, "--case-store", str(tmp_path / "evidence")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "verdict: SUPPORTED" in err and f"analysis {first.id}" in err and "geoclip" in err
    distance = next(line for line in err.splitlines() if "to the top candidate" in line)
    assert distance.rstrip().endswith(" km") and "." in distance and "e-" not in distance
    mass = next(line for line in err.splitlines() if "inside the claimed area" in line)
    assert mass.rstrip().endswith("%") or mass.rstrip().endswith("—")


def test_import_help_says_when_new_id_is_needed(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["case", "import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the case gets new ids" not in text
    assert "refused unless --new-id" in text
