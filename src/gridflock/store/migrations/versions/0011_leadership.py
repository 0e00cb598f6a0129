"""Leadership: the control leader's fencing token (epoch), one row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "epoch",
            sa.BigInteger(),
            nullable=False,
            comment="Fencing token: raised by one on every acquisition.",
        ),
        sa.Column(
            "holder", sa.String(), nullable=False, comment="Process that holds it (pid@host)."
        ),
        sa.Column("since", TS, nullable=False, comment="When it was acquired."),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leadership")),
    )


def downgrade() -> None:
    op.drop_table("leadership")
