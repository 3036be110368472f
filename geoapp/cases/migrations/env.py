"""Alembic environment for the case store.

Run through :func:`geoapp.cases.db.upgrade`, which hands over an open connection in
``config.attributes["connection"]``.  The standalone ``alembic`` command also works
with ``-x url=...``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from geoapp.cases.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes opening a fresh database at once: the second waits here and then
            # finds the schema at head instead of racing to create it.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(4242424201)"))
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("geoapp case migrations run online only (they need a connection)")
run_migrations_online()
