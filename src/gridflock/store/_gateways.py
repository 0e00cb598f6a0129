"""Gateways allowed on the broker: their kind, site, groups and password hash."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.engine import Connection

from gridflock.store._dialect import insert_ignore
from gridflock.store.errors import AlreadyExistsError
from gridflock.store.models import GatewayRow, table_of
from gridflock.store.records import GatewayRecord

__all__ = [
    "create_gateway",
    "delete_gateway",
    "get_gateway",
    "list_gateways",
    "set_gateway_seen",
]

#: Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement).
CHUNK = 10_000


def _gateways() -> Table:
    return table_of(GatewayRow)


def _record(row: Row[Any]) -> GatewayRecord:
    return GatewayRecord(
        id=row.id,
        kind=row.kind,
        site_id=row.site_id,
        groups=tuple(row.groups),
        password_hash=row.password_hash,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


def create_gateway(
    conn: Connection,
    gateway_id: str,
    *,
    kind: str,
    site_id: str | None,
    groups: Sequence[str],
    password_hash: str,
    now: datetime,
) -> None:
    """Store a new gateway; :class:`AlreadyExistsError` if the id is taken."""
    if not gateway_id:
        raise ValueError("a gateway needs a non-empty id")
    if isinstance(groups, str):
        raise TypeError("groups must be a sequence of group names, not one string")
    row = {
        "id": gateway_id,
        "kind": kind,
        "site_id": site_id,
        "groups": [str(g) for g in groups],
        "password_hash": password_hash,
        "created_at": now,
    }
    table = _gateways()
    # RETURNING, not rowcount: psycopg reports -1 for a single INSERT ... ON CONFLICT
    stmt = insert_ignore(conn, table).values(row).returning(table.c.id)
    if conn.execute(stmt).first() is None:
        raise AlreadyExistsError("gateway", gateway_id)


def list_gateways(conn: Connection) -> list[GatewayRecord]:
    """Every stored gateway, by id."""
    table = _gateways()
    return [_record(r) for r in conn.execute(select(table).order_by(table.c.id)).all()]


def get_gateway(conn: Connection, gateway_id: str) -> GatewayRecord | None:
    """The gateway ``gateway_id``, ``None`` if there is none."""
    table = _gateways()
    row = conn.execute(select(table).where(table.c.id == gateway_id)).first()
    return None if row is None else _record(row)


def delete_gateway(conn: Connection, gateway_id: str) -> bool:
    """Delete a gateway; ``False`` if there was none with this id."""
    table = _gateways()
    return conn.execute(delete(table).where(table.c.id == gateway_id)).rowcount > 0


def set_gateway_seen(conn: Connection, gateway_ids: Sequence[str], ts: datetime) -> int:
    """Set ``last_seen_at`` of many gateways at once; returns how many were stored."""
    table = _gateways()
    ids = list(dict.fromkeys(str(g) for g in gateway_ids))
    n = 0
    for i in range(0, len(ids), CHUNK):
        stmt = update(table).where(table.c.id.in_(ids[i : i + CHUNK])).values(last_seen_at=ts)
        n += conn.execute(stmt).rowcount
    return n
