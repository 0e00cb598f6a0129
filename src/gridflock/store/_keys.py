"""API keys: creation (the key shown once), authentication, listing and revocation.

A key reads ``gf_<id>_<secret>``. The id (12 hex digits) is stored in the clear for an
indexed lookup; of the secret (``secrets.token_urlsafe(32)``, 256 bits) only its SHA-256
is kept. With that much entropy a fast hash is the right one: there is nothing to
brute-force, and checking a key costs microseconds rather than a slow KDF per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, select, update
from sqlalchemy.engine import Connection

from gridflock.domain.auth import Principal, Role
from gridflock.store.models import ApiKeyRow, table_of
from gridflock.store.records import ApiKey

__all__ = [
    "LAST_USED_RESOLUTION",
    "authenticate",
    "create_api_key",
    "list_api_keys",
    "parse_key",
    "revoke_api_key",
]

PREFIX = "gf_"
#: ``last_used_at`` is written at most this often per key (not one write per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
_KEY_RE = re.compile(r"gf_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")


def _keys() -> Table:
    return table_of(ApiKeyRow)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, ``None`` otherwise."""
    m = _KEY_RE.fullmatch(key)
    return None if m is None else (m.group(1), m.group(2))


def _record(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def create_api_key(conn: Connection, role: Role, name: str, now: datetime) -> tuple[str, ApiKey]:
    """Store a new key for ``role``; returns the plaintext key (shown once) and its record."""
    name = name.strip()
    if not name:
        raise ValueError("an API key needs a non-empty name")
    record = ApiKey(id=secrets.token_hex(6), name=name, role=Role(role), created_at=now)
    secret = secrets.token_urlsafe(32)
    conn.execute(
        _keys().insert(),
        [
            {
                "id": record.id,
                "name": record.name,
                "role": record.role.value,
                "key_hash": _hash(secret),
                "created_at": now,
            }
        ],
    )
    return f"{PREFIX}{record.id}_{secret}", record


def authenticate(conn: Connection, key: str, now: datetime) -> Principal | None:
    """The principal behind ``key``; ``None`` if malformed, unknown, revoked or wrong."""
    parsed = parse_key(key)
    if parsed is None:
        return None
    key_id, secret = parsed
    table = _keys()
    row = conn.execute(select(table).where(table.c.id == key_id)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(_hash(secret), row.key_hash):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        conn.execute(update(table).where(table.c.id == key_id).values(last_used_at=now))
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))


def list_api_keys(conn: Connection, include_revoked: bool = True) -> list[ApiKey]:
    """Every stored key (never a secret), oldest first."""
    table = _keys()
    stmt = select(table).order_by(table.c.created_at, table.c.id)
    if not include_revoked:
        stmt = stmt.where(table.c.revoked_at.is_(None))
    return [_record(r) for r in conn.execute(stmt).all()]


def revoke_api_key(conn: Connection, key_id: str, now: datetime) -> bool:
    """Revoke a key; ``False`` if no active key has this id."""
    table = _keys()
    result = conn.execute(
        update(table)
        .where(table.c.id == key_id, table.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0
