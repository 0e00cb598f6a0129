"""Operating envelopes: saved by id (a new batch replaces envelopes of the same ids)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Connection

from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.store._time import epoch, utc
from gridflock.store.models import EnvelopeRow, table_of

__all__ = ["delete_envelopes", "envelope_stamp", "load_envelopes", "save_envelopes"]

_CHUNK = 1000


def _table() -> Table:
    return table_of(EnvelopeRow)


def save_envelopes(conn: Connection, envelopes: Sequence[Envelope], created_by: str) -> int:
    """Insert or replace ``envelopes`` by id (one transaction: the caller's); their number."""
    t = _table()
    rows = [
        {
            "id": e.id,
            "target_type": e.target_type.value,
            "target_id": e.target_id,
            "start": utc(e.start),
            "end": utc(e.end),
            "import_limit_kw": e.import_limit_kw,
            "export_limit_kw": e.export_limit_kw,
            "kind": e.kind.value,
            "source": e.source.value,
            "issued_at": utc(e.issued_at),
            "created_by": created_by,
        }
        for e in envelopes
    ]
    for i in range(0, len(rows), _CHUNK):
        part = rows[i : i + _CHUNK]
        conn.execute(delete(t).where(t.c.id.in_([r["id"] for r in part])))
        conn.execute(insert(t), part)
    return len(rows)


def load_envelopes(conn: Connection, ending_after: float | None = None) -> list[Envelope]:
    """Envelopes (those ending after ``ending_after``, if given), by start then id."""
    t = _table()
    q = select(t).order_by(t.c.start, t.c.id)
    if ending_after is not None:
        q = q.where(t.c.end > utc(ending_after))
    return [
        Envelope(
            r.id,
            TargetType(r.target_type),
            r.target_id,
            epoch(r.start),
            epoch(r.end),
            r.import_limit_kw,
            r.export_limit_kw,
            EnvelopeKind(r.kind),
            EnvelopeSource(r.source),
            epoch(r.issued_at),
        )
        for r in conn.execute(q)
    ]


def delete_envelopes(conn: Connection, ids: Sequence[str]) -> list[str]:
    """Delete the envelopes of ``ids``; the ids that existed."""
    t = _table()
    found: list[str] = []
    uniq = list(dict.fromkeys(ids))
    for i in range(0, len(uniq), _CHUNK):
        part = uniq[i : i + _CHUNK]
        found += [r.id for r in conn.execute(select(t.c.id).where(t.c.id.in_(part)))]
        conn.execute(delete(t).where(t.c.id.in_(part)))
    return found


def envelope_stamp(conn: Connection) -> tuple[int, float, float]:
    """What changes when envelopes are added, replaced or deleted: count, newest issue, end.

    One aggregate query, so a reader can skip reading every row when nothing changed.
    """
    t = _table()
    n, issued, end = conn.execute(
        select(func.count(), func.max(t.c.issued_at), func.max(t.c.end))
    ).one()
    return int(n), epoch(issued) if issued is not None else 0.0, epoch(end) if end else 0.0
