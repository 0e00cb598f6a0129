"""Dead letters: writes the database refused for their content.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", TS, nullable=False, comment="When it was refused."),
        sa.Column("what", sa.String(), nullable=False, comment="e.g. 'event', 'telemetry'."),
        sa.Column(
            "reason", sa.String(), nullable=False, comment="The database's or driver's error."
        ),
        sa.Column("rows", sa.Integer(), nullable=False, comment="How many records it held."),
        sa.Column(
            "payload",
            sa.String(),
            nullable=False,
            comment="The refused records as JSON text (bounded in size).",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index("ix_dead_letters_ts", "dead_letters", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_ts", table_name="dead_letters")
    op.drop_table("dead_letters")
