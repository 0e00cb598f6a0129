"""The autopilot's inputs from the forecast engine and its plan per device from the optimiser.

A real forecast service (tiny LightGBM models trained on 15 days of twin history of six
homes) issues per-site quantile forecasts; the autopilot turns them into the optimiser's
inputs at the chosen quantile and plans every device.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gridflock.domain.kinds import DeviceKind
from gridflock.fleet.state import FleetState
from gridflock.optimize import InitialState
from gridflock.optimize.autopilot import (
    PeakShavingPolicy,
    Policies,
    StoragePool,
    Tariff,
    plan_devices,
    plan_fleet,
    proposals,
)
from gridflock.service.autopilot import engine_inputs
from gridflock.service.forecast_schedule import Due
from gridflock.service.forecasting import ForecastService
from gridflock.service.plans import series_of
from gridflock.store import Store

from ._forecast_data import NOW, forecast_settings, seeded

TZ = "Europe/Berlin"


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> ForecastService:
    data = seeded()
    path = Path(tmp_path_factory.mktemp("ap")) / "gf.db"
    shutil.copy(data.db, path)
    store = Store(f"sqlite:///{path}")
    svc = ForecastService(
        forecast_settings(
            store.url, forecast_quantities=["net", "load", "pv"], forecast_backtest_days=0
        ),
        store,
        lambda: data.spec,
        lambda: NOW,
        data.weather,
    )
    svc.step(NOW, Due(True, True, True))
    assert svc.status()["state"] == "ready", svc.status()["last_error"]
    return svc


def _times(n: int = 96) -> pd.DatetimeIndex:
    start = pd.Timestamp(NOW, unit="s", tz="UTC").floor("15min")
    return pd.date_range(start, periods=n, freq="15min")


def test_inputs_follow_the_latest_issue_at_the_chosen_quantile(issued: ForecastService) -> None:
    spec = issued._spec()
    median = engine_inputs(issued, spec, _times(), 0.5)
    cautious = engine_inputs(issued, spec, _times(), 0.9)
    assert median is not None
    assert cautious is not None
    n = len(median.times)
    assert n >= 4
    assert median.sites.load_kw.shape == (len(spec.sites), n)
    assert "quantile" in cautious.source
    # cautious: more consumption, less PV, more fleet import; never negative magnitudes
    assert cautious.sites.load_kw.sum() > median.sites.load_kw.sum()
    assert cautious.sites.pv_kw.sum() <= median.sites.pv_kw.sum() + 1e-9
    assert (cautious.fleet_import_kw >= median.fleet_import_kw - 1e-6).all()
    assert (median.sites.load_kw >= 0).all()
    assert (median.sites.pv_kw >= 0).all()
    assert np.isfinite(median.sites.t_out_c).all()
    # no forecast covering the start: the caller falls back (None, not an error)
    late = _times() + pd.Timedelta(days=30)
    assert engine_inputs(issued, spec, late, 0.5) is None


def test_the_plan_per_device_keeps_the_peak_the_storage_sketch_found(
    issued: ForecastService,
) -> None:
    spec = issued._spec()
    inputs = engine_inputs(issued, spec, _times(), 0.5)
    assert inputs is not None
    state = FleetState.from_spec(spec)
    c = state.kind_columns[DeviceKind.BATTERY]
    floor = np.maximum(c["soc_min"], c["soc_reserve"])
    pool = StoragePool.from_arrays(
        c["e_kwh"],
        c["soc_initial"],
        floor,
        c["soc_max"],
        c["p_charge_max_kw"],
        c["p_discharge_max_kw"],
        c["eta_charge"],
        c["eta_discharge"],
    )
    init = InitialState.from_fleet_state(state)
    off = Policies(peak_shaving=PeakShavingPolicy(enabled=False))
    sketch_off = plan_fleet(inputs.times, inputs.fleet_import_kw, pool, Tariff(), off, TZ)
    free = plan_devices(spec, inputs.times, inputs.sites, init, Tariff(), off, sketch_off, TZ)
    sketch = plan_fleet(inputs.times, inputs.fleet_import_kw, pool, Tariff(), Policies(), TZ)
    plan = plan_devices(spec, inputs.times, inputs.sites, init, Tariff(), Policies(), sketch, TZ)
    dev = plan.devices
    assert dev is not None
    assert free.devices is not None
    # the fleet view sums the devices: batteries' power and the sites' import
    bat = np.nansum(dev.p_kw[dev.battery_rows], axis=0)
    np.testing.assert_allclose(plan.discharge_kw - plan.charge_kw, bat, atol=1e-9)
    np.testing.assert_allclose(plan.import_kw, -dev.site_net_kw.sum(axis=0), atol=1e-9)
    # every battery within its band, and the peak no higher than without peak shaving
    soc = dev.soc
    b_floor = floor[
        np.searchsorted(
            state.device_ids[state.kind_slices[DeviceKind.BATTERY]],
            dev.device_ids[dev.battery_rows],
        )
    ]
    assert (soc >= b_floor[:, None] - 1e-6).all()
    assert (soc <= 1.0 + 1e-9).all()
    assert plan.peak_kw <= free.peak_kw + 1e-6
    assert np.isfinite(plan.cap_kw)  # the sketch's peak is kept by the devices here
    assert plan.import_kw.max() <= plan.cap_kw + 1e-4
    assert plan.peak_kw < free.peak_kw - 0.1
    # proposals and schedules come from it
    blocks = proposals(plan, TZ)
    assert all(b.reason for b in blocks)
    series = series_of(dev, state, "ap-test")
    assert series.steps == len(inputs.times)
    assert len(series.device_ids) > 0
