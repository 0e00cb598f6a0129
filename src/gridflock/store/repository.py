"""The store: one object that saves and loads everything Gridflock keeps in a database."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy.typing as npt
import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from gridflock.domain import CommandBatch, Event, EventStatus, FleetSpec, TelemetryBatch
from gridflock.store import _events, _fleet, _telemetry
from gridflock.store._engine import make_engine

__all__ = ["MIGRATIONS_DIR", "Store"]

#: Where the Alembic migrations ship, inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration built in code (no ``alembic.ini`` needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


class Store:
    """The database behind Gridflock: fleet, events, commands, telemetry.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/file.db`` (the default backend, in WAL
    mode) or ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` is accepted).
    ``schema`` (PostgreSQL only) keeps every table in that schema, created if missing.
    Each method runs in its own transaction. Call :meth:`upgrade` once to create or
    migrate the tables.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine: Engine = make_engine(url, schema)

    # -- lifecycle -------------------------------------------------------------------

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to the newest (a no-op when already there)."""
        cfg = alembic_config()
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

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

    def list_events(self) -> list[Event]:
        """Every stored event, by start time then id."""
        with self.engine.connect() as conn:
            return _events.list_events(conn)

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

    # -- commands --------------------------------------------------------------------

    def save_commands(self, batch: CommandBatch) -> None:
        """Store a batch of commands (status ``sent``); known command ids are skipped."""
        with self.engine.begin() as conn:
            _events.save_commands(conn, batch)

    def commands_for_event(self, event_id: str) -> pd.DataFrame:
        """Commands sent for an event, one row per command (times in UTC)."""
        with self.engine.connect() as conn:
            return _events.commands_for_event(conn, event_id)

    # -- telemetry -------------------------------------------------------------------

    def write_telemetry(self, batch: TelemetryBatch) -> int:
        """Store a batch of readings; returns rows written (stored duplicates skipped)."""
        with self.engine.begin() as conn:
            return _telemetry.write_telemetry(conn, batch)

    def query_telemetry(self, device_id: str, start: datetime, end: datetime) -> pd.DataFrame:
        """One device's readings in ``[start, end)``.

        Columns ``ts`` (UTC), ``p_kw``, ``soc``, ``p_baseline_kw`` (NaN where not reported).
        """
        with self.engine.connect() as conn:
            return _telemetry.query_telemetry(conn, device_id, start, end)
