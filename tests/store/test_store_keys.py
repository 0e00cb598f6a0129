"""API keys: shown once, stored hashed, authenticated by an indexed lookup, revocable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gridflock.domain.auth import Principal, Role
from gridflock.store import ApiKey, Store
from gridflock.store._keys import parse_key
from gridflock.store.models import ApiKeyRow, table_of


def test_create_returns_the_key_once_and_stores_only_a_hash(store: Store) -> None:
    key, record = store.create_api_key(Role.OPERATOR, "ops-1")
    assert isinstance(record, ApiKey)
    assert key.startswith(f"gf_{record.id}_")
    secret = key[len(f"gf_{record.id}_") :]
    assert len(secret) >= 43  # token_urlsafe(32): 256 bits
    assert record.role is Role.OPERATOR
    assert record.name == "ops-1"
    assert record.active
    assert record.created_at.tzinfo is not None
    table = table_of(ApiKeyRow)
    with store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == record.id)).one()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in tuple(str(v) for v in row)


def test_authenticate(store: Store) -> None:
    key, record = store.create_api_key(Role.ADMIN, "root")
    principal = store.authenticate(key)
    assert principal == Principal(key_id=record.id, name="root", role=Role.ADMIN)
    assert principal.label == "apikey:root"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: "",
        lambda k: "nonsense",
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
        lambda k: "gf_000000000000_" + k.split("_", 2)[2],  # unknown id
        lambda k: k.replace("gf_", "xx_", 1),
        lambda k: k + "\n",
        lambda k: k[:20],
    ],
)
def test_bad_keys_are_refused(store: Store, mangle: object) -> None:
    key, _ = store.create_api_key(Role.VIEWER, "v")
    assert callable(mangle)
    assert store.authenticate(mangle(key)) is None
    assert store.authenticate(key) is not None


def test_secret_may_contain_underscores() -> None:
    assert parse_key("gf_0123456789ab_abc_def-ghi_jkl_mnopqrstu") == (
        "0123456789ab",
        "abc_def-ghi_jkl_mnopqrstu",
    )
    assert parse_key("gf_0123456789AB_abcdefghijklmnopqrstuvwxyz") is None


def test_revoked_key_is_refused(store: Store) -> None:
    key, record = store.create_api_key(Role.OPERATOR, "ops")
    other, _ = store.create_api_key(Role.OPERATOR, "ops-2")
    assert store.revoke_api_key(record.id) is True
    assert store.revoke_api_key(record.id) is False  # already revoked
    assert store.revoke_api_key("unknown") is False
    assert store.authenticate(key) is None
    assert store.authenticate(other) is not None
    keys = {k.id: k for k in store.list_api_keys()}
    assert keys[record.id].revoked_at is not None
    assert not keys[record.id].active
    assert [k.name for k in store.list_api_keys(include_revoked=False)] == ["ops-2"]


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    key, record = store.create_api_key(Role.VIEWER, "dash")
    t0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def last_used() -> datetime | None:
        (k,) = [k for k in store.list_api_keys() if k.id == record.id]
        return k.last_used_at

    assert last_used() is None
    assert store.authenticate(key, now=t0) is not None
    assert last_used() == t0
    store.authenticate(key, now=t0 + timedelta(seconds=59))
    assert last_used() == t0
    store.authenticate(key, now=(t0 + timedelta(seconds=61)).timestamp())
    assert last_used() == t0 + timedelta(seconds=61)


def test_list_keys_oldest_first_and_no_secrets(store: Store) -> None:
    for i in range(3):
        store.create_api_key(Role.VIEWER, f"k{i}")
    keys = store.list_api_keys()
    assert [k.name for k in keys] == ["k0", "k1", "k2"]
    assert len({k.id for k in keys}) == 3
    assert all(not hasattr(k, "key_hash") for k in keys)


def test_key_needs_a_name_and_a_role(store: Store) -> None:
    with pytest.raises(ValueError, match="name"):
        store.create_api_key(Role.VIEWER, "  ")
    with pytest.raises(ValueError, match="superuser"):
        store.create_api_key("superuser", "x")  # type: ignore[arg-type]
    _, rec = store.create_api_key("operator", "from-text")  # type: ignore[arg-type]
    assert rec.role is Role.OPERATOR
