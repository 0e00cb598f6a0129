"""Dialect-specific INSERT ... ON CONFLICT, the same for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

__all__ = ["insert_ignore", "upsert"]


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """``INSERT`` that skips rows whose primary key is already stored."""
    return _insert(conn, table).on_conflict_do_nothing()


def upsert(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str] | None = None,
) -> Insert:
    """``INSERT`` that overwrites rows whose ``keys`` already exist.

    Only ``columns`` are overwritten (default: every non-key column).
    """
    stmt = _insert(conn, table)
    names = [c.name for c in table.columns] if columns is None else list(columns)
    update = {n: stmt.excluded[n] for n in names if n not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=update)
