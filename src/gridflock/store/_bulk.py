"""Fast bulk inserts of plain column values: COPY on PostgreSQL, executemany on SQLite.

These bypass SQLAlchemy's per-value type processing, so callers pass values already in
the database's own form (str, float, int, bool, None; JSON as text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import Table
from sqlalchemy.engine import Connection

__all__ = ["CHUNK", "bulk_insert", "nullable"]

#: Rows per executemany on SQLite (bounded memory per statement).
CHUNK = 20_000


def bulk_insert(conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> int:
    """Insert the rows formed by ``columns`` (equal-length lists) into ``table``.

    Runs in the caller's transaction; returns the number of rows inserted.
    """
    names = list(columns)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of {table.name} differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    if n == 0:
        return 0
    quote = conn.dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(c) for c in names)})"
    rows = zip(*columns.values(), strict=True)
    raw = conn.connection.dbapi_connection
    if isinstance(raw, psycopg.Connection):
        with raw.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return n
    sql = f"INSERT INTO {target} VALUES ({', '.join('?' for _ in names)})"
    all_rows = list(rows)
    for i in range(0, n, CHUNK):
        conn.exec_driver_sql(sql, all_rows[i : i + CHUNK])
    return n


def nullable(values: npt.ArrayLike) -> list[float | None]:
    """Floats as a list, NaN as ``None`` (SQL NULL)."""
    arr = np.asarray(values, dtype=np.float64)
    out: list[float | None] = arr.tolist()
    for i in np.flatnonzero(np.isnan(arr)):
        out[i] = None
    return out
