"""Leader election in PostgreSQL: a session advisory lock, an epoch, and write fencing.

The leader holds a session-level advisory lock on a connection of its own: PostgreSQL
releases it when that session ends (the process died, or its connection was cut), so a
standby polling ``pg_try_advisory_lock`` wins it then. On winning, the standby raises the
``leadership`` row's epoch by one (the fencing token); every command carries it and every
write the control role makes checks it (:func:`install_fence`). The lock key is derived
from the schema, so several plants in one database elect apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from gridflock.store.errors import FencedError

__all__ = [
    "LOCK_KEY_SQL",
    "acquire",
    "holds_lock",
    "install_fence",
    "read_leadership",
    "release",
    "sessions",
]

#: The advisory lock key: one per schema (``current_schema()``), one plant per schema.
LOCK_KEY_SQL = "hashtext(current_schema() || '/gridflock-control-leader')"

_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")
#: Tables any process may write, leading or not: API keys' bookkeeping (``last_used_at``
#: when a key authenticates a read on a standby) is not control of the plant.
UNFENCED_TABLES = frozenset({"api_keys"})
_TARGET = re.compile(
    r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO)\s+(?:"?\w+"?\.)?"?(\w+)"?', re.I
)
_CHECKED = "gridflock_fence_checked"


def try_lock(conn: Connection) -> bool:
    """Take the leader's advisory lock on ``conn``'s session if free (never waits)."""
    got = conn.execute(text(f"SELECT pg_try_advisory_lock({LOCK_KEY_SQL})")).scalar_one()
    conn.commit()
    return bool(got)


def acquire(conn: Connection, holder: str, now: float) -> int:
    """Raise the epoch by one for ``holder`` (the caller holds the lock); the new epoch."""
    since = datetime.fromtimestamp(now, UTC)
    row = conn.execute(
        text(
            "UPDATE leadership SET epoch = epoch + 1, holder = :h, since = :t "
            "WHERE id = 1 RETURNING epoch"
        ),
        {"h": holder, "t": since},
    ).first()
    if row is None:  # the first leader of this plant
        conn.execute(
            text("INSERT INTO leadership (id, epoch, holder, since) VALUES (1, 1, :h, :t)"),
            {"h": holder, "t": since},
        )
        epoch = 1
    else:
        epoch = int(row[0])
    conn.commit()
    return epoch


def holds_lock(conn: Connection) -> bool:
    """Whether ``conn``'s session still holds the leader's lock (raises if the session is gone)."""
    held = conn.execute(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() "
            f"AND objsubid = 1 AND objid::bigint = (({LOCK_KEY_SQL})::bigint & 4294967295)"
        )
    ).scalar_one()
    conn.commit()
    return bool(held)


def release(conn: Connection) -> None:
    """Give the lock up (a graceful stop: the standby takes over at its next poll)."""
    conn.execute(text(f"SELECT pg_advisory_unlock({LOCK_KEY_SQL})"))
    conn.commit()


def read_leadership(conn: Connection) -> dict[str, Any] | None:
    """The current epoch, holder and since (UTC epoch s), or ``None`` before any leader."""
    row = conn.execute(text("SELECT epoch, holder, since FROM leadership WHERE id = 1")).first()
    if row is None:
        return None
    since = row[2]
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return {"epoch": int(row[0]), "holder": str(row[1]), "since": since.timestamp()}


def sessions(conn: Connection) -> list[dict[str, Any]]:
    """The control processes' election sessions in this database; ``leader`` marks the holder."""
    rows = conn.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start, "
            "EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' "
            "AND l.granted AND l.objsubid = 1 "
            f"AND l.objid::bigint = (({LOCK_KEY_SQL})::bigint & 4294967295)) AS leader "
            "FROM pg_stat_activity a WHERE a.datname = current_database() "
            "AND a.application_name LIKE 'gridflock-leader %' ORDER BY a.backend_start"
        )
    ).all()
    return [
        {
            "process": str(r[1]).removeprefix("gridflock-leader "),
            "client": None if r[2] is None else str(r[2]),
            "connected": r[3].timestamp(),
            "leader": bool(r[4]),
        }
        for r in rows
    ]


def install_fence(engine: Engine, epoch: Callable[[], int | None]) -> None:
    """Refuse every write transaction on ``engine`` unless ``epoch()`` is the current one.

    The first write statement of each transaction first reads the epoch ``FOR SHARE``:
    a takeover's ``UPDATE`` of the epoch waits for that transaction to end, and a write
    that starts after a takeover sees the new epoch and raises :class:`FencedError`.
    While ``epoch()`` is ``None`` (not leading) every write is refused, but to
    ``UNFENCED_TABLES``.
    """

    def before(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if conn.info.get(_CHECKED) or not statement.lstrip()[:6].upper().startswith(_WRITES):
            return
        target = _TARGET.match(statement)
        if target is not None and target.group(1).lower() in UNFENCED_TABLES:
            return
        mine = epoch()
        cur = cursor.connection.cursor()
        try:
            cur.execute("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE")
            row = cur.fetchone()
        finally:
            cur.close()
        current = None if row is None else int(row[0])
        if mine is None or current != mine:
            raise FencedError(-1 if mine is None else mine, current)
        conn.info[_CHECKED] = True

    def reset(conn: Connection) -> None:
        conn.info.pop(_CHECKED, None)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", reset)
    event.listen(engine, "rollback", reset)
