"""The store: one object that saves and loads everything Gridflock keeps in a database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy.typing as npt
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gridflock.domain import (
    CommandBatch,
    DeviceKind,
    Event,
    EventStatus,
    FleetSpec,
    TelemetryBatch,
)
from gridflock.domain.auth import Principal, Role
from gridflock.domain.envelopes import Envelope
from gridflock.domain.schedules import ScheduleBatch
from gridflock.store import (
    _audit,
    _autopilot,
    _dead_letters,
    _envelopes,
    _events,
    _fleet,
    _forecasts,
    _gateways,
    _history,
    _keys,
    _leadership,
    _schedules,
    _settlements,
    _telemetry,
)
from gridflock.store._engine import make_engine
from gridflock.store._history import SitePower
from gridflock.store._time import utc, when
from gridflock.store.errors import DatabaseUnavailableError
from gridflock.store.records import (
    ApiKey,
    AuditRecord,
    AutopilotDecision,
    AutopilotProposal,
    DeadLetter,
    ForecastModelRecord,
    GatewayRecord,
    IssuedForecast,
    SupportWindowRecord,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "Store"]

#: Where the Alembic migrations ship, inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration built in code (no ``alembic.ini`` needed)."""
    from alembic.config import Config  # Alembic loads only where migrations are looked at

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


#: A time argument: aware datetime, UTC epoch seconds, or ``None`` for now.
When = datetime | float | None


class Store:
    """The database behind Gridflock: fleet, events, commands, telemetry, keys, audit.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/file.db`` (the default backend, in WAL
    mode) or ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` is accepted).
    ``schema`` (PostgreSQL only) keeps every table in that schema, created if missing.
    Each method runs in its own transaction. Call :meth:`upgrade` once to create or
    migrate the tables. The store caches nothing: every call reads the database.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine: Engine = make_engine(url, schema)

    # -- lifecycle -------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to the newest (a no-op when already there)."""
        from alembic import command

        cfg = alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_is_current(self) -> bool:
        """Whether the database holds the newest schema (``gridflock db upgrade`` made it)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        return current == head

    def ping(self) -> bool:
        """Whether the database answers ``SELECT 1`` (``False`` on any database error).

        A connection dropped by a database restart is discarded and the ping retried
        once, so the first ping after the database comes back already says ``True``.
        """
        for _ in range(2):
            try:
                with self.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except DatabaseUnavailableError as exc:
                if exc.invalidated:
                    continue
                return False
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    continue
                return False
            except (SQLAlchemyError, OSError):
                return False
            return True
        return False

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- fleet -----------------------------------------------------------------------

    def save_fleet(self, spec: FleetSpec) -> None:
        """Replace the stored fleet (grid nodes, sites, devices) with ``spec``, in bulk."""
        with self.engine.begin() as conn:
            _fleet.save_fleet(conn, spec)

    def load_fleet(self) -> FleetSpec:
        """The stored fleet, validated again through ``build_spec``."""
        with self.engine.connect() as conn:
            return _fleet.load_fleet(conn)

    def device_gateways(self) -> dict[str, str]:
        """The gateway of each stored device, by id: the fleet as telemetry ingest sees it."""
        with self.engine.connect() as conn:
            return _fleet.device_gateways(conn)

    # -- events ----------------------------------------------------------------------

    def save_event(self, event: Event) -> None:
        """Insert ``event`` or overwrite the stored one with the same id."""
        with self.engine.begin() as conn:
            _events.save_event(conn, event)

    def set_event_status(self, event_id: str, status: EventStatus) -> None:
        """Record a stored event's new status (lifecycle rules are the caller's)."""
        with self.engine.begin() as conn:
            _events.set_event_status(conn, event_id, status)

    def get_event(self, event_id: str) -> Event:
        """The stored event ``event_id``; raises ``UnknownEventError`` if there is none."""
        with self.engine.connect() as conn:
            return _events.get_event(conn, event_id)

    def list_events(
        self,
        limit: int | None = None,
        offset: int = 0,
        status: EventStatus | Collection[EventStatus] | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Event]:
        """Stored events by start time then id (``newest_first`` reverses).

        ``status`` keeps events in that status (or any of several); ``limit`` / ``offset``
        page through them. With no arguments: every stored event.
        """
        with self.engine.connect() as conn:
            return _events.list_events(conn, limit, offset, status, newest_first=newest_first)

    def active_events(self, now: float) -> list[Event]:
        """Events scheduled or active that end after ``now`` (UTC epoch s), to resume them."""
        with self.engine.connect() as conn:
            return _events.active_events(conn, utc(now))

    def save_event_performance(self, event_id: str, metrics: dict[str, float | int | None]) -> None:
        """Store an event's measured performance metrics (kW, kWh, fractions...)."""
        with self.engine.begin() as conn:
            _events.save_event_performance(conn, event_id, metrics)

    def event_performance(self, event_id: str) -> dict[str, float | int | None] | None:
        """An event's stored performance metrics, ``None`` if none were saved."""
        with self.engine.connect() as conn:
            return _events.event_performance(conn, event_id)

    def save_event_samples(
        self,
        event_id: str,
        ts: npt.ArrayLike,
        target_kw: npt.ArrayLike,
        delivered_kw: npt.ArrayLike,
    ) -> None:
        """Store an event's tracking samples: target and delivered kW at ``ts`` (UTC epoch s)."""
        with self.engine.begin() as conn:
            _events.save_event_samples(conn, event_id, ts, target_kw, delivered_kw)

    def event_samples(self, event_id: str) -> pd.DataFrame:
        """An event's samples: columns ``ts`` (UTC), ``target_kw``, ``delivered_kw``."""
        with self.engine.connect() as conn:
            return _events.event_samples(conn, event_id)

    # -- operating envelopes ---------------------------------------------------------

    def save_envelopes(self, envelopes: Sequence[Envelope], created_by: str) -> int:
        """Insert or replace envelopes by id, all or none; returns how many."""
        with self.engine.begin() as conn:
            return _envelopes.save_envelopes(conn, envelopes, created_by)

    def load_envelopes(self, ending_after: float | None = None) -> list[Envelope]:
        """The envelopes kept (those ending after ``ending_after`` [UTC epoch s], if given)."""
        with self.engine.connect() as conn:
            return _envelopes.load_envelopes(conn, ending_after)

    def envelope_stamp(self) -> tuple[int, float, float]:
        """(count, newest issued_at, latest end) of the envelopes: changes with any write."""
        with self.engine.connect() as conn:
            return _envelopes.envelope_stamp(conn)

    def delete_envelopes(self, ids: Sequence[str]) -> list[str]:
        """Delete envelopes by id; the ids that existed."""
        with self.engine.begin() as conn:
            return _envelopes.delete_envelopes(conn, ids)

    # -- settlements -----------------------------------------------------------------

    def save_statement(
        self, event_id: str, method: str, statement: dict[str, Any], issued_at: When = None
    ) -> bool:
        """Keep an issued statement (``method`` '' for the recommended one) as made.

        A statement already kept for the same event and method is left as it was (an
        issued statement does not change); returns whether this one was kept.
        """
        with self.engine.begin() as conn:
            return _settlements.save_statement(conn, event_id, method, when(issued_at), statement)

    def load_statement(self, event_id: str, method: str) -> dict[str, Any] | None:
        """The statement kept for the event and method ('' recommended), or None."""
        with self.engine.connect() as conn:
            return _settlements.load_statement(conn, event_id, method)

    def load_statements(self, event_ids: Sequence[str], method: str) -> dict[str, dict[str, Any]]:
        """The statements kept for ``event_ids`` by ``method``, by event id."""
        with self.engine.connect() as conn:
            return _settlements.load_statements(conn, event_ids, method)

    # -- commands --------------------------------------------------------------------

    def save_commands(self, batch: CommandBatch) -> None:
        """Store a batch of commands (status ``sent``); known command ids are skipped."""
        with self.engine.begin() as conn:
            _events.save_commands(conn, batch)

    def max_command_seq(self) -> dict[str, int]:
        """The highest command ``seq`` stored for each device (a new leader goes on above it)."""
        with self.engine.connect() as conn:
            return _events.max_command_seq(conn)

    def leadership(self) -> dict[str, Any] | None:
        """The control leader now: ``epoch``, ``holder``, ``since`` (None before any leader)."""
        if self.engine.dialect.name != "postgresql":
            return None  # one process does everything on SQLite: nobody is elected
        with self.engine.connect() as conn:
            return _leadership.read_leadership(conn)

    def control_sessions(self) -> list[dict[str, Any]]:
        """The control processes taking part in the election (PostgreSQL; none on SQLite)."""
        if self.engine.dialect.name != "postgresql":
            return []
        with self.engine.connect() as conn:
            return _leadership.sessions(conn)

    def command_counts(self, event_ids: Sequence[str]) -> dict[str, int]:
        """How many commands were stored for each of ``event_ids`` (ids with none are absent)."""
        with self.engine.connect() as conn:
            return _events.command_counts(conn, event_ids)

    def commands_for_event(self, event_id: str) -> pd.DataFrame:
        """Commands sent for an event, one row per command (times in UTC).

        Columns: command_id, device_id, event_id, seq, p_setpoint_kw, issued_at,
        valid_until, status, reason, acked_at.
        """
        with self.engine.connect() as conn:
            return _events.commands_for_event(conn, event_id)

    def commands_for_device(self, device_id: str, limit: int = 100) -> pd.DataFrame:
        """The latest ``limit`` commands sent to one device, newest first.

        Columns as :meth:`commands_for_event`.
        """
        with self.engine.connect() as conn:
            return _events.commands_for_device(conn, device_id, limit)

    def set_command_status(
        self,
        command_ids: Sequence[str],
        status: str,
        reason: str | None = None,
        *,
        ts: When = None,
    ) -> int:
        """Set the status of many commands: ``sent``, ``accepted``, ``rejected``, ``expired``.

        ``accepted`` / ``rejected`` also record ``acked_at`` (``ts``, default now). Unknown
        ids are skipped; returns how many commands were updated.
        """
        with self.engine.begin() as conn:
            return _events.set_command_status(conn, command_ids, status, reason, when(ts))

    # -- schedules -------------------------------------------------------------------

    def save_schedules(
        self, batch: ScheduleBatch, status: str = "sent", reasons: Sequence[str | None] = ()
    ) -> None:
        """Store a batch of schedules (``sent``, or ``refused`` with a reason each)."""
        with self.engine.begin() as conn:
            _schedules.save_schedules(conn, batch, status, reasons)

    def set_schedule_status(
        self,
        schedule_ids: Sequence[str],
        status: str,
        reason: str | None = None,
        *,
        ts: When = None,
    ) -> int:
        """Set the status of many schedules (as :meth:`set_command_status`); unknown ids skipped."""
        with self.engine.begin() as conn:
            return _schedules.set_schedule_status(conn, schedule_ids, status, reason, when(ts))

    def schedules_for_plan(self, plan_id: str) -> pd.DataFrame:
        """Every schedule stored for a plan, by device then seq (times in UTC; ``p_kw`` lists).

        Columns: schedule_id, plan_id, device_id, seq, issued_at, start, step_s,
        valid_until, p_kw, status, reason, acked_at.
        """
        with self.engine.connect() as conn:
            return _schedules.schedules_for_plan(conn, plan_id)

    def live_schedules(self, now: float) -> pd.DataFrame:
        """Each device's newest accepted schedule still valid at ``now`` [UTC epoch s]."""
        with self.engine.connect() as conn:
            return _schedules.live_schedules(conn, utc(now))

    # -- telemetry -------------------------------------------------------------------

    def write_telemetry(self, batch: TelemetryBatch) -> int:
        """Store a batch of readings; returns rows written (stored duplicates skipped)."""
        with self.engine.begin() as conn:
            return _telemetry.write_telemetry(conn, batch)

    def delete_telemetry_before(self, before: datetime) -> int:
        """Delete the readings stamped before ``before`` (retention); returns how many."""
        with self.engine.begin() as conn:
            return _telemetry.delete_telemetry_before(conn, before)

    def query_telemetry(self, device_id: str, start: datetime, end: datetime) -> pd.DataFrame:
        """One device's readings in ``[start, end)``.

        Columns ``ts`` (UTC), ``p_kw``, ``soc``, ``p_baseline_kw`` (NaN where not reported).
        """
        with self.engine.connect() as conn:
            return _telemetry.query_telemetry(conn, device_id, start, end)

    def query_telemetry_resampled(
        self, device_ids: Sequence[str], start: datetime, end: datetime, every_s: int
    ) -> pd.DataFrame:
        """Readings of several devices in ``[start, end)``, aggregated per ``every_s`` bucket.

        Buckets start at ``floor(epoch / every_s) * every_s``; computed in SQL. Columns
        ``device_id``, ``ts`` (bucket start, UTC), ``p_kw`` (mean), ``soc`` (last reported),
        ``soc_mean``, ``n`` (readings in the bucket), by device then time.
        """
        with self.engine.connect() as conn:
            return _telemetry.query_telemetry_resampled(conn, device_ids, start, end, every_s)

    def site_power(
        self,
        start: datetime,
        end: datetime,
        step_s: int = 900,
        site_ids: Sequence[str] | None = None,
    ) -> SitePower:
        """Per-site net and per-kind power over ``[start, end)`` at ``step_s`` [kW, + export].

        The training and meter data of forecasts and M&V; see :class:`SitePower` for how
        gaps show (NaN unless every device of the site reported in the interval).
        """
        with self.engine.connect() as conn:
            return _history.site_power(conn, start, end, step_s, site_ids)

    def latest_telemetry(self, device_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The newest reading per device (``None``: every device), by device id.

        Columns ``device_id``, ``ts`` (UTC), ``p_kw``, ``soc``, ``p_baseline_kw``.
        """
        with self.engine.connect() as conn:
            return _telemetry.latest_telemetry(conn, device_ids)

    # -- fleet edits -----------------------------------------------------------------

    def upsert_sites(self, sites: pd.DataFrame) -> int:
        """Insert or overwrite sites (``SITE_ATTRS`` columns), validated; returns the count.

        Raises ``ValidationError`` (nothing written) if a site is invalid or its grid
        node is not stored. Stored sites keep their place in the fleet order.
        """
        with self.engine.begin() as conn:
            return _fleet.upsert_sites(conn, sites)

    def upsert_devices(self, kind: DeviceKind, devices: pd.DataFrame) -> int:
        """Insert or overwrite devices of one kind, validated; returns the count.

        Raises ``ValidationError`` (nothing written) if a device is invalid or its site
        is not stored.
        """
        with self.engine.begin() as conn:
            return _fleet.upsert_devices(conn, kind, devices)

    def delete_devices(self, device_ids: Sequence[str]) -> int:
        """Delete devices by id; returns how many existed."""
        with self.engine.begin() as conn:
            return _fleet.delete_devices(conn, device_ids)

    def delete_site(self, site_id: str) -> int | None:
        """Delete a site with its devices; devices deleted, or ``None`` if no such site."""
        with self.engine.begin() as conn:
            return _fleet.delete_site(conn, site_id)

    # -- API keys --------------------------------------------------------------------

    def create_api_key(self, role: Role, name: str) -> tuple[str, ApiKey]:
        """Create a key for ``role``: returns ``(plaintext, record)``; the plaintext only now.

        The key reads ``gf_<id>_<secret>``; only the SHA-256 of the secret is stored.
        """
        with self.engine.begin() as conn:
            return _keys.create_api_key(conn, role, name, when(None))

    def authenticate(self, key: str, *, now: When = None) -> Principal | None:
        """The principal of ``key``; ``None`` if malformed, unknown, revoked or wrong.

        One indexed lookup; ``last_used_at`` is written at most once a minute per key.
        """
        if _keys.parse_key(key) is None:
            return None
        with self.engine.begin() as conn:
            return _keys.authenticate(conn, key, when(now))

    def list_api_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key's record (never its secret), oldest first."""
        with self.engine.connect() as conn:
            return _keys.list_api_keys(conn, include_revoked)

    def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key at once; ``False`` if no active key has this id."""
        with self.engine.begin() as conn:
            return _keys.revoke_api_key(conn, key_id, when(None))

    # -- gateways --------------------------------------------------------------------

    def create_gateway(
        self,
        gateway_id: str,
        *,
        kind: str,
        site_id: str | None,
        groups: Sequence[str],
        password_hash: str,
    ) -> None:
        """Store a new gateway; ``AlreadyExistsError`` if the id is taken.

        ``password_hash`` is Mosquitto's PBKDF2-SHA512 format, made by the caller.
        """
        with self.engine.begin() as conn:
            _gateways.create_gateway(
                conn,
                gateway_id,
                kind=kind,
                site_id=site_id,
                groups=groups,
                password_hash=password_hash,
                now=when(None),
            )

    def list_gateways(self) -> list[GatewayRecord]:
        """Every stored gateway, by id."""
        with self.engine.connect() as conn:
            return _gateways.list_gateways(conn)

    def get_gateway(self, gateway_id: str) -> GatewayRecord | None:
        """The gateway ``gateway_id``, ``None`` if there is none."""
        with self.engine.connect() as conn:
            return _gateways.get_gateway(conn, gateway_id)

    def delete_gateway(self, gateway_id: str) -> bool:
        """Delete a gateway; ``False`` if there was none."""
        with self.engine.begin() as conn:
            return _gateways.delete_gateway(conn, gateway_id)

    def set_gateway_seen(self, gateway_ids: Sequence[str], ts: When = None) -> int:
        """Record that gateways were seen at ``ts`` (default now); returns how many exist."""
        with self.engine.begin() as conn:
            return _gateways.set_gateway_seen(conn, gateway_ids, when(ts))

    # -- audit -----------------------------------------------------------------------

    def audit(
        self,
        actor: str,
        action: str,
        subject: str,
        detail: dict[str, Any] | None = None,
        ts: When = None,
    ) -> int:
        """Append an audit record (``ts`` default now); returns its id.

        ``actor`` e.g. ``apikey:ops-1``, ``system``, ``openadr``; ``action`` e.g.
        ``event.create``; ``detail`` any JSON object (non-finite floats become null).
        """
        with self.engine.begin() as conn:
            return _audit.audit(conn, actor, action, subject, detail, when(ts))

    def audit_log(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        since: When = None,
        until: When = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditRecord]:
        """Audit records matching every filter given, newest first; ``ts`` in ``[since, until)``.

        ``action="event.*"`` matches every ``event.`` action.
        """
        with self.engine.connect() as conn:
            return _audit.audit_log(
                conn,
                actor=actor,
                action=action,
                subject=subject,
                since=None if since is None else when(since),
                until=None if until is None else when(until),
                limit=limit,
                offset=offset,
            )

    # -- dead letters ----------------------------------------------------------------

    def quarantine(self, what: str, reason: str, rows: int, payload: str, ts: When = None) -> int:
        """Keep a write the database refused for its content (``payload`` as JSON text).

        ``what`` names the kind of write (``event``, ``telemetry``...), ``reason`` the
        error; ``rows`` how many records it held. Text is cut to a bounded size.
        Returns the dead letter's id.
        """
        with self.engine.begin() as conn:
            return _dead_letters.quarantine(conn, what, reason, rows, payload, when(ts))

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first."""
        with self.engine.connect() as conn:
            return _dead_letters.dead_letters(conn, limit)

    # -- autopilot -------------------------------------------------------------------

    def save_proposals(self, items: list[AutopilotProposal]) -> None:
        """Insert or replace the autopilot's proposals by id."""
        with self.engine.begin() as conn:
            _autopilot.save_proposals(conn, items)

    def proposals(
        self,
        *,
        status: str | None = None,
        since: When = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[AutopilotProposal], int]:
        """Proposals by start (one status, ending after ``since``, if given) and their total."""
        with self.engine.connect() as conn:
            s = None if since is None else when(since)
            return (
                _autopilot.proposals(conn, status, s, limit, offset),
                _autopilot.count_proposals(conn, status, s),
            )

    def record_decision(
        self,
        kind: str,
        actor: str,
        reason: str,
        *,
        proposal_id: str | None = None,
        detail: dict[str, Any] | None = None,
        ts: When = None,
    ) -> int:
        """Append to the autopilot's decision log (``ts`` default now); returns the id."""
        with self.engine.begin() as conn:
            return _autopilot.record_decision(
                conn, when(ts), kind, actor, proposal_id, reason, detail
            )

    def decisions(
        self, *, kind: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[AutopilotDecision], int]:
        """The decision log, newest first (optionally one kind); and the total."""
        with self.engine.connect() as conn:
            return (
                _autopilot.decisions(conn, kind, limit, offset),
                _autopilot.count_decisions(conn, kind),
            )

    # -- forecasts -------------------------------------------------------------------

    def save_forecast_model(
        self,
        model_id: str,
        quantity: str,
        *,
        trained_at: When,
        data_start: When,
        data_end: When,
        params: dict[str, Any],
        backtest: dict[str, Any],
        bundle: bytes,
    ) -> ForecastModelRecord:
        """Store a trained model version with its backtest figures and serialised bundle.

        ``params`` and ``backtest`` must be JSON-serialisable (finite numbers).
        """
        with self.engine.begin() as conn:
            return _forecasts.save_forecast_model(
                conn,
                model_id,
                quantity,
                when(trained_at),
                when(data_start),
                when(data_end),
                params,
                backtest,
                bundle,
            )

    def forecast_models(
        self, limit: int = 100, offset: int = 0, quantity: str | None = None
    ) -> list[ForecastModelRecord]:
        """Model versions, newest first (without bundles)."""
        with self.engine.connect() as conn:
            return _forecasts.forecast_models(conn, limit, offset, quantity)

    def forecast_model_bundle(self, model_id: str) -> bytes | None:
        """One model version's serialised bundle, ``None`` if unknown."""
        with self.engine.connect() as conn:
            return _forecasts.forecast_model_bundle(conn, model_id)

    def save_forecasts(self, forecasts: Sequence[IssuedForecast]) -> int:
        """Insert or overwrite issued group forecasts; returns how many."""
        with self.engine.begin() as conn:
            return _forecasts.save_forecasts(conn, forecasts)

    def latest_forecasts(
        self,
        *,
        horizon: str | None = None,
        quantity: str | None = None,
        group_by: str | None = None,
        group: str | None = None,
        before: When = None,
    ) -> list[IssuedForecast]:
        """The newest issued forecast per (horizon, quantity, group) matching the filters.

        ``before`` (optional) keeps issues made strictly before it.
        """
        with self.engine.connect() as conn:
            return _forecasts.latest_forecasts(
                conn, horizon, quantity, group_by, group, None if before is None else when(before)
            )

    def save_support_windows(
        self, issued_at: When, horizon: str, windows: Sequence[SupportWindowRecord]
    ) -> int:
        """Replace the need-for-support windows of one issue; returns how many."""
        with self.engine.begin() as conn:
            return _forecasts.save_support_windows(conn, when(issued_at), horizon, windows)

    def latest_support_windows(self, horizon: str | None = None) -> list[SupportWindowRecord]:
        """The windows of the newest issue of each horizon, by start."""
        with self.engine.connect() as conn:
            return _forecasts.latest_support_windows(conn, horizon)

    def prune_forecasts(self, before: When, keep_models: int = 20) -> int:
        """Delete forecasts issued before ``before`` and all but ``keep_models`` models."""
        with self.engine.begin() as conn:
            return _forecasts.prune_forecasts(conn, when(before), keep_models)
