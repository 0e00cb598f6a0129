"""Settlements: the statements issued for finished events, kept as they were made.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend


def upgrade() -> None:
    op.create_table(
        "settlements",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column(
            "method",
            sa.String(),
            nullable=False,
            comment="Baseline method asked for; '' for the recommended one.",
        ),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column(
            "statement",
            sa.JSON().with_variant(JSONB(), "postgresql"),
            nullable=False,
            comment="The statement's JSON (format gridflock-settlement/1).",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_settlements_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "method", name=op.f("pk_settlements")),
    )


def downgrade() -> None:
    op.drop_table("settlements")
