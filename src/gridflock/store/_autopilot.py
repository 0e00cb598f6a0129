"""The autopilot's tables: proposals (upserted as their fate changes) and the decision log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.engine import Connection

from gridflock.store._audit import _clean
from gridflock.store.models import AutopilotDecisionRow, AutopilotProposalRow, table_of
from gridflock.store.records import AutopilotDecision, AutopilotProposal

__all__ = [
    "count_decisions",
    "count_proposals",
    "decisions",
    "proposals",
    "record_decision",
    "save_proposals",
]

_COLUMNS = (
    "id",
    "created_at",
    "start",
    "end",
    "action",
    "target_kw",
    "energy_kwh",
    "scope",
    "policy",
    "reason",
    "status",
    "decided_by",
    "decided_at",
    "event_id",
)


def save_proposals(conn: Connection, items: list[AutopilotProposal]) -> None:
    """Insert or replace proposals by id (their status and decision change over time)."""
    if not items:
        return
    table = table_of(AutopilotProposalRow)
    ids = [p.id for p in items]
    conn.execute(delete(table).where(table.c.id.in_(ids)))
    conn.execute(insert(table), [{c: getattr(p, c) for c in _COLUMNS} for p in items])


def _proposal(row: Row[Any]) -> AutopilotProposal:
    return AutopilotProposal(**{c: getattr(row, c) for c in _COLUMNS})


def proposals(
    conn: Connection, status: str | None, since: datetime | None, limit: int, offset: int
) -> list[AutopilotProposal]:
    """Proposals by start (then id), optionally of one status and ending after ``since``."""
    table = table_of(AutopilotProposalRow)
    q = select(table)
    if status is not None:
        q = q.where(table.c.status == status)
    if since is not None:
        q = q.where(table.c.end > since)
    q = q.order_by(table.c.start, table.c.id).limit(limit).offset(offset)
    return [_proposal(r) for r in conn.execute(q)]


def count_proposals(conn: Connection, status: str | None, since: datetime | None) -> int:
    """How many proposals :func:`proposals` would page through."""
    table = table_of(AutopilotProposalRow)
    q = select(func.count()).select_from(table)
    if status is not None:
        q = q.where(table.c.status == status)
    if since is not None:
        q = q.where(table.c.end > since)
    return int(conn.execute(q).scalar_one())


def record_decision(
    conn: Connection,
    ts: datetime,
    kind: str,
    actor: str,
    proposal_id: str | None,
    reason: str,
    detail: dict[str, Any] | None,
) -> int:
    """Append one entry to the decision log; returns its id."""
    table = table_of(AutopilotDecisionRow)
    row = {
        "ts": ts,
        "kind": kind,
        "actor": actor,
        "proposal_id": proposal_id,
        "reason": reason,
        "detail": None if detail is None else _clean(detail),
    }
    new_id: int = conn.execute(table.insert().values(**row).returning(table.c.id)).scalar_one()
    return new_id


def decisions(
    conn: Connection, kind: str | None, limit: int, offset: int
) -> list[AutopilotDecision]:
    """Decision log entries, newest first, optionally of one kind."""
    table = table_of(AutopilotDecisionRow)
    q = select(table)
    if kind is not None:
        q = q.where(table.c.kind == kind)
    q = q.order_by(table.c.ts.desc(), table.c.id.desc()).limit(limit).offset(offset)
    return [
        AutopilotDecision(r.id, r.ts, r.kind, r.actor, r.proposal_id, r.reason, r.detail)
        for r in conn.execute(q)
    ]


def count_decisions(conn: Connection, kind: str | None) -> int:
    """How many entries :func:`decisions` would page through."""
    table = table_of(AutopilotDecisionRow)
    q = select(func.count()).select_from(table)
    if kind is not None:
        q = q.where(table.c.kind == kind)
    return int(conn.execute(q).scalar_one())
