"""The autopilot: its proposals (plan blocks ahead, with their fate) and its decision log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend


def upgrade() -> None:
    op.create_table(
        "autopilot_proposals",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("start", TS, nullable=False),
        sa.Column("end", TS, nullable=False),
        sa.Column("action", sa.String(), nullable=False, comment="'precharge' or 'discharge'."),
        sa.Column(
            "target_kw", sa.Double(), nullable=False, comment="kW relative to baseline, + up."
        ),
        sa.Column("energy_kwh", sa.Double(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False, comment="The policy that asked for it."),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column(
            "status",
            sa.String(),
            nullable=False,
            comment="pending, approved, vetoed, executed, superseded, expired, failed.",
        ),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopilot_proposals")),
    )
    op.create_index("ix_autopilot_proposals_start", "autopilot_proposals", ["start"])
    op.create_index("ix_autopilot_proposals_status", "autopilot_proposals", ["status"])
    op.create_table(
        "autopilot_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column(
            "kind",
            sa.String(),
            nullable=False,
            comment="plan, propose, approve, veto, execute, supersede, settings, error.",
        ),
        sa.Column("actor", sa.String(), nullable=False, comment="'autopilot' or the operator."),
        sa.Column("proposal_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detail", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopilot_decisions")),
    )
    op.create_index("ix_autopilot_decisions_ts", "autopilot_decisions", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_autopilot_decisions_ts", table_name="autopilot_decisions")
    op.drop_table("autopilot_decisions")
    op.drop_index("ix_autopilot_proposals_status", table_name="autopilot_proposals")
    op.drop_index("ix_autopilot_proposals_start", table_name="autopilot_proposals")
    op.drop_table("autopilot_proposals")
