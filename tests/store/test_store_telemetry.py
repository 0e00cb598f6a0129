"""Telemetry: batched writes, half-open range queries, NULLs and duplicate batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from gridflock.domain import TelemetryBatch
from gridflock.store import Store

T0 = datetime(2025, 7, 1, tzinfo=UTC)
N_DEVICES, N_STEPS = 100, 100  # 10,000 readings


def make_batch(
    t0: datetime = T0,
    n_devices: int = N_DEVICES,
    n_steps: int = N_STEPS,
) -> TelemetryBatch:
    ids = np.array([f"dev-{d:03d}" for d in range(n_devices)], dtype=object)
    steps = t0.timestamp() + 60.0 * np.arange(n_steps)
    device_ids = np.repeat(ids, n_steps)
    ts = np.tile(steps, n_devices)
    rng = np.random.default_rng(7)
    p = rng.normal(0.0, 3.0, len(ts))
    soc = rng.uniform(0.0, 1.0, len(ts))
    soc[::3] = np.nan
    base = rng.normal(0.0, 2.0, len(ts))
    base[::5] = np.nan
    return TelemetryBatch(device_ids, ts, p, soc, base)


def test_write_and_query_half_open(store: Store) -> None:
    batch = make_batch()
    assert store.write_telemetry(batch) == N_DEVICES * N_STEPS
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    df = store.query_telemetry("dev-007", start, end)
    assert list(df.columns) == ["ts", "p_kw", "soc", "p_baseline_kw"]
    assert len(df) == 10  # [start, end): minute 20 is out
    assert df["ts"].iloc[0] == pd.Timestamp(start)
    assert df["ts"].iloc[-1] == pd.Timestamp(end - timedelta(minutes=1))
    assert str(df["ts"].dt.tz) == "UTC"
    rows = slice(7 * N_STEPS + 10, 7 * N_STEPS + 20)
    np.testing.assert_array_equal(df["p_kw"].to_numpy(), batch.p_kw[rows])
    np.testing.assert_array_equal(df["soc"].to_numpy(), batch.soc[rows])  # NaN -> NULL -> NaN
    np.testing.assert_array_equal(df["p_baseline_kw"].to_numpy(), batch.p_baseline_kw[rows])
    assert df["soc"].isna().sum() == np.isnan(batch.soc[rows]).sum() > 0


def test_nan_is_stored_as_null(store: Store) -> None:
    batch = make_batch(n_devices=1, n_steps=3)
    store.write_telemetry(batch)
    with store.engine.connect() as conn:
        nulls = conn.execute(text("SELECT count(*) FROM telemetry WHERE soc IS NULL")).scalar()
    assert nulls == 1


def test_duplicate_batch_is_ignored(store: Store) -> None:
    batch = make_batch(n_devices=10, n_steps=10)
    assert store.write_telemetry(batch) == 100
    assert store.write_telemetry(batch) == 0
    later = make_batch(T0 + timedelta(minutes=5), n_devices=10, n_steps=10)
    assert store.write_telemetry(later) == 50  # half overlaps the first batch
    df = store.query_telemetry("dev-000", T0, T0 + timedelta(hours=1))
    assert len(df) == 15
    # the first write wins for an overlapping (device, ts)
    assert df["p_kw"].iloc[5] == batch.p_kw[5]


def test_unusable_readings_are_dropped(store: Store) -> None:
    batch = make_batch(n_devices=1, n_steps=4)
    batch.p_kw[1] = np.nan
    assert store.write_telemetry(batch) == 3
    assert store.write_telemetry(TelemetryBatch.empty()) == 0


def test_query_needs_aware_times(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.query_telemetry("dev-000", datetime(2025, 1, 1), datetime(2025, 1, 2))


def test_query_converts_other_time_zones(store: Store) -> None:
    store.write_telemetry(make_batch(n_devices=1, n_steps=60))
    plus2 = T0.astimezone(timezone(timedelta(hours=2)))
    assert plus2.hour == 2
    df = store.query_telemetry("dev-000", plus2, plus2 + timedelta(minutes=30))
    assert len(df) == 30
    assert df["ts"].iloc[0] == pd.Timestamp(T0)
