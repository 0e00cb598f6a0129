"""Issued settlement statements: kept as made, read back by event and method."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from gridflock.store._dialect import insert_ignore
from gridflock.store.models import SettlementRow, table_of

__all__ = ["load_statement", "load_statements", "save_statement"]


def _table() -> Table:
    return table_of(SettlementRow)


def save_statement(
    conn: Connection, event_id: str, method: str, issued_at: datetime, statement: dict[str, Any]
) -> bool:
    """Keep a statement unless one is already kept for (event, method); whether it was new."""
    stmt = insert_ignore(conn, _table())
    row = {"event_id": event_id, "method": method, "issued_at": issued_at, "statement": statement}
    return bool(conn.execute(stmt, [row]).rowcount)


def load_statement(conn: Connection, event_id: str, method: str) -> dict[str, Any] | None:
    """The statement kept for (event, method), or None."""
    t = _table()
    row = conn.execute(
        select(t.c.statement).where(t.c.event_id == event_id, t.c.method == method)
    ).first()
    return None if row is None else dict(row.statement)


def load_statements(
    conn: Connection, event_ids: Sequence[str], method: str
) -> dict[str, dict[str, Any]]:
    """The statements kept for ``event_ids`` by ``method``, by event id (absent: none kept)."""
    t = _table()
    out: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(event_ids))
    for i in range(0, len(ids), 1000):
        rows = conn.execute(
            select(t.c.event_id, t.c.statement).where(
                t.c.method == method, t.c.event_id.in_(ids[i : i + 1000])
            )
        )
        out.update({r.event_id: dict(r.statement) for r in rows})
    return out
