"""Service tables: API keys, gateways, audit log; command acknowledgements.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column(
            "key_hash", sa.String(), nullable=False, comment="Hex SHA-256 of the key's secret."
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "gateways",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False, comment="home, charger, inverter, cloud..."),
        sa.Column("site_id", sa.String(), nullable=True),
        sa.Column("groups", JSON, nullable=False),
        sa.Column(
            "password_hash",
            sa.String(),
            nullable=False,
            comment="Mosquitto PBKDF2-SHA512 password hash.",
        ),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
    )
    op.create_index("ix_gateways_site_id", "gateways", ["site_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("actor", sa.String(), nullable=False, comment="e.g. 'apikey:ops-1', 'system'."),
        sa.Column("action", sa.String(), nullable=False, comment="e.g. 'event.create'."),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("detail", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])
    with op.batch_alter_table("commands") as batch:
        batch.add_column(
            sa.Column(
                "reason",
                sa.String(),
                nullable=True,
                comment="Why a device rejected the command (from its ack).",
            )
        )
        batch.add_column(sa.Column("acked_at", TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("acked_at")
        batch.drop_column("reason")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_index("ix_audit_log_ts", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_gateways_site_id", table_name="gateways")
    op.drop_table("gateways")
    op.drop_table("api_keys")
