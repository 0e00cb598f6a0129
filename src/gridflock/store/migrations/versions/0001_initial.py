"""Initial schema: fleet (grid nodes, sites, devices), events, commands, telemetry.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
POS_COMMENT = "Row order in the fleet spec."
TS = sa.DateTime(timezone=True)  # UTC; the models read it back aware on every backend


def upgrade() -> None:
    op.create_table(
        "grid_nodes",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False, comment=POS_COMMENT),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column(
            "parent", sa.String(), nullable=False, comment="Upstream node id, '' for a root."
        ),
        sa.Column("limit_import_kw", sa.Double(), nullable=False),
        sa.Column("limit_export_kw", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_nodes")),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False, comment=POS_COMMENT),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("tz", sa.String(), nullable=False),
        sa.Column("grid_node", sa.String(), nullable=False),
        sa.Column("import_limit_kw", sa.Double(), nullable=False),
        sa.Column("export_limit_kw", sa.Double(), nullable=False),
        sa.Column("program", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("opt_out", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["grid_node"], ["grid_nodes.id"], name=op.f("fk_sites_grid_node_grid_nodes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_index("ix_sites_grid_node", "sites", ["grid_node"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("pos", sa.Integer(), nullable=False, comment=POS_COMMENT),
        sa.Column("site_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("gateway_id", sa.String(), nullable=False),
        sa.Column("cost_per_kwh", sa.Double(), nullable=False),
        sa.Column("attrs", JSON, nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_devices_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index("ix_devices_site_id", "devices", ["site_id"])
    op.create_index("ix_devices_gateway_id", "devices", ["gateway_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("target_kw", sa.Double(), nullable=False),
        sa.Column("start", TS, nullable=False),
        sa.Column("end", TS, nullable=False),
        sa.Column(
            "scope", sa.String(), nullable=False, comment="Scope as text, e.g. 'grid_node:F1'."
        ),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("performance", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_table(
        "event_samples",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("target_kw", sa.Double(), nullable=True),
        sa.Column("delivered_kw", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            ondelete="CASCADE",
            name=op.f("fk_event_samples_event_id_events"),
        ),
        sa.PrimaryKeyConstraint("event_id", "ts", name=op.f("pk_event_samples")),
    )
    op.create_table(
        "commands",
        sa.Column("command_id", sa.String(), nullable=False),
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("p_setpoint_kw", sa.Double(), nullable=True),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("status", sa.String(), server_default="sent", nullable=False),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_commands")),
    )
    op.create_index("ix_commands_event_id", "commands", ["event_id"])
    op.create_index("ix_commands_device_id", "commands", ["device_id"])
    op.create_table(
        "telemetry",
        sa.Column("device_id", sa.String(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("p_kw", sa.Double(), nullable=False),
        sa.Column("soc", sa.Double(), nullable=True),
        sa.Column("p_baseline_kw", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("device_id", "ts", name=op.f("pk_telemetry")),
    )


def downgrade() -> None:
    op.drop_table("telemetry")
    op.drop_index("ix_commands_device_id", table_name="commands")
    op.drop_index("ix_commands_event_id", table_name="commands")
    op.drop_table("commands")
    op.drop_table("event_samples")
    op.drop_table("events")
    op.drop_index("ix_devices_gateway_id", table_name="devices")
    op.drop_index("ix_devices_site_id", table_name="devices")
    op.drop_table("devices")
    op.drop_index("ix_sites_grid_node", table_name="sites")
    op.drop_table("sites")
    op.drop_table("grid_nodes")
