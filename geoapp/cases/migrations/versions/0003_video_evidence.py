"""Video evidence: an evidence row is an image, a video, or a frame derived from a video.

Revision ID: 0003_video_evidence
Revises: 0002_case_clues
Create Date: 2026-12-07

``kind`` ('image' for every existing row), ``parent_id`` (a frame's video evidence), ``time_s`` (a frame's time
in its video) and ``media`` (a video's container facts: SHA-256, duration, codec ...; a frame's shot, pHash,
wall-clock time). Plain ADD COLUMN (no table rebuild), so the append-only triggers of 0001 stay in place on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_video_evidence"
down_revision = "0002_case_clues"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("evidence", sa.Column("kind", sa.String(10), nullable=False, server_default="image"))
    op.add_column("evidence", sa.Column("parent_id", sa.String(32), nullable=True))
    op.add_column("evidence", sa.Column("time_s", sa.Float(), nullable=True))
    op.add_column("evidence", sa.Column("media", sa.JSON(), nullable=True))
    op.create_index("ix_evidence_parent_id", "evidence", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_evidence_parent_id", table_name="evidence")
    for column in ("media", "time_s", "parent_id", "kind"):
        op.drop_column("evidence", column)
