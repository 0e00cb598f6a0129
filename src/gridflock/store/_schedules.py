"""Schedules sent to devices (a plan's setpoint series), their acks and refusals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from gridflock.domain.schedules import ScheduleBatch
from gridflock.store._dialect import insert_ignore
from gridflock.store._time import utc
from gridflock.store.models import ScheduleRow, table_of

__all__ = [
    "SCHEDULE_STATUSES",
    "live_schedules",
    "save_schedules",
    "schedules_for_plan",
    "set_schedule_status",
]

#: What can become of a schedule.
SCHEDULE_STATUSES = ("sent", "accepted", "rejected", "expired", "refused")
_ACKS = ("accepted", "rejected")
_CHUNK = 2_000
_IN_CHUNK = 1_000
_COLS = (
    "schedule_id",
    "plan_id",
    "device_id",
    "seq",
    "issued_at",
    "start",
    "step_s",
    "valid_until",
    "p_kw",
    "p_min_kw",
    "p_max_kw",
    "status",
    "reason",
    "acked_at",
)


def save_schedules(
    conn: Connection, batch: ScheduleBatch, status: str = "sent", reasons: Sequence[Any] = ()
) -> None:
    """Store a batch of schedules; an id already stored is left as it is.

    ``status`` is ``sent``, or ``refused`` with one ``reasons`` entry per schedule.
    """
    if status not in SCHEDULE_STATUSES:
        raise ValueError(f"unknown schedule status {status!r}; use one of {SCHEDULE_STATUSES}")
    n = len(batch)
    why = list(reasons) if len(reasons) else [None] * n
    common = {
        "plan_id": batch.plan_id,
        "issued_at": utc(batch.issued_at),
        "start": utc(batch.start),
        "step_s": float(batch.step_s),
        "valid_until": utc(batch.valid_until),
        "status": status,
    }
    lo, hi = (_lists(lim, n) for lim in (batch.p_min_kw, batch.p_max_kw))
    rows = [
        {
            **common,
            "schedule_id": c,
            "device_id": d,
            "seq": s,
            "p_kw": _json(p),
            "p_min_kw": a,
            "p_max_kw": b,
            "reason": r,
        }
        for c, d, s, p, a, b, r in zip(
            np.asarray(batch.schedule_ids).astype(str).tolist(),
            np.asarray(batch.device_ids).astype(str).tolist(),
            np.asarray(batch.seq, dtype=np.int64).tolist(),
            np.asarray(batch.p_kw, dtype=np.float64).tolist(),
            lo,
            hi,
            why,
            strict=True,
        )
    ]
    table = table_of(ScheduleRow)
    for i in range(0, n, _CHUNK):
        conn.execute(insert_ignore(conn, table), rows[i : i + _CHUNK])


def _json(row: list[float]) -> list[float | None]:
    """A row of slots for JSON: NaN as null."""
    return [None if not math.isfinite(x) else x for x in row]


def _lists(values: np.ndarray | None, n: int) -> list[list[float | None] | None]:
    """Each row of a limit matrix for JSON, or None for every row if there is none."""
    if values is None:
        return [None] * n
    return [_json(r) for r in np.asarray(values, dtype=np.float64).tolist()]


def set_schedule_status(
    conn: Connection, schedule_ids: Sequence[str], status: str, reason: str | None, ts: datetime
) -> int:
    """Set the status (and reason) of stored schedules; returns how many were stored."""
    if status not in SCHEDULE_STATUSES:
        raise ValueError(f"unknown schedule status {status!r}; use one of {SCHEDULE_STATUSES}")
    table = table_of(ScheduleRow)
    values: dict[str, Any] = {"status": status, "reason": reason}
    if status in _ACKS:
        values["acked_at"] = ts
    ids = list(dict.fromkeys(str(c) for c in schedule_ids))
    n = 0
    for i in range(0, len(ids), _IN_CHUNK):
        stmt = update(table).where(table.c.schedule_id.in_(ids[i : i + _IN_CHUNK])).values(values)
        n += conn.execute(stmt).rowcount
    return n


def _frame(rows: Sequence[Any]) -> pd.DataFrame:
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(_COLS))
    for c in ("issued_at", "start", "valid_until", "acked_at"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df


def schedules_for_plan(conn: Connection, plan_id: str) -> pd.DataFrame:
    """Every schedule stored for a plan (sent, acknowledged or refused), by device then seq."""
    t = table_of(ScheduleRow)
    stmt = (
        select(*(t.c[c] for c in _COLS))
        .where(t.c.plan_id == plan_id)
        .order_by(t.c.device_id, t.c.seq)
    )
    return _frame(conn.execute(stmt).all())


def live_schedules(conn: Connection, now: datetime) -> pd.DataFrame:
    """Each device's newest accepted schedule still valid at ``now`` (what it follows)."""
    t = table_of(ScheduleRow)
    newest = (
        select(t.c.device_id, func.max(t.c.seq).label("seq"))
        .where((t.c.status == "accepted") & (t.c.valid_until > now))
        .group_by(t.c.device_id)
        .subquery()
    )
    stmt = (
        select(*(t.c[c] for c in _COLS))
        .join(newest, (t.c.device_id == newest.c.device_id) & (t.c.seq == newest.c.seq))
        .order_by(t.c.device_id)
    )
    return _frame(conn.execute(stmt).all())
