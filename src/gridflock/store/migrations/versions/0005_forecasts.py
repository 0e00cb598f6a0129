"""Forecasts: model versions, issued group forecasts and need-for-support windows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "forecast_models",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column(
            "quantity",
            sa.String(),
            nullable=False,
            comment="What it forecasts, e.g. 'net_import' or 'all'.",
        ),
        sa.Column("trained_at", TS, nullable=False),
        sa.Column("data_start", TS, nullable=False, comment="Training data from."),
        sa.Column("data_end", TS, nullable=False, comment="Training data to (excl.)."),
        sa.Column("params", JSON, nullable=False),
        sa.Column("backtest", JSON, nullable=False, comment="Backtest figures."),
        sa.Column(
            "bundle", sa.LargeBinary(), nullable=False, comment="The serialised model bundle."
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_models")),
    )
    op.create_index("ix_forecast_models_trained_at", "forecast_models", ["trained_at"])
    op.create_table(
        "forecasts",
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("horizon", sa.String(), nullable=False, comment="'intraday' or 'day_ahead'."),
        sa.Column("quantity", sa.String(), nullable=False),
        sa.Column(
            "group_by", sa.String(), nullable=False, comment="fleet, grid_node, program or region."
        ),
        sa.Column("group", sa.String(), nullable=False),
        sa.Column("model_id", sa.String(), nullable=True),
        sa.Column("start", TS, nullable=False, comment="Start of the first step."),
        sa.Column("step_s", sa.Integer(), nullable=False),
        sa.Column("quantiles", JSON, nullable=False, comment="Quantile levels 0..1."),
        sa.Column(
            "values_kw",
            JSON,
            nullable=False,
            comment="[step][quantile] kW, generator sign convention.",
        ),
        sa.PrimaryKeyConstraint(
            "issued_at", "horizon", "quantity", "group_by", "group", name=op.f("pk_forecasts")
        ),
    )
    op.create_index("ix_forecasts_issued_at", "forecasts", ["issued_at"])
    op.create_table(
        "support_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("horizon", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False, comment="e.g. 'fleet', 'grid_node:F1'."),
        sa.Column("start", TS, nullable=False),
        sa.Column("end", TS, nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("kw_needed", sa.Double(), nullable=False, comment="Largest P50 excess [kW]."),
        sa.Column(
            "kw_needed_p90", sa.Double(), nullable=False, comment="Largest P90 excess [kW]."
        ),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_windows")),
    )
    op.create_index("ix_support_windows_issued_at", "support_windows", ["issued_at"])


def downgrade() -> None:
    op.drop_index("ix_support_windows_issued_at", table_name="support_windows")
    op.drop_table("support_windows")
    op.drop_index("ix_forecasts_issued_at", table_name="forecasts")
    op.drop_table("forecasts")
    op.drop_index("ix_forecast_models_trained_at", table_name="forecast_models")
    op.drop_table("forecast_models")
