"""Engines for the store: URL normalisation, SQLite pragmas, PostgreSQL schemas."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from gridflock.store.errors import DatabaseUnavailableError, StoreError, is_outage

__all__ = ["SUPPORTED_DIALECTS", "make_engine", "normalise_url"]

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
#: Seconds to wait for a PostgreSQL connection (``?connect_timeout=`` in the URL overrides).
CONNECT_TIMEOUT_S = 10
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def normalise_url(url: str) -> str:
    """Rewrite ``postgresql://`` (and ``postgres://``) to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    """WAL journal (readers never block the writer), enforced foreign keys, busy wait."""
    if not isinstance(dbapi_conn, sqlite3.Connection):  # pragma: no cover - driver choice
        return
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable with WAL except on power loss
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _outage_error(ctx: ExceptionContext) -> DatabaseUnavailableError | None:
    """Put :class:`DatabaseUnavailableError` in place of a driver's connection error.

    The connection is still invalidated as SQLAlchemy decided (``ctx.is_disconnect``).
    """
    error = ctx.sqlalchemy_exception
    if error is None or not is_outage(error):
        return None
    cause = str(ctx.original_exception).strip().splitlines()
    return DatabaseUnavailableError(
        "the database is unavailable"
        + (f" ({cause[0][:300]})" if cause else "")
        + "; writes are buffered and retried, try reads again shortly",
        invalidated=ctx.is_disconnect,
    )


def make_engine(url: str, schema: str | None = None) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    ``schema`` (PostgreSQL only) puts every table in that schema through ``search_path``,
    creating it if missing; the tests use it to isolate runs.
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {url!r}: {exc}") from exc
    dialect = parsed.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise StoreError(f"unsupported database {dialect!r} in {url!r}: use sqlite or postgresql")
    connect_args: dict[str, Any] = {}
    if dialect == "postgresql" and "connect_timeout" not in parsed.query:
        # a health check must not hang on an unreachable server for the TCP timeout
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    if schema is not None:
        if dialect != "postgresql":
            raise StoreError("schema= is only supported on PostgreSQL")
        if not _SCHEMA_RE.match(schema):
            raise StoreError(f"invalid schema name {schema!r}: use letters, digits and _")
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(parsed, connect_args=connect_args)
    event.listen(engine, "handle_error", _outage_error)
    if dialect == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if schema is not None:
        try:
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except (OperationalError, DatabaseUnavailableError) as exc:
            engine.dispose()
            raise StoreError(f"cannot connect to {parsed.render_as_string()}: {exc}") from exc
    return engine
