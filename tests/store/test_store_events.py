"""Events, their samples and performance, and the commands sent for them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import CommandBatch, Event, EventSource, EventStatus, GridflockError, Scope
from gridflock.store import Store, UnknownEventError

T0 = datetime(2025, 7, 1, 14, 0, tzinfo=UTC).timestamp()


def make_event(event_id: str = "ev-1", start: float = T0, **kw: object) -> Event:
    return Event(id=event_id, target_kw=250.0, start=start, end=start + 3600, **kw)  # type: ignore[arg-type]


def test_event_round_trip(store: Store) -> None:
    event = make_event(
        scope=Scope("grid_node", "F1"), source=EventSource.OPENADR, created_by="alice"
    )
    store.save_event(event)
    assert store.get_event("ev-1") == event


def test_event_upsert_and_status(store: Store) -> None:
    store.save_event(make_event())
    store.set_event_status("ev-1", EventStatus.ACTIVE)
    assert store.get_event("ev-1").status is EventStatus.ACTIVE
    changed = make_event(scope=Scope.parse("program:summer"))
    changed.target_kw = -80.5
    store.save_event(changed)
    got = store.get_event("ev-1")
    assert got.target_kw == -80.5
    assert str(got.scope) == "program:summer"
    assert got.status is EventStatus.SCHEDULED
    assert len(store.list_events()) == 1


def test_list_events_by_start(store: Store) -> None:
    store.save_event(make_event("late", start=T0 + 7200))
    store.save_event(make_event("early", start=T0 - 7200))
    store.save_event(make_event("mid", start=T0))
    assert [e.id for e in store.list_events()] == ["early", "mid", "late"]


def test_unknown_event_raises_typed_error(store: Store) -> None:
    with pytest.raises(UnknownEventError, match="nope") as info:
        store.get_event("nope")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, GridflockError)
    with pytest.raises(UnknownEventError):
        store.set_event_status("nope", EventStatus.ACTIVE)
    with pytest.raises(UnknownEventError):
        store.save_event_performance("nope", {"delivered_kwh": 1.0})
    with pytest.raises(UnknownEventError):
        store.save_event_samples("nope", np.array([T0]), np.array([1.0]), np.array([1.0]))


def test_event_performance(store: Store) -> None:
    store.save_event(make_event())
    assert store.event_performance("ev-1") is None
    metrics: dict[str, float | int | None] = {
        "delivered_kwh": 231.5,
        "accuracy": 0.93,
        "n_devices": 412,
        "baseline_error": None,
        "bad": float("nan"),
    }
    store.save_event_performance("ev-1", metrics)
    store.save_event(make_event())  # re-saving the event keeps its performance
    assert store.event_performance("ev-1") == {**metrics, "bad": None}


def test_event_samples_round_trip(store: Store) -> None:
    store.save_event(make_event())
    ts = T0 + np.arange(0.0, 600.0, 4.0)
    target = np.full(len(ts), 250.0)
    delivered = np.linspace(0.0, 260.0, len(ts))
    delivered[3] = np.nan
    store.save_event_samples("ev-1", ts[::-1], target[::-1], delivered[::-1])
    df = store.event_samples("ev-1")
    assert list(df.columns) == ["ts", "target_kw", "delivered_kw"]
    assert str(df["ts"].dt.tz) == "UTC"
    np.testing.assert_allclose(df["ts"].map(pd.Timestamp.timestamp).to_numpy(), ts)
    np.testing.assert_array_equal(df["target_kw"].to_numpy(), target)
    np.testing.assert_array_equal(df["delivered_kw"].to_numpy(), delivered)
    store.save_event_samples("ev-1", ts[:1], np.array([1.0]), np.array([2.0]))
    again = store.event_samples("ev-1")
    assert len(again) == len(ts)
    assert again["delivered_kw"].iloc[0] == 2.0


def test_commands_bulk_and_query(store: Store) -> None:
    n = 5_000
    batch = CommandBatch(
        command_ids=np.array([f"c{i}" for i in range(n)], dtype=object),
        device_ids=np.array([f"d{i:05d}" for i in range(n)], dtype=object),
        p_setpoint_kw=np.linspace(-5.0, 5.0, n),
        valid_until=np.full(n, T0 + 900.0),
        seq=np.arange(n, dtype=np.int64) + 7,
        issued_at=T0 + 0.25,
        event_id="ev-1",
    )
    store.save_commands(batch)
    store.save_commands(batch)  # same ids again: skipped, not duplicated
    other = CommandBatch(
        np.array(["x"], dtype=object),
        np.array(["d0"], dtype=object),
        np.array([1.0]),
        np.array([T0 + 60]),
        np.array([1]),
        T0,
        None,
    )
    store.save_commands(other)
    df = store.commands_for_event("ev-1")
    assert len(df) == n
    assert list(df.columns) == [
        "command_id",
        "device_id",
        "event_id",
        "seq",
        "p_setpoint_kw",
        "issued_at",
        "valid_until",
        "status",
        "reason",
        "acked_at",
    ]
    assert (df["status"] == "sent").all()
    assert df["reason"].isna().all()
    assert df["acked_at"].isna().all()
    assert str(df["acked_at"].dt.tz) == "UTC"
    assert (df["event_id"] == "ev-1").all()
    np.testing.assert_array_equal(df["p_setpoint_kw"].to_numpy(), batch.p_setpoint_kw)
    np.testing.assert_array_equal(df["seq"].to_numpy(), batch.seq)
    assert df["issued_at"].iloc[0] == pd.Timestamp(T0 + 0.25, unit="s", tz="UTC")
    assert df["valid_until"].iloc[-1] == pd.Timestamp(T0 + 900, unit="s", tz="UTC")
    assert store.commands_for_event("other").empty
