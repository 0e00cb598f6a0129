"""Site power history: telemetry on a regular grid, summed per site and kind, gaps as NaN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import FleetSpec, TelemetryBatch
from gridflock.fleet.generate import generate_fleet
from gridflock.store import Store

T0 = datetime(2026, 3, 29, tzinfo=UTC)  # a DST change in Europe: UTC buckets are unaffected
STEP = 900


def fleet_readings(spec: FleetSpec, n_steps: int, every_s: float, seed: int = 5) -> TelemetryBatch:
    """Every device reports every ``every_s`` seconds with random power."""
    ids = spec.all_devices()["id"].to_numpy()
    per = int(n_steps * STEP / every_s)
    ts = T0.timestamp() + 3.0 + every_s * np.arange(per)
    rng = np.random.default_rng(seed)
    dev = np.repeat(ids.astype(object), per)
    t = np.tile(ts, len(ids))
    p = rng.normal(0.0, 2.0, len(t))
    return TelemetryBatch(dev, t, p, np.full(len(t), np.nan), np.full(len(t), np.nan))


def expected(spec: FleetSpec, batch: TelemetryBatch, n_steps: int) -> pd.DataFrame:
    """Independent pandas answer: mean per device and bucket, summed per site."""
    devs = spec.all_devices()
    site_of = pd.Series(devs["site_id"].to_numpy(), index=devs["id"].to_numpy())
    df = pd.DataFrame({"dev": batch.device_ids, "t": batch.ts, "p": batch.p_kw})
    df["bucket"] = ((df["t"] - T0.timestamp()) // STEP).astype(int)
    df = df[df["bucket"] < n_steps]
    mean = df.groupby(["dev", "bucket"])["p"].mean().reset_index()
    mean["site"] = site_of.reindex(mean["dev"]).to_numpy()
    return mean.groupby(["site", "bucket"])["p"].sum().unstack("bucket")


def test_site_power_matches_pandas_and_marks_gaps(store: Store) -> None:
    spec = generate_fleet(12, seed=3)
    store.save_fleet(spec)
    n = 8
    batch = fleet_readings(spec, n, every_s=300.0)
    # one device of the first site goes silent for interval 2: its site's net is unknown there
    first_site = spec.sites["id"].iloc[0]
    devs = spec.all_devices()
    victim = devs.loc[devs["site_id"] == first_site, "id"].iloc[0]
    lost = (batch.device_ids == victim) & (
        (batch.ts >= T0.timestamp() + 2 * STEP) & (batch.ts < T0.timestamp() + 3 * STEP)
    )
    keep = ~lost
    batch = TelemetryBatch(
        batch.device_ids[keep],
        batch.ts[keep],
        batch.p_kw[keep],
        batch.soc[keep],
        batch.p_baseline_kw[keep],
    )
    store.write_telemetry(batch)

    got = store.site_power(T0, T0 + timedelta(seconds=n * STEP), STEP)
    assert got.site_ids == list(spec.sites["id"])
    assert len(got.times) == n
    assert str(got.times.tz) == "UTC"
    assert got.times[0] == pd.Timestamp(T0)
    exp = expected(spec, batch, n).reindex(got.site_ids)
    i = got.site_ids.index(first_site)
    assert np.isnan(got.net_kw[i, 2])
    assert 0 < got.coverage[i, 2] < 1
    mask = np.ones_like(got.net_kw, dtype=bool)
    mask[i, 2] = False
    np.testing.assert_allclose(got.net_kw[mask], exp.to_numpy()[mask], rtol=1e-9, atol=1e-9)
    # the kinds add up to the net wherever the net is known
    total = sum(got.by_kind_kw.values())
    np.testing.assert_allclose(total[mask], got.net_kw[mask], atol=1e-9)
    np.testing.assert_allclose(got.net_import_kw[mask], -got.net_kw[mask])
    assert got.frame().shape == (n, len(got.site_ids))


def test_site_power_subset_empty_and_bad_input(store: Store) -> None:
    spec = generate_fleet(4, seed=1)
    store.save_fleet(spec)
    some = list(spec.sites["id"].iloc[:2])
    got = store.site_power(T0, T0 + timedelta(hours=1), STEP, site_ids=some[::-1])
    assert got.site_ids == some[::-1]
    assert got.net_kw.shape == (2, 4)
    assert np.isnan(got.net_kw).all()  # no telemetry at all: unknown, never zero
    assert (got.coverage == 0).all()
    with pytest.raises(KeyError, match="nope"):
        store.site_power(T0, T0 + timedelta(hours=1), STEP, site_ids=["nope"])
    with pytest.raises(ValueError, match="after start"):
        store.site_power(T0, T0, STEP)
    with pytest.raises(ValueError, match="at most"):
        store.site_power(T0, T0 + timedelta(days=20_000), STEP)
    with pytest.raises(ValueError, match="whole number"):
        store.site_power(T0, T0 + timedelta(hours=1), 0)
