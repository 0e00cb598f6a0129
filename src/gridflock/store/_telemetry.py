"""Telemetry in bulk: batched writes (COPY on PostgreSQL) and range queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gridflock.domain import TelemetryBatch
from gridflock.store._bulk import nullable
from gridflock.store._dialect import insert_ignore
from gridflock.store._time import datetimes, to_utc
from gridflock.store.models import TelemetryRow, table_of

__all__ = ["query_telemetry", "write_telemetry"]

CHUNK = 20_000
_STAGE = "gf_telemetry_in"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (device_id text, ts float8, p_kw float8, "
    "soc float8, p_baseline_kw float8) ON COMMIT DELETE ROWS"
)
_MERGE_STAGE = (
    "INSERT INTO telemetry (device_id, ts, p_kw, soc, p_baseline_kw) "
    "SELECT device_id, to_timestamp(ts), p_kw, NULLIF(soc, 'NaN'::float8), "
    f"NULLIF(p_baseline_kw, 'NaN'::float8) FROM {_STAGE} ON CONFLICT DO NOTHING"
)


class _Columns(NamedTuple):
    ids: list[str]
    ts: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]
    soc: npt.NDArray[np.float64]
    base: npt.NDArray[np.float64]


def _columns(batch: TelemetryBatch) -> _Columns:
    """The batch's columns as arrays, without readings that have no time or no power."""
    ts = np.asarray(batch.ts, dtype=np.float64)
    p = np.asarray(batch.p_kw, dtype=np.float64)
    soc = np.asarray(batch.soc, dtype=np.float64)
    base = np.asarray(batch.p_baseline_kw, dtype=np.float64)
    ids = np.asarray(batch.device_ids).astype(str)
    if not len(ids) == len(ts) == len(p) == len(soc) == len(base):
        raise ValueError("telemetry batch columns differ in length")
    keep = np.isfinite(ts) & np.isfinite(p)
    if not keep.all():
        ids, ts, p, soc, base = ids[keep], ts[keep], p[keep], soc[keep], base[keep]
    return _Columns(ids.tolist(), ts, p, soc, base)


def _write_generic(conn: Connection, cols: _Columns) -> int:
    ids, ts, p, soc, base = cols
    table = table_of(TelemetryRow)
    stmt = insert_ignore(conn, table)
    written = 0
    for i in range(0, len(ids), CHUNK):
        sl = slice(i, i + CHUNK)
        rows = [
            {"device_id": d, "ts": t, "p_kw": pk, "soc": s, "p_baseline_kw": b}
            for d, t, pk, s, b in zip(
                ids[sl],
                datetimes(ts[sl]),
                p[sl].tolist(),
                nullable(soc[sl]),
                nullable(base[sl]),
                strict=True,
            )
        ]
        written += max(conn.execute(stmt, rows).rowcount, 0)
    return written


def _write_copy(raw: psycopg.Connection[Any], cols: _Columns) -> int:
    """COPY into a temporary staging table, then merge skipping stored (device, ts)."""
    ids, ts, p, soc, base = cols
    with raw.cursor() as cur:
        cur.execute(_CREATE_STAGE)
        with cur.copy(f"COPY {_STAGE} FROM STDIN") as copy:
            for row in zip(ids, ts.tolist(), p.tolist(), soc.tolist(), base.tolist(), strict=True):
                copy.write_row(row)
        cur.execute(_MERGE_STAGE)
        written = max(cur.rowcount, 0)
        cur.execute(f"TRUNCATE {_STAGE}")
    return written


def write_telemetry(conn: Connection, batch: TelemetryBatch) -> int:
    """Store a batch of readings; returns the number of rows written.

    NaN ``soc`` / ``p_baseline_kw`` are stored as NULL; readings already stored for the
    same (device, ts) are skipped, as are readings with no finite ``ts`` or ``p_kw``.
    """
    cols = _columns(batch)
    if not cols.ids:
        return 0
    raw = conn.connection.dbapi_connection
    if isinstance(raw, psycopg.Connection):
        return _write_copy(raw, cols)
    return _write_generic(conn, cols)


def query_telemetry(
    conn: Connection, device_id: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """A device's readings in ``[start, end)``, by time.

    Columns: ``ts`` (UTC), ``p_kw``, ``soc``, ``p_baseline_kw`` (NaN where not reported).
    """
    table = table_of(TelemetryRow)
    stmt = (
        select(table.c.ts, table.c.p_kw, table.c.soc, table.c.p_baseline_kw)
        .where(
            table.c.device_id == device_id,
            table.c.ts >= to_utc(start),
            table.c.ts < to_utc(end),
        )
        .order_by(table.c.ts)
    )
    rows = conn.execute(stmt).all()
    return pd.DataFrame(
        {
            "ts": pd.Series(
                pd.to_datetime([r.ts for r in rows], utc=True), dtype="datetime64[us, UTC]"
            ),
            "p_kw": np.array([r.p_kw for r in rows], dtype=np.float64),
            "soc": np.array([r.soc for r in rows], dtype=np.float64),
            "p_baseline_kw": np.array([r.p_baseline_kw for r in rows], dtype=np.float64),
        }
    )
