"""The audit log: who did what to which subject, append-only, read newest first."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.engine import Connection

from gridflock.store.models import AuditRow, table_of
from gridflock.store.records import AuditRecord

__all__ = ["audit", "audit_log"]


def _audit() -> Table:
    return table_of(AuditRow)


def _clean(value: Any) -> Any:
    """Non-finite floats as ``None``, so the JSON stays standard on every backend."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        detail=row.detail,
    )


def audit(
    conn: Connection,
    actor: str,
    action: str,
    subject: str,
    detail: dict[str, Any] | None,
    ts: datetime,
) -> int:
    """Append one record; returns its id."""
    table = _audit()
    row = {
        "ts": ts,
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": None if detail is None else _clean(detail),
    }
    new_id: int = conn.execute(table.insert().values(**row).returning(table.c.id)).scalar_one()
    return new_id


def audit_log(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditRecord]:
    """Records matching every filter given, newest first; ``ts`` in ``[since, until)``.

    ``action`` ending in ``.*`` matches a family (``event.*`` for ``event.create``, ...).
    """
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    table = _audit()
    stmt = select(table)
    if actor is not None:
        stmt = stmt.where(table.c.actor == actor)
    if action is not None:
        if action.endswith(".*"):
            prefix = action[:-1]
            stmt = stmt.where(table.c.action.startswith(prefix, autoescape=True))
        else:
            stmt = stmt.where(table.c.action == action)
    if subject is not None:
        stmt = stmt.where(table.c.subject == subject)
    if since is not None:
        stmt = stmt.where(table.c.ts >= since)
    if until is not None:
        stmt = stmt.where(table.c.ts < until)
    stmt = stmt.order_by(table.c.ts.desc(), table.c.id.desc()).limit(limit).offset(offset)
    return [_record(r) for r in conn.execute(stmt).all()]
