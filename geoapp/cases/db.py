"""Database engine for the case store: SQLite pragmas, write transactions, migrations.

SQLite (the embedded default) is configured for several processes sharing one file:
WAL journal (readers never block the writer), ``synchronous=FULL`` (a committed
analysis survives power loss), foreign keys on, and a busy timeout so a second writer
waits instead of failing.  Write transactions start with ``BEGIN IMMEDIATE``: a
deferred transaction that reads first and writes later can fail at once with
"database is locked" when another process committed in between, busy timeout or not.

PostgreSQL (any ``postgresql+...`` URL) needs none of this; row locks on the case
(``SELECT ... FOR UPDATE``) serialise writers of one case there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .errors import CaseError

BUSY_TIMEOUT_MS = 30_000
# Newest migration.  When the database already reports it, opening skips Alembic entirely
# (saves its import on every CLI call); tests check this matches the scripts' head.
HEAD_REVISION = "0003_video_evidence"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_WRITE = "geoapp_write"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Take transaction control away from the sqlite3 module (it would start transactions
    # lazily, after our reads); SQLAlchemy's "begin" event below issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor) -> None:
    """WAL mode (kept in the file). Several processes opening a new database at once can get "database is
    locked" at once, busy timeout or not (SQLite refuses to wait where waiting could deadlock), so retry briefly."""
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with the settings above; a readable error for a bad URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise CaseError(f"Invalid case database URL {url!r}: {error}") from error
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().resolve().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise CaseError(f"Cannot create the folder for the case database {folder}: {error.strerror}") from error
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as error:
        raise CaseError(f"No database driver for {parsed.drivername!r} ({error}); "
                        "for PostgreSQL install psycopg and use a postgresql+psycopg:// URL") from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def current_revision(engine: sa.Engine) -> str | None:
    """The schema revision recorded in the database, None for a new (or foreign) database."""
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as error:
        raise CaseError(f"Cannot open the case database {engine.url.render_as_string(hide_password=True)}: "
                        f"{_short(error)}") from error


def upgrade(engine: sa.Engine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``), in one transaction."""
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    try:
        with engine.execution_options(**{_WRITE: True}).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as error:
        raise CaseError(f"Cannot open the case database {engine.url.render_as_string(hide_password=True)}: "
                        f"{_short(error)}") from error
    except CommandError as error:  # e.g. a revision this version does not know: a newer geoapp made it
        raise CaseError(f"The case database {engine.url.render_as_string(hide_password=True)} has a schema this "
                        f"geoapp cannot use ({_short(error)}); upgrade geoapp") from error


def _short(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


class Database:
    """Engine plus session factories for reads and for (serialised) writes."""

    def __init__(self, url: str, migrate: bool = True) -> None:
        self.url = url
        self.engine = create_engine(url)
        if migrate:
            upgrade(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; objects stay usable (loaded attributes) after it closes."""
        with self._read() as session:  # closing (not rolling back) keeps loaded attributes
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: everything inside commits together or not at all."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
