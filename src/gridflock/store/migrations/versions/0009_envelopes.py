"""Envelopes: the grid operator's time-varying import/export limits per site or grid node.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend


def upgrade() -> None:
    op.create_table(
        "envelopes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("target_type", sa.String(), nullable=False, comment="'site' or 'node'."),
        sa.Column("target_id", sa.String(), nullable=False),
        sa.Column("start", TS, nullable=False),
        sa.Column("end", TS, nullable=False),
        sa.Column(
            "import_limit_kw",
            sa.Double(),
            nullable=True,
            comment="Import limit [kW, >= 0]; NULL: none.",
        ),
        sa.Column(
            "export_limit_kw",
            sa.Double(),
            nullable=True,
            comment="Export limit [kW, >= 0]; NULL: none.",
        ),
        sa.Column("kind", sa.String(), nullable=False, comment="doe, flexible_export or para14a."),
        sa.Column("source", sa.String(), nullable=False, comment="api, csip or file."),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_envelopes")),
    )
    op.create_index("ix_envelopes_end", "envelopes", ["end"])
    op.create_index("ix_envelopes_target", "envelopes", ["target_type", "target_id"])


def downgrade() -> None:
    op.drop_index("ix_envelopes_target", table_name="envelopes")
    op.drop_index("ix_envelopes_end", table_name="envelopes")
    op.drop_table("envelopes")
