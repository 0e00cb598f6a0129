"""Telemetry in bulk: batched writes (COPY on PostgreSQL), range and resampled queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    cast,
    delete,
    extract,
    func,
    select,
)
from sqlalchemy.engine import Connection

from gridflock.domain import TelemetryBatch
from gridflock.store._bulk import nullable
from gridflock.store._dialect import insert_ignore
from gridflock.store._time import datetimes, to_utc
from gridflock.store.models import TelemetryRow, table_of

__all__ = [
    "latest_telemetry",
    "query_telemetry",
    "query_telemetry_resampled",
    "write_telemetry",
]

CHUNK = 20_000
#: Device ids per ``IN (...)`` list in queries.
ID_CHUNK = 5_000
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


def delete_telemetry_before(conn: Connection, before: datetime) -> int:
    """Delete the readings stamped before ``before``; returns how many."""
    table = table_of(TelemetryRow)
    result = conn.execute(delete(table).where(table.c.ts < to_utc(before)))
    return max(int(result.rowcount or 0), 0)


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


def _ts_series(values: Sequence[Any]) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True), dtype="datetime64[us, UTC]")


def _epoch_s(conn: Connection, col: ColumnElement[Any]) -> ColumnElement[int]:
    """Whole epoch seconds of a timestamp column (floored), in the backend's own SQL."""
    if conn.dialect.name == "postgresql":
        return cast(func.floor(extract("epoch", col)), BigInteger)
    # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime('%s') would round the
    # fraction (59.9999996 s -> next second), so it is cut off first: an exact floor
    return cast(func.strftime("%s", func.substr(col, 1, 19)), Integer)


def _id_chunks(device_ids: Sequence[str]) -> list[list[str]]:
    ids = list(dict.fromkeys(str(d) for d in device_ids))
    return [ids[i : i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]


_RESAMPLED_COLS = ("device_id", "ts", "p_kw", "soc", "soc_mean", "n")


def query_telemetry_resampled(
    conn: Connection, device_ids: Sequence[str], start: datetime, end: datetime, every_s: int
) -> pd.DataFrame:
    """Readings of ``device_ids`` in ``[start, end)`` in buckets of ``every_s`` seconds.

    A bucket starts at ``floor(epoch / every_s) * every_s`` (aligned to the epoch, not to
    ``start``); only buckets holding readings appear. Columns, by device then bucket:
    ``device_id``, ``ts`` (bucket start, UTC), ``p_kw`` (mean), ``soc`` (last reported in the
    bucket), ``soc_mean`` (mean of reported), ``n`` (readings). Aggregated in SQL.
    """
    every = int(every_s)
    if every <= 0 or every != every_s:
        raise ValueError(f"every_s must be a positive whole number of seconds, got {every_s!r}")
    table = table_of(TelemetryRow)
    bucket = (_epoch_s(conn, table.c.ts) // every * every).label("bucket")
    frames: list[pd.DataFrame] = []
    for ids in _id_chunks(device_ids):
        base = (
            select(table.c.device_id, table.c.ts, table.c.p_kw, table.c.soc, bucket)
            .where(
                table.c.device_id.in_(ids),
                table.c.ts >= to_utc(start),
                table.c.ts < to_utc(end),
            )
            .cte("b")
        )
        agg = (
            select(
                base.c.device_id,
                base.c.bucket,
                func.avg(base.c.p_kw).label("p_kw"),
                func.avg(base.c.soc).label("soc_mean"),
                func.count().label("n"),
            )
            .group_by(base.c.device_id, base.c.bucket)
            .subquery("agg")
        )
        ranked = (
            select(
                base.c.device_id,
                base.c.bucket,
                base.c.soc,
                func.row_number()
                .over(partition_by=[base.c.device_id, base.c.bucket], order_by=base.c.ts.desc())
                .label("rn"),
            )
            .where(base.c.soc.is_not(None))
            .subquery("ranked")
        )
        stmt = (
            select(
                agg.c.device_id,
                agg.c.bucket,
                agg.c.p_kw,
                ranked.c.soc,
                agg.c.soc_mean,
                agg.c.n,
            )
            .select_from(
                agg.outerjoin(
                    ranked,
                    and_(
                        ranked.c.device_id == agg.c.device_id,
                        ranked.c.bucket == agg.c.bucket,
                        ranked.c.rn == 1,
                    ),
                )
            )
            .order_by(agg.c.device_id, agg.c.bucket)
        )
        rows = conn.execute(stmt).all()
        frames.append(
            pd.DataFrame(
                {
                    "device_id": pd.Series([r.device_id for r in rows], dtype=object),
                    "ts": pd.Series(
                        pd.to_datetime(
                            np.array([r.bucket for r in rows], dtype=np.int64), unit="s", utc=True
                        ),
                        dtype="datetime64[us, UTC]",
                    ),
                    "p_kw": np.array([r.p_kw for r in rows], dtype=np.float64),
                    "soc": np.array([r.soc for r in rows], dtype=np.float64),
                    "soc_mean": np.array([r.soc_mean for r in rows], dtype=np.float64),
                    "n": np.array([r.n for r in rows], dtype=np.int64),
                },
                columns=list(_RESAMPLED_COLS),
            )
        )
    if not frames:
        return _empty_resampled()
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["device_id", "ts"], kind="stable", ignore_index=True)


def _empty_resampled() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device_id": pd.Series([], dtype=object),
            "ts": _ts_series([]),
            "p_kw": np.array([], dtype=np.float64),
            "soc": np.array([], dtype=np.float64),
            "soc_mean": np.array([], dtype=np.float64),
            "n": np.array([], dtype=np.int64),
        }
    )


_LATEST_COLS = ("device_id", "ts", "p_kw", "soc", "p_baseline_kw")


def latest_telemetry(conn: Connection, device_ids: Sequence[str] | None) -> pd.DataFrame:
    """The newest stored reading of each device (``None``: every device), by device id.

    Columns: ``device_id``, ``ts`` (UTC), ``p_kw``, ``soc``, ``p_baseline_kw``; devices with
    no reading are absent.
    """
    table = table_of(TelemetryRow)
    chunks: list[list[str] | None] = [None] if device_ids is None else [*_id_chunks(device_ids)]
    rows: list[Any] = []
    for ids in chunks:
        newest = select(table.c.device_id, func.max(table.c.ts).label("ts")).group_by(
            table.c.device_id
        )
        if ids is not None:
            newest = newest.where(table.c.device_id.in_(ids))
        last = newest.subquery("last")
        stmt = (
            select(*(table.c[c] for c in _LATEST_COLS))
            .join(last, and_(table.c.device_id == last.c.device_id, table.c.ts == last.c.ts))
            .order_by(table.c.device_id)
        )
        rows.extend(conn.execute(stmt).all())
    if device_ids is not None and len(chunks) > 1:
        rows.sort(key=lambda r: r.device_id)
    return pd.DataFrame(
        {
            "device_id": pd.Series([r.device_id for r in rows], dtype=object),
            "ts": _ts_series([r.ts for r in rows]),
            "p_kw": np.array([r.p_kw for r in rows], dtype=np.float64),
            "soc": np.array([r.soc for r in rows], dtype=np.float64),
            "p_baseline_kw": np.array([r.p_baseline_kw for r in rows], dtype=np.float64),
        }
    )
