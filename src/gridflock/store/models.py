"""Table models: the database shape of the fleet, events, commands, telemetry and service.

Only table declarations live here; reading and writing them is in the repository
modules. Powers are in kW (generator sign convention), state of charge a fraction
0..1, timestamps aware UTC. The schema is created by the Alembic migrations in
``migrations/versions``, which must be kept in step with these models (a test checks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gridflock.store._types import UTCDateTime

__all__ = [
    "ApiKeyRow",
    "AuditRow",
    "AutopilotDecisionRow",
    "AutopilotProposalRow",
    "Base",
    "CommandRow",
    "DeadLetterRow",
    "DeviceRow",
    "EnvelopeRow",
    "EventRow",
    "EventSampleRow",
    "ForecastModelRow",
    "ForecastRow",
    "GatewayRow",
    "GridNodeRow",
    "LeadershipRow",
    "ScheduleRow",
    "SettlementRow",
    "SiteRow",
    "SupportWindowRow",
    "TelemetryRow",
    "table_of",
]

#: JSON on SQLite, JSONB on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")


#: Constraint names, so the models and the migrations name them the same on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Gridflock table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class GridNodeRow(Base):
    """A grid node (feeder, transformer, substation): one column per ``GRID_NODE_ATTRS``."""

    __tablename__ = "grid_nodes"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, comment="Row order in the fleet spec.")
    kind: Mapped[str] = mapped_column(String)
    parent: Mapped[str] = mapped_column(String, comment="Upstream node id, '' for a root.")
    limit_import_kw: Mapped[float] = mapped_column(Double)
    limit_export_kw: Mapped[float] = mapped_column(Double)


class SiteRow(Base):
    """A site (one grid connection): one column per ``SITE_ATTRS``."""

    __tablename__ = "sites"
    __table_args__ = (Index("ix_sites_grid_node", "grid_node"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, comment="Row order in the fleet spec.")
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    tz: Mapped[str] = mapped_column(String)
    grid_node: Mapped[str] = mapped_column(String, ForeignKey("grid_nodes.id"))
    import_limit_kw: Mapped[float] = mapped_column(Double)
    export_limit_kw: Mapped[float] = mapped_column(Double)
    program: Mapped[str] = mapped_column(String)
    region: Mapped[str] = mapped_column(String)
    opt_out: Mapped[bool] = mapped_column(Boolean)
    grid_code: Mapped[str] = mapped_column(
        String,
        server_default="",
        comment="Grid code the site connects under; empty: from its position.",
    )


class DeviceRow(Base):
    """A device: the ``DEVICE_COMMON`` columns, and its kind's capability model in ``attrs``."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_site_id", "site_id"),
        Index("ix_devices_gateway_id", "gateway_id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    pos: Mapped[int] = mapped_column(Integer, comment="Row order in the fleet spec.")
    site_id: Mapped[str] = mapped_column(String, ForeignKey("sites.id"))
    kind: Mapped[str] = mapped_column(String)
    gateway_id: Mapped[str] = mapped_column(String)
    cost_per_kwh: Mapped[float] = mapped_column(Double)
    attrs: Mapped[dict[str, Any]] = mapped_column(JsonType)


class EventRow(Base):
    """An event: target, window, scope, lifecycle status and measured performance."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    target_kw: Mapped[float] = mapped_column(Double)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String, comment="Scope as text, e.g. 'grid_node:F1'.")
    source: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    created_by: Mapped[str] = mapped_column(String)
    performance: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    priority: Mapped[int] = mapped_column(
        Integer, server_default="50", comment="0..100; a higher number is served first."
    )


class EventSampleRow(Base):
    """One sample of an event's tracking: target and delivered kW at ``ts``."""

    __tablename__ = "event_samples"

    event_id: Mapped[str] = mapped_column(
        String, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    target_kw: Mapped[float | None] = mapped_column(Double, nullable=True)
    delivered_kw: Mapped[float | None] = mapped_column(Double, nullable=True)


class EnvelopeRow(Base):
    """An operating envelope the grid operator set on a site or grid node (docs/envelopes.md)."""

    __tablename__ = "envelopes"
    __table_args__ = (
        Index("ix_envelopes_end", "end"),
        Index("ix_envelopes_target", "target_type", "target_id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    target_type: Mapped[str] = mapped_column(String, comment="'site' or 'node'.")
    target_id: Mapped[str] = mapped_column(String)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    import_limit_kw: Mapped[float | None] = mapped_column(
        Double, nullable=True, comment="Import limit [kW, >= 0]; NULL: none."
    )
    export_limit_kw: Mapped[float | None] = mapped_column(
        Double, nullable=True, comment="Export limit [kW, >= 0]; NULL: none."
    )
    kind: Mapped[str] = mapped_column(String, comment="doe, flexible_export or para14a.")
    source: Mapped[str] = mapped_column(String, comment="api, csip or file.")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String)


class SettlementRow(Base):
    """An issued settlement statement of a finished event (docs/settlement.md), kept as made."""

    __tablename__ = "settlements"

    event_id: Mapped[str] = mapped_column(
        String, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(
        String, primary_key=True, comment="Baseline method asked for; '' for the recommended one."
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    statement: Mapped[dict[str, Any]] = mapped_column(
        JsonType, comment="The statement's JSON (format gridflock-settlement/1)."
    )


class CommandRow(Base):
    """One setpoint command sent to a device (idempotent by ``command_id``)."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_event_id", "event_id"),
        Index("ix_commands_device_id", "device_id"),
    )

    command_id: Mapped[str] = mapped_column(String, primary_key=True)
    device_id: Mapped[str] = mapped_column(String)
    event_id: Mapped[str | None] = mapped_column(String, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    # NULL releases the device back to its own control
    p_setpoint_kw: Mapped[float | None] = mapped_column(Double, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String, server_default="sent")
    reason: Mapped[str | None] = mapped_column(
        String, nullable=True, comment="Why a device rejected the command (from its ack)."
    )
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ScheduleRow(Base):
    """One schedule sent to a device: a plan's setpoints per slot, valid until the plan ends.

    Idempotent by ``schedule_id``; ``status`` follows the gateway's ack like a command's
    (``sent``, ``accepted``, ``rejected``, ``expired``), or ``refused`` when the service did
    not send it (``reason`` says why).
    """

    __tablename__ = "schedules"
    __table_args__ = (
        Index("ix_schedules_plan_id", "plan_id"),
        Index("ix_schedules_device_id", "device_id"),
    )

    schedule_id: Mapped[str] = mapped_column(String, primary_key=True)
    plan_id: Mapped[str] = mapped_column(String)
    device_id: Mapped[str] = mapped_column(String)
    seq: Mapped[int] = mapped_column(BigInteger)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start: Mapped[datetime] = mapped_column(UTCDateTime, comment="Start of the first slot.")
    step_s: Mapped[float] = mapped_column(Double, comment="Slot length [s].")
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    p_kw: Mapped[Any] = mapped_column(
        JsonType, comment="Setpoint per slot [kW, generator sign]; null = own control."
    )
    p_min_kw: Mapped[Any | None] = mapped_column(
        JsonType, nullable=True, comment="Lower limit per slot [kW]; null = none."
    )
    p_max_kw: Mapped[Any | None] = mapped_column(
        JsonType, nullable=True, comment="Upper limit per slot [kW]; null = none."
    )
    status: Mapped[str] = mapped_column(String, server_default="sent")
    reason: Mapped[str | None] = mapped_column(
        String, nullable=True, comment="Why it was refused or rejected."
    )
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TelemetryRow(Base):
    """One telemetry reading: power, and state of charge and baseline where reported."""

    __tablename__ = "telemetry"

    device_id: Mapped[str] = mapped_column(String, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    p_kw: Mapped[float] = mapped_column(Double)
    soc: Mapped[float | None] = mapped_column(Double, nullable=True)
    p_baseline_kw: Mapped[float | None] = mapped_column(Double, nullable=True)


class ApiKeyRow(Base):
    """An API key: only the SHA-256 of its secret is kept (the key is shown once)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String)
    key_hash: Mapped[str] = mapped_column(String, comment="Hex SHA-256 of the key's secret.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class GatewayRow(Base):
    """A gateway allowed on the MQTT broker: its groups and its password hash."""

    __tablename__ = "gateways"
    __table_args__ = (Index("ix_gateways_site_id", "site_id"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String, comment="home, charger, inverter, cloud...")
    site_id: Mapped[str | None] = mapped_column(String, nullable=True)
    groups: Mapped[list[str]] = mapped_column(JsonType)
    password_hash: Mapped[str] = mapped_column(
        String, comment="Mosquitto PBKDF2-SHA512 password hash."
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditRow(Base):
    """One audit record: who did what to which subject, when."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_ts", "ts"),
        Index("ix_audit_log_subject", "subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String, comment="e.g. 'apikey:ops-1', 'system'.")
    action: Mapped[str] = mapped_column(String, comment="e.g. 'event.create'.")
    subject: Mapped[str] = mapped_column(String)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)


class DeadLetterRow(Base):
    """A write the database refused for its content, kept so it can be inspected or replayed.

    The service's store writer puts a row here instead of retrying it forever, so one bad
    row never blocks the writes behind it.
    """

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_ts", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, comment="When it was refused.")
    what: Mapped[str] = mapped_column(String, comment="e.g. 'event', 'telemetry'.")
    reason: Mapped[str] = mapped_column(String, comment="The database's or driver's error.")
    rows: Mapped[int] = mapped_column(Integer, comment="How many records it held.")
    payload: Mapped[str] = mapped_column(
        String, comment="The refused records as JSON text (bounded in size)."
    )


class AutopilotProposalRow(Base):
    """A block of the autopilot's plan proposed ahead: what, when, how much, why, and its fate."""

    __tablename__ = "autopilot_proposals"
    __table_args__ = (
        Index("ix_autopilot_proposals_start", "start"),
        Index("ix_autopilot_proposals_status", "status"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String, comment="'precharge' or 'discharge'.")
    target_kw: Mapped[float] = mapped_column(Double, comment="kW relative to baseline, + up.")
    energy_kwh: Mapped[float] = mapped_column(Double)
    scope: Mapped[str] = mapped_column(String)
    policy: Mapped[str] = mapped_column(String, comment="The policy that asked for it.")
    reason: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(
        String, comment="pending, approved, vetoed, executed, superseded, expired, failed."
    )
    decided_by: Mapped[str | None] = mapped_column(String, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    event_id: Mapped[str | None] = mapped_column(String, nullable=True)


class AutopilotDecisionRow(Base):
    """One entry of the autopilot's decision log: what was decided, by whom, and why."""

    __tablename__ = "autopilot_decisions"
    __table_args__ = (Index("ix_autopilot_decisions_ts", "ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(
        String, comment="plan, propose, approve, veto, execute, supersede, settings, error."
    )
    actor: Mapped[str] = mapped_column(String, comment="'autopilot' or the operator.")
    proposal_id: Mapped[str | None] = mapped_column(String, nullable=True)
    reason: Mapped[str] = mapped_column(String)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)


class ForecastModelRow(Base):
    """A trained forecast model version: what it forecasts, its data, skill and bundle."""

    __tablename__ = "forecast_models"
    __table_args__ = (Index("ix_forecast_models_trained_at", "trained_at"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    quantity: Mapped[str] = mapped_column(
        String, comment="What it forecasts, e.g. 'net_import' or 'all'."
    )
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data_start: Mapped[datetime] = mapped_column(UTCDateTime, comment="Training data from.")
    data_end: Mapped[datetime] = mapped_column(UTCDateTime, comment="Training data to (excl.).")
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    backtest: Mapped[dict[str, Any]] = mapped_column(JsonType, comment="Backtest figures.")
    bundle: Mapped[bytes] = mapped_column(LargeBinary, comment="The serialised model bundle.")


class ForecastRow(Base):
    """One issued forecast of one quantity for one group: quantiles at every step."""

    __tablename__ = "forecasts"
    __table_args__ = (Index("ix_forecasts_issued_at", "issued_at"),)

    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    horizon: Mapped[str] = mapped_column(
        String, primary_key=True, comment="'intraday' or 'day_ahead'."
    )
    quantity: Mapped[str] = mapped_column(String, primary_key=True)
    group_by: Mapped[str] = mapped_column(
        String, primary_key=True, comment="fleet, grid_node, program or region."
    )
    group: Mapped[str] = mapped_column(String, primary_key=True)
    model_id: Mapped[str | None] = mapped_column(String, nullable=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, comment="Start of the first step.")
    step_s: Mapped[int] = mapped_column(Integer)
    quantiles: Mapped[list[float]] = mapped_column(JsonType, comment="Quantile levels 0..1.")
    values_kw: Mapped[list[list[float | None]]] = mapped_column(
        JsonType, comment="[step][quantile] kW, generator sign convention."
    )


class SupportWindowRow(Base):
    """A window in which the grid is forecast to need the plant."""

    __tablename__ = "support_windows"
    __table_args__ = (Index("ix_support_windows_issued_at", "issued_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    horizon: Mapped[str] = mapped_column(String)
    scope: Mapped[str] = mapped_column(String, comment="e.g. 'fleet', 'grid_node:F1'.")
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    probability: Mapped[float] = mapped_column(Double)
    kw_needed: Mapped[float] = mapped_column(Double, comment="Largest P50 excess [kW].")
    kw_needed_p90: Mapped[float] = mapped_column(Double, comment="Largest P90 excess [kW].")
    reason: Mapped[str] = mapped_column(String)


class LeadershipRow(Base):
    """The control leader's fencing token: one row, its epoch raised on every takeover."""

    __tablename__ = "leadership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(
        BigInteger, comment="Fencing token: raised by one on every acquisition."
    )
    holder: Mapped[str] = mapped_column(String, comment="Process that holds it (pid@host).")
    since: Mapped[datetime] = mapped_column(UTCDateTime, comment="When it was acquired.")


def table_of(model: type[Base]) -> Table:
    """The Core ``Table`` behind a model (typed, for bulk Core statements)."""
    table = model.__table__
    if not isinstance(table, Table):  # pragma: no cover - every model here maps a Table
        raise TypeError(f"{model.__name__} does not map a Table")
    return table
