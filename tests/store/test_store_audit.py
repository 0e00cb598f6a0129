"""The audit log: append, filter, page, newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridflock.store import AuditRecord, Store

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def fill(store: Store) -> None:
    store.audit("apikey:ops-1", "event.create", "ev-1", {"target_kw": 250.0}, ts=T0)
    store.audit("openadr", "event.create", "ev-2", ts=T0 + timedelta(minutes=1))
    store.audit("apikey:ops-1", "event.cancel", "ev-1", ts=T0 + timedelta(minutes=2))
    store.audit("system", "command.batch", "ev-1", {"n": 5000}, ts=T0 + timedelta(minutes=3))
    store.audit("apikey:root", "apikey.create", "k1", ts=T0 + timedelta(minutes=4))


def test_audit_round_trip_newest_first(store: Store) -> None:
    fill(store)
    log = store.audit_log()
    assert all(isinstance(r, AuditRecord) for r in log)
    assert [r.action for r in log] == [
        "apikey.create",
        "command.batch",
        "event.cancel",
        "event.create",
        "event.create",
    ]
    assert log[-1].detail == {"target_kw": 250.0}
    assert log[-1].ts == T0
    assert log[-2].detail is None
    assert len({r.id for r in log}) == 5


def test_audit_filters(store: Store) -> None:
    fill(store)
    assert [r.subject for r in store.audit_log(actor="apikey:ops-1")] == ["ev-1", "ev-1"]
    assert [r.actor for r in store.audit_log(action="event.create")] == [
        "openadr",
        "apikey:ops-1",
    ]
    assert len(store.audit_log(action="event.*")) == 3
    assert len(store.audit_log(subject="ev-1")) == 3
    assert len(store.audit_log(subject="ev-1", action="event.cancel")) == 1
    window = store.audit_log(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [r.action for r in window] == ["event.cancel", "event.create"]  # [since, until)
    assert len(store.audit_log(since=(T0 + timedelta(minutes=4)).timestamp())) == 1


def test_audit_paging(store: Store) -> None:
    for i in range(25):
        store.audit("system", "tick", f"s{i:02d}", ts=T0 + timedelta(seconds=i))
    page1 = store.audit_log(limit=10)
    page3 = store.audit_log(limit=10, offset=20)
    assert [r.subject for r in page1] == [f"s{i:02d}" for i in range(24, 14, -1)]
    assert [r.subject for r in page3] == [f"s{i:02d}" for i in range(4, -1, -1)]
    with pytest.raises(ValueError, match="negative"):
        store.audit_log(limit=-1)


def test_same_time_is_ordered_by_insertion(store: Store) -> None:
    for i in range(3):
        store.audit("system", "tick", f"s{i}", ts=T0)
    assert [r.subject for r in store.audit_log()] == ["s2", "s1", "s0"]


def test_audit_defaults_to_now_and_cleans_detail(store: Store) -> None:
    before = datetime.now(UTC)
    rid = store.audit("system", "fleet.import", "fleet", {"bad": float("nan"), "l": [1, None]})
    (rec,) = store.audit_log()
    assert rec.id == rid
    assert before - timedelta(seconds=1) <= rec.ts <= datetime.now(UTC) + timedelta(seconds=1)
    assert rec.detail == {"bad": None, "l": [1, None]}
