"""The fleet's flexibility as a forecast quantity in the service: recorded, trained, issued.

Stored telemetry does not carry what the power bands need, so the service records each
site's band flexibility every quarter hour (``FlexRecorder``); the demo seeds it with the
twin's band history. These tests seed it the same way, train ``flex_up`` / ``flex_down``
with ``net`` on the seeded store and check the 48-hour issue and its actuals.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.state import FleetState
from gridflock.forecast import FLEX_HOLD_H, FLEX_QUANTITIES, History
from gridflock.service.forecast_flex import FlexRecorder
from gridflock.service.forecast_schedule import Due
from gridflock.service.forecast_seed import history_range
from gridflock.service.forecasting import ForecastService
from gridflock.sim.history import twin_history
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.twin import Twin
from gridflock.store import Store

from ._forecast_data import DAYS, NOW, Seeded, forecast_settings
from ._forecast_data import seeded as seeded_data

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture(scope="module")
def seeded() -> Seeded:
    return seeded_data()


@pytest.fixture
def store(seeded: Seeded, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "gf.db"
    shutil.copy(seeded.db, path)
    with Store(f"sqlite:///{path}") as s:
        yield s


_CACHE: dict[str, History] = {}


def _twin(seeded: Seeded) -> History:
    if "twin" in _CACHE:
        return _CACHE["twin"]
    _, start = history_range(NOW, DAYS)
    hist, _ = twin_history(
        seeded.spec,
        pd.Timestamp(start, unit="s", tz="UTC"),
        DAYS,
        3,
        weather=seeded.weather.weather,
        quantities=("net", *FLEX_QUANTITIES),
    )
    _CACHE["twin"] = hist
    return hist


def _twin_flex(seeded: Seeded) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], list[str]]:
    hist = _twin(seeded)
    return hist.times, dict(hist.series), hist.sites.ids.tolist()


def test_twin_flexibility_is_the_dispatchers_bands_summed_per_site(seeded: Seeded) -> None:
    """Oracle: a fleet state that has heard nothing knows no band; from the first readings
    on every site offers headroom of its own devices, never negative, and the fleet's total
    equals ``fleet.flexibility`` on a state fed the twin's telemetry independently."""
    _, series, _ids = _twin_flex(seeded)
    up, down = series["flex_up"], series["flex_down"]
    assert np.isnan(up[:, 0]).all()
    assert np.isnan(down[:, 0]).all()
    assert np.nanmin(up) >= 0
    assert np.nanmin(down) >= 0
    assert np.nansum(up) > 0
    assert np.nansum(down) > 0
    state = FleetState.from_spec(seeded.spec)
    f = flexibility(state, FLEX_HOLD_H, NOW)  # nothing reported: no band is known
    assert not f.up_kw.any()
    assert not f.down_kw.any()
    # an independent run of the twin for a day, its telemetry into a second fleet state
    _, start = history_range(NOW, DAYS)
    twin = Twin(
        seeded.spec,
        pd.Timestamp(start, unit="s", tz="UTC"),
        round(DAYS * 96),
        900.0,
        3,
        imperfections=Imperfections(
            latency_median_s=0.0, dropout_rate=0.0, offline_rate=0.0, ignore_rate=0.0, noise_kw=0.0
        ),
        weather=seeded.weather.weather,
    )
    for _t in range(60):
        twin.step()
        for batch in twin.receive():
            state.apply(batch)
    f = flexibility(state, FLEX_HOLD_H, twin.now)
    assert float(np.sum(up[:, 60])) == pytest.approx(float(f.up_kw.sum()), rel=1e-9, abs=1e-9)
    assert float(np.sum(down[:, 60])) == pytest.approx(float(f.down_kw.sum()), rel=1e-9, abs=1e-9)


def test_the_recorder_keeps_quarter_hours_and_forgets_another_fleet() -> None:
    rec = FlexRecorder(keep_days=1)
    t0 = 1_780_000_200.0  # a quarter hour
    rec.record(t0 + 10, ["a", "b"], np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    rec.record(t0 + 500, ["a", "b"], np.array([9.0, 9.0]), np.array([9.0, 9.0]))  # same step
    rec.record(t0 + 900, ["a", "b"], np.array([5.0, 6.0]), np.array([7.0, 8.0]))
    times = pd.date_range(pd.Timestamp(t0 - 900, unit="s", tz="UTC"), periods=4, freq="15min")
    s = rec.series(times, ["a", "b"])
    assert np.isnan(s["flex_up"][:, 0]).all()
    assert np.isnan(s["flex_up"][:, 3]).all()
    np.testing.assert_allclose(s["flex_up"][:, 1:3], [[1, 5], [2, 6]])
    np.testing.assert_allclose(s["flex_down"][:, 1:3], [[3, 7], [4, 8]])
    rec.record(t0 + 2 * 86_400, ["a", "b"], np.ones(2), np.ones(2))  # a day on: old steps go
    assert rec.steps == 1
    rec.record(t0 + 3 * 86_400, ["c"], np.ones(1), np.ones(1))  # another fleet: start again
    assert rec.steps == 1
    assert rec.site_ids == ("c",)
    assert np.isnan(rec.series(times, ["a", "b"])["flex_up"]).all()


def test_flexibility_is_trained_and_issued_for_the_next_48_hours(
    store: Store, seeded: Seeded
) -> None:
    _times, series, ids = _twin_flex(seeded)
    recorded = {"n": 0}

    def live(now: float) -> tuple[list[str], np.ndarray, np.ndarray]:
        recorded["n"] += 1
        return ids, series["flex_up"][:, -1], series["flex_down"][:, -1]

    svc = ForecastService(
        forecast_settings(store.url, forecast_quantities=["net", *FLEX_QUANTITIES]),
        store,
        lambda: seeded.spec,
        lambda: NOW,
        seeded.weather,
        flexibility=live,
    )
    svc.flex.seed(_twin(seeded))  # as the demo seeds it
    svc.record_flexibility(NOW)  # the live quarter hour, after the seeded ones
    assert recorded["n"] == 1
    svc.step(NOW, Due(True, True, True))
    assert svc.status()["state"] == "ready", svc.status()["last_error"]
    assert set(FLEX_QUANTITIES) <= set(svc.quantities())
    issued = store.latest_forecasts()
    got = {(f.horizon, f.quantity) for f in issued if f.group_by == "fleet"}
    for q in FLEX_QUANTITIES:
        assert ("next_48h", q) in got
        assert ("day_ahead", q) in got
        assert ("intraday", q) in got
    assert ("next_48h", "net") not in got  # the 48-hour issue is the flexibility's
    f48 = next(
        f for f in issued if (f.horizon, f.quantity, f.group_by) == ("next_48h", "flex_up", "fleet")
    )
    assert f48.values_kw.shape == (192, 3)
    assert f48.start == datetime(2026, 6, 1, 7, 15, tzinfo=UTC)
    assert np.all(np.diff(f48.values_kw, axis=1) >= -1e-9)
    # the fleet's median up flexibility is of the size the twin offered
    typical = float(np.nanmean(np.nansum(series["flex_up"], axis=0)))
    assert 0.2 * typical < float(np.median(f48.values_kw[:, 1])) < 5 * typical
    # actuals of a day-ahead flexibility forecast: what was recorded (the future: unknown)
    da = next(
        f
        for f in issued
        if (f.horizon, f.quantity, f.group_by) == ("day_ahead", "flex_down", "fleet")
    )
    assert np.isnan(svc.actuals(da)).all()
    site = svc.site("next_48h", "flex_down", ids[0])
    assert site is not None
    assert site.values_kw.shape == (192, 3)
