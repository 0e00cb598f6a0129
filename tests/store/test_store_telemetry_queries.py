"""Telemetry for dashboards: resampled in SQL, and the newest reading per device."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import TelemetryBatch
from gridflock.store import Store

T0 = datetime(2025, 7, 1, tzinfo=UTC)


def readings(n_devices: int = 3, n_steps: int = 120, step_s: float = 15.0) -> TelemetryBatch:
    """Readings every ``step_s`` from T0 + 7 s (so buckets do not start at the first one)."""
    ids = np.array([f"dev-{d}" for d in range(n_devices)], dtype=object)
    steps = T0.timestamp() + 7.0 + step_s * np.arange(n_steps)
    rng = np.random.default_rng(3)
    device_ids = np.repeat(ids, n_steps)
    ts = np.tile(steps, n_devices)
    p = rng.normal(0.0, 3.0, len(ts))
    soc = rng.uniform(0.0, 1.0, len(ts))
    soc[::4] = np.nan
    return TelemetryBatch(device_ids, ts, p, soc, np.full(len(ts), np.nan))


def expected_resampled(batch: TelemetryBatch, every: int, start: float, end: float) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "device_id": batch.device_ids,
            "t": batch.ts,
            "p_kw": batch.p_kw,
            "soc": batch.soc,
        }
    )
    df = df[(df["t"] >= start) & (df["t"] < end)]
    df["bucket"] = (np.floor(df["t"] / every) * every).astype(np.int64)
    g = df.sort_values("t").groupby(["device_id", "bucket"])
    return pd.DataFrame(
        {
            "p_kw": g["p_kw"].mean(),
            "soc": g["soc"].last(),  # pandas' last skips NaN, like "last reported"
            "soc_mean": g["soc"].mean(),
            "n": g.size(),
        }
    ).reset_index()


@pytest.mark.parametrize("every", [60, 300, 7])
def test_resampled_matches_pandas(store: Store, every: int) -> None:
    batch = readings()
    store.write_telemetry(batch)
    start, end = T0 + timedelta(seconds=100), T0 + timedelta(minutes=25)
    got = store.query_telemetry_resampled(["dev-0", "dev-2", "missing"], start, end, every)
    assert list(got.columns) == ["device_id", "ts", "p_kw", "soc", "soc_mean", "n"]
    assert str(got["ts"].dt.tz) == "UTC"
    exp = expected_resampled(batch, every, start.timestamp(), end.timestamp())
    exp = exp[exp["device_id"].isin(["dev-0", "dev-2"])].reset_index(drop=True)
    assert got["device_id"].tolist() == exp["device_id"].tolist()
    np.testing.assert_array_equal(
        got["ts"].map(pd.Timestamp.timestamp).to_numpy(), exp["bucket"].to_numpy()
    )
    np.testing.assert_allclose(got["p_kw"].to_numpy(), exp["p_kw"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["soc"].to_numpy(), exp["soc"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(got["soc_mean"].to_numpy(), exp["soc_mean"].to_numpy())
    np.testing.assert_array_equal(got["n"].to_numpy(), exp["n"].to_numpy())


def test_bucket_boundaries_are_exact(store: Store) -> None:
    """A reading exactly on a bucket edge belongs to the bucket it starts."""
    t = T0.timestamp()
    ts = np.array([t - 0.000001, t, t + 59.999999, t + 60.0])
    batch = TelemetryBatch(
        np.array(["d"] * 4, dtype=object),
        ts,
        np.array([1.0, 2.0, 3.0, 4.0]),
        np.full(4, 0.5),
        np.full(4, np.nan),
    )
    store.write_telemetry(batch)
    got = store.query_telemetry_resampled(
        ["d"], T0 - timedelta(hours=1), T0 + timedelta(hours=1), 60
    )
    assert got["ts"].tolist() == [
        pd.Timestamp(T0 - timedelta(minutes=1)),
        pd.Timestamp(T0),
        pd.Timestamp(T0 + timedelta(minutes=1)),
    ]
    assert got["p_kw"].tolist() == [1.0, 2.5, 4.0]
    assert got["n"].tolist() == [1, 2, 1]


def test_resampled_empty_and_bad_interval(store: Store) -> None:
    store.write_telemetry(readings(n_devices=1, n_steps=4))
    empty = store.query_telemetry_resampled([], T0, T0 + timedelta(hours=1), 60)
    assert list(empty.columns) == ["device_id", "ts", "p_kw", "soc", "soc_mean", "n"]
    assert empty.empty
    none = store.query_telemetry_resampled(
        ["dev-0"], T0 + timedelta(days=1), T0 + timedelta(days=2), 60
    )
    assert none.empty
    assert str(none["ts"].dt.tz) == "UTC"
    for bad in (0, -60, 1.5):
        with pytest.raises(ValueError, match="every_s"):
            store.query_telemetry_resampled(["dev-0"], T0, T0 + timedelta(hours=1), bad)  # type: ignore[arg-type]


def test_resampled_over_many_devices(store: Store) -> None:
    batch = readings(n_devices=6_000, n_steps=2, step_s=60)  # more than one IN (...) chunk
    store.write_telemetry(batch)
    ids = [f"dev-{d}" for d in range(6_000)]
    got = store.query_telemetry_resampled(ids, T0, T0 + timedelta(hours=1), 3600)
    assert len(got) == 6_000
    assert got["device_id"].tolist() == sorted(ids)
    assert (got["n"] == 2).all()


def test_latest_telemetry(store: Store) -> None:
    batch = readings(n_devices=3, n_steps=10)
    store.write_telemetry(batch)
    got = store.latest_telemetry(["dev-2", "dev-0", "ghost"])
    assert list(got.columns) == ["device_id", "ts", "p_kw", "soc", "p_baseline_kw"]
    assert got["device_id"].tolist() == ["dev-0", "dev-2"]
    last = T0 + timedelta(seconds=7 + 15 * 9)
    assert (got["ts"] == pd.Timestamp(last)).all()
    assert got["p_kw"].tolist() == [batch.p_kw[9], batch.p_kw[29]]
    assert got["p_baseline_kw"].isna().all()
    every = store.latest_telemetry()
    assert every["device_id"].tolist() == ["dev-0", "dev-1", "dev-2"]
    assert store.latest_telemetry([]).empty
    assert str(store.latest_telemetry([])["ts"].dt.tz) == "UTC"
