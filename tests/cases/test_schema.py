"""Migrations, schema and database settings."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from geoapp.cases import CaseSettings, CaseStore, get_case_settings
from geoapp.cases.models import APPEND_ONLY_TABLES, Base

from .conftest import populated_case


def test_migrations_match_the_models(store: CaseStore):
    with store.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert diff == [], diff
    assert version == "0003_video_evidence"


def test_reopening_is_idempotent(db_url, tmp_path):
    for _ in range(2):
        with CaseStore.open(database_url=db_url, store_dir=tmp_path / "ev") as store:
            store.create_case("x", actor="a")
    with CaseStore.open(database_url=db_url, store_dir=tmp_path / "ev") as store:
        assert len(store.list_cases()) == 2


def test_history_tables_are_append_only(store: CaseStore):
    from geoapp.cases.clues import add_clue

    case_id = populated_case(store, photos=1)
    add_clue(store, case_id, "drive:left", actor="alice")  # SQLite's row triggers need a row to refuse
    for table in APPEND_ONLY_TABLES:
        for statement in (f"UPDATE {table} SET case_id = case_id", f"DELETE FROM {table}"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with store.db.engine.begin() as conn:
                    conn.execute(sa.text(statement))
    case = store.get_case(case_id)
    assert [n.text for n in case.notes] == ["A note"] and len(case.evidence) == 1 and case.verdict is not None
    assert len(store.events(case_id)) == 7  # populated_case's six and the clue


def test_foreign_keys_are_enforced(store: CaseStore):
    from geoapp.cases.models import Note, utcnow

    with pytest.raises(sa.exc.IntegrityError):
        with store.db.write() as session:
            session.add(Note(id="1" * 32, case_id="2" * 32, text="orphan", created_at=utcnow(), created_by="a"))


def test_sqlite_pragmas(tmp_path):
    with CaseStore.open(database_url=f"sqlite:///{tmp_path / 'c.db'}", store_dir=tmp_path / "ev") as store:
        with store.db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_settings_from_environment(monkeypatch, tmp_path):
    for name in ("GEOAPP_DATABASE_URL", "GEOAPP_CASE_STORE", "GEOAPP_DATA_DIR", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    default = get_case_settings()
    assert default.database_url == f"sqlite:///{tmp_path / '.local/share/geoapp/cases.db'}"
    assert default.store_dir == tmp_path / ".local/share/geoapp/evidence"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert get_case_settings().store_dir == tmp_path / "xdg/geoapp/evidence"
    monkeypatch.setenv("GEOAPP_DATA_DIR", str(tmp_path / "data"))
    assert get_case_settings().database_url.endswith("/data/cases.db")
    monkeypatch.setenv("GEOAPP_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("GEOAPP_CASE_STORE", str(tmp_path / "store"))
    assert get_case_settings() == CaseSettings("postgresql+psycopg://u@h/db", tmp_path / "store")


def test_bad_database_url_is_one_line(tmp_path):
    from geoapp.cases import CaseError

    with pytest.raises(CaseError, match="Invalid case database URL"):
        CaseStore.open(database_url="not a url", store_dir=tmp_path)
    with pytest.raises(CaseError, match="driver"):
        CaseStore.open(database_url="nosuchdb://x/y", store_dir=tmp_path)


def test_head_revision_constant_matches_the_scripts():
    """Opening skips Alembic when the database is at HEAD_REVISION: it must be the real head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from geoapp.cases.db import HEAD_REVISION, MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION
