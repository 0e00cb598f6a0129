"""StoreWriter against a real SQLite store that goes away for a while and comes back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from gridflock.domain.messages import TelemetryBatch
from gridflock.fleet.generate import generate_fleet
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

T0 = 1_780_315_200.0  # 2026-06-01T12:00:00Z


class FlakyStore:
    """A real store whose every method raises while ``down`` (a database outage)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if self.down:
                raise ConnectionError(f"database unreachable ({name})")
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def real_store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'writer.db'}")
    store.upgrade()
    store.save_fleet(generate_fleet(5, 1))
    yield store
    store.close()


def _device_ids(store: Store) -> list[str]:
    return store.load_fleet().all_devices()["id"].astype(str).tolist()


def _batch(device: str, ts: np.ndarray, p: np.ndarray) -> TelemetryBatch:
    n = len(ts)
    return TelemetryBatch(
        np.full(n, device, dtype=object),
        ts.astype(float),
        p.astype(float),
        np.full(n, np.nan),
        np.full(n, np.nan),
    )


def _stored(store: Store, device: str) -> pd.DataFrame:
    return store.query_telemetry(
        device, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )


def _rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM telemetry")).scalar_one())


def test_ops_run_in_the_order_they_were_queued(real_store: Store) -> None:
    writer = StoreWriter(real_store, max_rows=1000)
    order: list[int] = []
    for i in range(5):
        writer.op(f"op {i}", lambda i=i: order.append(i))
    writer.op("audit", lambda: real_store.audit("apikey:t", "event.create", "ev-1", {"n": 1}))
    assert writer.pending_ops == 6
    assert writer.flush() is True
    assert order == [0, 1, 2, 3, 4]
    assert writer.pending_ops == 0
    assert writer.stats.ops_written == 6
    assert [r.action for r in real_store.audit_log()] == ["event.create"]


def test_readings_without_power_are_not_buffered(real_store: Store) -> None:
    writer = StoreWriter(real_store, max_rows=1000)
    dev = _device_ids(real_store)[0]
    writer.telemetry(_batch(dev, T0 + np.arange(4.0), np.array([1.0, np.nan, 2.0, np.nan])))
    assert writer.buffered_rows == 2
    assert writer.flush() is True
    assert _stored(real_store, dev)["p_kw"].tolist() == [1.0, 2.0]


def test_outage_buffers_then_writes_everything_in_order(real_store: Store) -> None:
    flaky = FlakyStore(real_store)
    writer = StoreWriter(flaky, max_rows=1000)  # type: ignore[arg-type]
    dev = _device_ids(real_store)[0]
    ops_done: list[str] = []

    flaky.down = True
    writer.op("first", lambda: (flaky.audit("system", "a.first", "x"), ops_done.append("first")))
    for k in range(10):  # ten cycles of 10 readings while the database is away
        writer.telemetry(_batch(dev, T0 + 10 * k + np.arange(10.0), np.full(10, float(k))))
        writer.op(
            f"op {k}", lambda k=k: (flaky.audit("system", f"a.{k}", "x"), ops_done.append(f"{k}"))
        )
        assert writer.flush() is False
        assert writer.stats.database_up is False
        assert writer.buffered_rows == 10 * (k + 1)
    assert writer.pending_ops == 11  # nothing dropped, nothing skipped
    assert ops_done == []
    assert _rows(real_store) == 0
    assert writer.stats.failures == 10

    flaky.down = False
    assert writer.flush() is True
    assert writer.stats.database_up is True
    assert writer.buffered_rows == 0
    assert writer.pending_ops == 0
    assert writer.stats.rows_written == 100
    assert writer.stats.rows_dropped == 0
    assert ops_done == ["first", *[str(k) for k in range(10)]]
    audit = [r.action for r in reversed(real_store.audit_log())]  # newest first → oldest first
    assert audit == ["a.first", *[f"a.{k}" for k in range(10)]]
    stored = _stored(real_store, dev)
    assert len(stored) == 100
    assert stored["p_kw"].tolist() == [float(k) for k in range(10) for _ in range(10)]
    assert stored["ts"].is_monotonic_increasing


def test_bound_drops_the_oldest_readings_and_counts_them(real_store: Store) -> None:
    flaky = FlakyStore(real_store)
    writer = StoreWriter(flaky, max_rows=25)  # type: ignore[arg-type]
    dev = _device_ids(real_store)[0]
    flaky.down = True
    for k in range(5):  # 5 batches of 10 readings into a buffer of 25
        writer.telemetry(_batch(dev, T0 + 10 * k + np.arange(10.0), np.full(10, float(k))))
        writer.flush()
    assert writer.buffered_rows == 20  # the newest two batches; 30 readings dropped
    assert writer.stats.rows_dropped == 30
    assert writer.stats.database_up is False

    flaky.down = False
    assert writer.flush() is True
    stored = _stored(real_store, dev)
    assert stored["p_kw"].tolist() == [3.0] * 10 + [4.0] * 10  # the oldest went first
    assert writer.stats.rows_dropped == 30
    assert writer.buffered_rows == 0


def test_a_failed_op_blocks_later_ops_until_it_succeeds(real_store: Store) -> None:
    """A write that fails stays at the head: later writes never overtake it."""
    writer = StoreWriter(real_store, max_rows=1000)
    attempts = {"n": 0}
    done: list[str] = []

    def fails_twice() -> None:
        attempts["n"] += 1
        if attempts["n"] <= 2:
            raise OSError("connection reset")
        done.append("head")

    writer.op("head", fails_twice)
    writer.op("next", lambda: done.append("next"))
    assert writer.flush() is False
    assert writer.flush() is False
    assert done == []
    assert writer.stats.database_up is False
    assert writer.flush() is True
    assert done == ["head", "next"]
