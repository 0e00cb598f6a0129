"""Schedules: plans sent to devices as setpoint series with a validity.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("schedule_id", sa.String(), nullable=False),
        sa.Column("plan_id", sa.String(), nullable=False),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("start", TS, nullable=False, comment="Start of the first slot."),
        sa.Column("step_s", sa.Double(), nullable=False, comment="Slot length [s]."),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column(
            "p_kw",
            JSON,
            nullable=False,
            comment="Setpoint per slot [kW, generator sign]; null = own control.",
        ),
        sa.Column(
            "p_min_kw", JSON, nullable=True, comment="Lower limit per slot [kW]; null = none."
        ),
        sa.Column(
            "p_max_kw", JSON, nullable=True, comment="Upper limit per slot [kW]; null = none."
        ),
        sa.Column("status", sa.String(), server_default="sent", nullable=False),
        sa.Column("reason", sa.String(), nullable=True, comment="Why it was refused or rejected."),
        sa.Column("acked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_schedules")),
    )
    op.create_index("ix_schedules_plan_id", "schedules", ["plan_id"])
    op.create_index("ix_schedules_device_id", "schedules", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_schedules_device_id", table_name="schedules")
    op.drop_index("ix_schedules_plan_id", table_name="schedules")
    op.drop_table("schedules")
