"""Gateways: created once, listed, looked up, deleted, seen in bulk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridflock.store import AlreadyExistsError, GatewayRecord, Store

HASH = "$7$101$c2FsdHNhbHQ=$aGFzaGhhc2g="  # shape of a Mosquitto PBKDF2-SHA512 hash


def test_create_get_list_delete(store: Store) -> None:
    store.create_gateway("gw-2", kind="home", site_id="home-2", groups=["g1"], password_hash=HASH)
    store.create_gateway("gw-1", kind="cloud", site_id=None, groups=[], password_hash=HASH)
    gw = store.get_gateway("gw-2")
    assert isinstance(gw, GatewayRecord)
    assert gw.kind == "home"
    assert gw.site_id == "home-2"
    assert gw.groups == ("g1",)
    assert gw.password_hash == HASH
    assert gw.created_at.tzinfo is not None
    assert gw.last_seen_at is None
    assert [g.id for g in store.list_gateways()] == ["gw-1", "gw-2"]
    assert store.get_gateway("gw-1").site_id is None  # type: ignore[union-attr]
    assert store.get_gateway("nope") is None
    assert store.delete_gateway("gw-2") is True
    assert store.delete_gateway("gw-2") is False
    assert [g.id for g in store.list_gateways()] == ["gw-1"]


def test_create_existing_gateway_fails(store: Store) -> None:
    store.create_gateway("gw", kind="home", site_id=None, groups=["a"], password_hash=HASH)
    with pytest.raises(AlreadyExistsError, match="gw") as info:
        store.create_gateway("gw", kind="charger", site_id=None, groups=[], password_hash="x")
    assert isinstance(info.value, ValueError)
    assert store.get_gateway("gw").kind == "home"  # type: ignore[union-attr]
    # the store is still usable after the refused insert (no aborted transaction left)
    store.create_gateway("gw-b", kind="home", site_id=None, groups=[], password_hash=HASH)


def test_groups_must_be_a_list(store: Store) -> None:
    with pytest.raises(TypeError):
        store.create_gateway("gw", kind="home", site_id=None, groups="g1", password_hash=HASH)


def test_set_seen_in_bulk(store: Store) -> None:
    n = 12_000  # more than one IN (...) chunk
    for i in range(3):
        store.create_gateway(f"gw-{i}", kind="home", site_id=None, groups=[], password_hash=HASH)
    ts = datetime(2030, 5, 1, 8, 30, 15, 250_000, tzinfo=UTC)
    ids = [f"gw-{i}" for i in range(n)]
    assert store.set_gateway_seen(ids, ts) == 3
    assert {g.last_seen_at for g in store.list_gateways()} == {ts}
    assert store.set_gateway_seen(["gw-1"], ts.timestamp() + 60) == 1
    assert store.get_gateway("gw-1").last_seen_at.timestamp() == ts.timestamp() + 60  # type: ignore[union-attr]
    assert store.set_gateway_seen([], ts) == 0
