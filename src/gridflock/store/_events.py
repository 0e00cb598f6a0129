"""Events, their tracking samples and measured performance; commands sent for them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Row, Table, func, select, update
from sqlalchemy.engine import Connection

from gridflock.domain import CommandBatch, Event, EventSource, EventStatus, Scope
from gridflock.store._bulk import nullable
from gridflock.store._dialect import insert_ignore, upsert
from gridflock.store._time import datetimes, epoch, utc
from gridflock.store.errors import UnknownEventError
from gridflock.store.models import CommandRow, EventRow, EventSampleRow, table_of

__all__ = [
    "COMMAND_STATUSES",
    "active_events",
    "command_counts",
    "commands_for_event",
    "event_performance",
    "event_samples",
    "get_event",
    "list_events",
    "max_command_seq",
    "save_commands",
    "save_event",
    "save_event_performance",
    "save_event_samples",
    "set_command_status",
    "set_event_status",
]

CHUNK = 20_000
_EVENT_COLS = (
    "id",
    "target_kw",
    "start",
    "end",
    "scope",
    "source",
    "status",
    "created_by",
    "priority",
)
_COMMAND_COLS = (
    "command_id",
    "device_id",
    "event_id",
    "seq",
    "p_setpoint_kw",
    "issued_at",
    "valid_until",
    "status",
    "reason",
    "acked_at",
)
#: What a stored command's status may be.
COMMAND_STATUSES = ("sent", "accepted", "rejected", "expired")
_ACKS = ("accepted", "rejected")
#: Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement).
IN_CHUNK = 10_000


def _events() -> Table:
    return table_of(EventRow)


def save_event(conn: Connection, event: Event) -> None:
    """Insert ``event`` or overwrite the stored event with its id (performance kept)."""
    row = {
        "id": event.id,
        "target_kw": float(event.target_kw),
        "start": utc(event.start),
        "end": utc(event.end),
        "scope": str(event.scope),
        "source": event.source.value,
        "status": event.status.value,
        "created_by": event.created_by,
        "priority": int(event.priority),
    }
    # performance is not in ``row``: a stored value is left alone on update
    conn.execute(upsert(conn, _events(), ["id"], list(row)), [row])


def _require(conn: Connection, event_id: str) -> None:
    table = _events()
    if conn.execute(select(table.c.id).where(table.c.id == event_id)).first() is None:
        raise UnknownEventError(event_id)


def set_event_status(conn: Connection, event_id: str, status: EventStatus) -> None:
    """Record ``status`` for a stored event (the lifecycle is checked by the caller)."""
    table = _events()
    result = conn.execute(
        update(table).where(table.c.id == event_id).values(status=EventStatus(status).value)
    )
    if result.rowcount == 0:
        raise UnknownEventError(event_id)


def _event(row: Row[Any]) -> Event:
    return Event(
        id=row.id,
        target_kw=row.target_kw,
        start=epoch(row.start),
        end=epoch(row.end),
        scope=Scope.parse(row.scope),
        source=EventSource(row.source),
        status=EventStatus(row.status),
        created_by=row.created_by,
        priority=int(row.priority),
    )


def get_event(conn: Connection, event_id: str) -> Event:
    """The stored event ``event_id``, or :class:`UnknownEventError`."""
    table = _events()
    cols = [table.c[c] for c in _EVENT_COLS]
    row = conn.execute(select(*cols).where(table.c.id == event_id)).first()
    if row is None:
        raise UnknownEventError(event_id)
    return _event(row)


def list_events(
    conn: Connection,
    limit: int | None = None,
    offset: int = 0,
    status: EventStatus | Collection[EventStatus] | None = None,
    *,
    newest_first: bool = False,
) -> list[Event]:
    """Stored events by start time then id (reversed if ``newest_first``).

    ``status`` keeps only events in that status (or any of several); ``limit`` and
    ``offset`` page through the result.
    """
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError("limit and offset must not be negative")
    table = _events()
    cols = [table.c[c] for c in _EVENT_COLS]
    stmt = select(*cols)
    if status is not None:
        wanted = [status] if isinstance(status, str) else list(status)
        stmt = stmt.where(table.c.status.in_([EventStatus(s).value for s in wanted]))
    if newest_first:
        stmt = stmt.order_by(table.c.start.desc(), table.c.id.desc())
    else:
        stmt = stmt.order_by(table.c.start, table.c.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return [_event(r) for r in conn.execute(stmt).all()]


def active_events(conn: Connection, now: datetime) -> list[Event]:
    """Events still to run or running at ``now`` (scheduled or active, ending after it).

    What a restarted service resumes; by start time then id.
    """
    table = _events()
    cols = [table.c[c] for c in _EVENT_COLS]
    stmt = (
        select(*cols)
        .where(
            table.c.status.in_([EventStatus.SCHEDULED.value, EventStatus.ACTIVE.value]),
            table.c.end > now,
        )
        .order_by(table.c.start, table.c.id)
    )
    return [_event(r) for r in conn.execute(stmt).all()]


def save_event_performance(
    conn: Connection, event_id: str, metrics: dict[str, float | int | None]
) -> None:
    """Store an event's measured performance (replacing any stored before).

    Non-finite floats become ``None`` so the JSON stays standard.
    """
    clean = {
        str(k): (None if isinstance(v, float) and not np.isfinite(v) else v)
        for k, v in metrics.items()
    }
    table = _events()
    result = conn.execute(update(table).where(table.c.id == event_id).values(performance=clean))
    if result.rowcount == 0:
        raise UnknownEventError(event_id)


def event_performance(conn: Connection, event_id: str) -> dict[str, float | int | None] | None:
    """An event's stored performance metrics, ``None`` if none were saved yet."""
    table = _events()
    row = conn.execute(select(table.c.performance).where(table.c.id == event_id)).first()
    if row is None:
        raise UnknownEventError(event_id)
    perf: dict[str, float | int | None] | None = row.performance
    return perf


def save_event_samples(
    conn: Connection,
    event_id: str,
    ts: npt.ArrayLike,
    target_kw: npt.ArrayLike,
    delivered_kw: npt.ArrayLike,
) -> None:
    """Store tracking samples of an event (``ts`` in UTC epoch s); a repeated ``ts`` overwrites."""
    _require(conn, event_id)
    times = datetimes(ts)
    target, delivered = nullable(target_kw), nullable(delivered_kw)
    if not len(times) == len(target) == len(delivered):
        raise ValueError("ts, target_kw and delivered_kw must have the same length")
    rows = [
        {"event_id": event_id, "ts": t, "target_kw": a, "delivered_kw": b}
        for t, a, b in zip(times, target, delivered, strict=True)
    ]
    table = table_of(EventSampleRow)
    for i in range(0, len(rows), CHUNK):
        conn.execute(upsert(conn, table, ["event_id", "ts"]), rows[i : i + CHUNK])


def _ts_column(values: list[Any]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[us, UTC]")


def event_samples(conn: Connection, event_id: str) -> pd.DataFrame:
    """An event's samples by time: columns ``ts`` (UTC), ``target_kw``, ``delivered_kw``."""
    _require(conn, event_id)
    table = table_of(EventSampleRow)
    stmt = (
        select(table.c.ts, table.c.target_kw, table.c.delivered_kw)
        .where(table.c.event_id == event_id)
        .order_by(table.c.ts)
    )
    rows = conn.execute(stmt).all()
    return pd.DataFrame(
        {
            "ts": _ts_column([r.ts for r in rows]),
            "target_kw": np.array([r.target_kw for r in rows], dtype=np.float64),
            "delivered_kw": np.array([r.delivered_kw for r in rows], dtype=np.float64),
        }
    )


def save_commands(conn: Connection, batch: CommandBatch) -> None:
    """Store a batch of commands; a command id already stored is left as it is."""
    n = len(batch)
    issued = utc(batch.issued_at)
    rows = [
        {
            "command_id": c,
            "device_id": d,
            "event_id": batch.event_id,
            "seq": s,
            "p_setpoint_kw": p if p == p else None,  # NaN (release) is stored as NULL
            "issued_at": issued,
            "valid_until": v,
        }
        for c, d, s, p, v in zip(
            np.asarray(batch.command_ids).astype(str).tolist(),
            np.asarray(batch.device_ids).astype(str).tolist(),
            np.asarray(batch.seq, dtype=np.int64).tolist(),
            np.asarray(batch.p_setpoint_kw, dtype=np.float64).tolist(),
            datetimes(batch.valid_until),
            strict=True,
        )
    ]
    if len(rows) != n:  # pragma: no cover - zip(strict=True) raises first
        raise ValueError("command batch columns differ in length")
    table = table_of(CommandRow)
    for i in range(0, n, CHUNK):
        conn.execute(insert_ignore(conn, table), rows[i : i + CHUNK])


def max_command_seq(conn: Connection) -> dict[str, int]:
    """The highest ``seq`` stored per device."""
    table = table_of(CommandRow)
    stmt = select(table.c.device_id, func.max(table.c.seq)).group_by(table.c.device_id)
    return {str(d): int(s) for d, s in conn.execute(stmt).all()}


def command_counts(conn: Connection, event_ids: Sequence[str]) -> dict[str, int]:
    """How many commands were stored for each of ``event_ids`` (absent ids: none)."""
    table = table_of(CommandRow)
    out: dict[str, int] = {}
    ids = list(event_ids)
    for i in range(0, len(ids), 1000):
        stmt = (
            select(table.c.event_id, func.count())
            .where(table.c.event_id.in_(ids[i : i + 1000]))
            .group_by(table.c.event_id)
        )
        out.update({str(r[0]): int(r[1]) for r in conn.execute(stmt).all()})
    return out


def commands_for_event(conn: Connection, event_id: str) -> pd.DataFrame:
    """Commands sent for ``event_id``, by issue time then device.

    Columns: command_id, device_id, event_id, seq, p_setpoint_kw, issued_at, valid_until
    (UTC), status, reason (``None`` unless rejected with one), acked_at (UTC, NaT if none).
    """
    table = table_of(CommandRow)
    stmt = (
        select(*(table.c[c] for c in _COMMAND_COLS))
        .where(table.c.event_id == event_id)
        .order_by(table.c.issued_at, table.c.device_id, table.c.seq)
    )
    rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(_COMMAND_COLS))
    df["seq"] = df["seq"].astype(np.int64)
    df["p_setpoint_kw"] = df["p_setpoint_kw"].astype(np.float64)
    df["issued_at"] = _ts_column(df["issued_at"].tolist())
    df["valid_until"] = _ts_column(df["valid_until"].tolist())
    df["acked_at"] = _ts_column(df["acked_at"].tolist())
    return df


def commands_for_device(conn: Connection, device_id: str, limit: int) -> pd.DataFrame:
    """The latest ``limit`` commands sent to ``device_id``, newest first.

    Columns as :func:`commands_for_event`.
    """
    table = table_of(CommandRow)
    stmt = (
        select(*(table.c[c] for c in _COMMAND_COLS))
        .where(table.c.device_id == device_id)
        .order_by(table.c.issued_at.desc(), table.c.seq.desc())
        .limit(limit)
    )
    rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(_COMMAND_COLS))
    df["seq"] = df["seq"].astype(np.int64)
    df["p_setpoint_kw"] = df["p_setpoint_kw"].astype(np.float64)
    for col in ("issued_at", "valid_until", "acked_at"):
        df[col] = _ts_column(df[col].tolist())
    return df


def set_command_status(
    conn: Connection,
    command_ids: Sequence[str],
    status: str,
    reason: str | None,
    ts: datetime,
) -> int:
    """Set the status (and reason) of many stored commands; returns how many were stored.

    ``accepted`` and ``rejected`` are acknowledgements and also record ``acked_at = ts``;
    ``sent`` and ``expired`` leave ``acked_at`` as it is. Whether a transition makes sense
    (an expired command acknowledged late, say) is the caller's call.
    """
    if status not in COMMAND_STATUSES:
        raise ValueError(f"unknown command status {status!r}; use one of {COMMAND_STATUSES}")
    table = table_of(CommandRow)
    values: dict[str, Any] = {"status": status, "reason": reason}
    if status in _ACKS:
        values["acked_at"] = ts
    ids = list(dict.fromkeys(str(c) for c in command_ids))
    n = 0
    for i in range(0, len(ids), IN_CHUNK):
        stmt = update(table).where(table.c.command_id.in_(ids[i : i + IN_CHUNK])).values(values)
        n += conn.execute(stmt).rowcount
    return n
