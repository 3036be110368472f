"""Clues (evidence fusion) as case evidence: the append-only ``case_clues`` table.

Revision ID: 0002_case_clues
Revises: 0001_initial
Create Date: 2026-12-07

Written by hand like 0001; on PostgreSQL it reuses 0001's ``geoapp_append_only()`` trigger function.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_case_clues"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

TABLE = "case_clues"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("replaces", sa.String(32), sa.ForeignKey("case_clues.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_case_clues_case_id", TABLE, ["case_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {TABLE}_append_only_{verb.lower()} BEFORE {verb} ON {TABLE} "
                       f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: add a new record instead'); END")
    elif dialect == "postgresql":
        op.execute(f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION geoapp_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only_{verb}")
    op.drop_table(TABLE)
