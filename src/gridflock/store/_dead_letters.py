"""Dead letters: writes the database refused for their content, kept apart with the reason."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection

from gridflock.store.models import DeadLetterRow, table_of
from gridflock.store.records import DeadLetter

__all__ = ["MAX_PAYLOAD_CHARS", "MAX_REASON_CHARS", "dead_letters", "quarantine"]

#: A dead letter keeps at most this much of the refused records (JSON text).
MAX_PAYLOAD_CHARS = 64_000
MAX_REASON_CHARS = 2_000


def _table() -> Table:
    return table_of(DeadLetterRow)


def _printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with NUL (refused by PostgreSQL) spelled out."""
    text = text.replace("\x00", "\\u0000")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quarantine(
    conn: Connection, what: str, reason: str, rows: int, payload: str, ts: datetime
) -> int:
    """Keep one dead letter; returns its id."""
    result = conn.execute(
        insert(_table())
        .values(
            ts=ts,
            what=_printable(what, 64),
            reason=_printable(reason, MAX_REASON_CHARS),
            rows=rows,
            payload=_printable(payload, MAX_PAYLOAD_CHARS),
        )
        .returning(_table().c.id)
    )
    return int(result.scalar_one())


def dead_letters(conn: Connection, limit: int) -> list[DeadLetter]:
    """The newest ``limit`` dead letters, newest first."""
    t = _table()
    rows = conn.execute(select(t).order_by(t.c.id.desc()).limit(limit))
    return [
        DeadLetter(id=r.id, ts=r.ts, what=r.what, reason=r.reason, rows=r.rows, payload=r.payload)
        for r in rows
    ]
