"""Seasonal weather, the twin's weather forecasts and the 15-minute history generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridflock.fleet.generate import generate_fleet
from gridflock.sim.forecast_weather import TwinWeatherSource, weather_series
from gridflock.sim.history import KIND_QUANTITY, twin_history
from gridflock.sim.seasonal import seasonal_weather

LAT, LON = 48.14, 11.58


@pytest.fixture(scope="module")
def year():
    times = pd.date_range("2026-01-01", "2027-01-01", freq="1h", tz="UTC", inclusive="left")
    return seasonal_weather(times, LAT, LON, seed=5)


def test_seasons_spells_and_reproducibility(year):
    t = pd.Series(year.temp_air_c, index=year.times)
    monthly = t.groupby(t.index.month).mean()
    assert monthly[7] - monthly[1] > 12.0  # summer well above winter
    assert -6 < monthly[1] < 6
    assert 13 < monthly[7] < 25
    daily = t.resample("D").mean()
    anomaly = daily - daily.rolling(31, center=True, min_periods=1).mean()
    assert 1.5 < anomaly.std() < 5.0  # warm and cold spells
    assert anomaly.autocorr(1) > 0.4  # that persist for days
    clear = pd.Series(year.cloud_factor, index=year.times).resample("D").mean()
    assert clear.max() - clear.min() > 0.5  # clear and overcast days
    wind = pd.Series(year.wind_speed_m_s, index=year.times)
    assert wind.groupby(wind.index.quarter).mean()[1] > wind.groupby(wind.index.quarter).mean()[3]
    np.testing.assert_allclose(
        seasonal_weather(year.times[:48], LAT, LON, seed=5).temp_air_c,
        seasonal_weather(year.times[:48], LAT, LON, seed=5).temp_air_c,
    )
    assert np.all(year.ghi >= 0)
    assert np.all(year.ghi[year.solar_zenith > 95] == 0)


def test_forecast_errors_grow_with_lead_and_are_seeded(year):
    src = TwinWeatherSource(year, seed=2, lat=LAT, lon=LON)
    t_s = (year.times - pd.Timestamp(0, tz="UTC")).total_seconds().to_numpy()
    valid = t_s[24 * 60 : 24 * 90]
    errs = {}
    for lead_h in (1, 12, 36):
        fc = src.forecast(valid - lead_h * 3600.0, valid)
        truth = weather_series(year, LAT, LON).forecast(valid, valid)
        errs[lead_h] = np.sqrt(np.mean((fc["temp_air_c"] - truth["temp_air_c"]) ** 2))
    assert errs[1] < errs[12] < errs[36]
    assert 0.2 < errs[1] < 0.8
    assert 1.0 < errs[36] < 2.5
    a = src.forecast(valid - 7200.0, valid)
    b = TwinWeatherSource(year, seed=2).forecast(valid - 7200.0, valid)
    np.testing.assert_array_equal(a["temp_air_c"], b["temp_air_c"])
    c = TwinWeatherSource(year, seed=3).forecast(valid - 7200.0, valid)
    assert not np.array_equal(a["temp_air_c"], c["temp_air_c"])
    assert np.all((a["cloud_factor"] >= 0.1) & (a["cloud_factor"] <= 1.0))


def test_a_run_does_not_depend_on_later_runs(year):
    src = TwinWeatherSource(year, seed=2)
    t_s = (year.times - pd.Timestamp(0, tz="UTC")).total_seconds().to_numpy()
    valid = t_s[5000:5048]
    issue = np.full(len(valid), t_s[4990] + 100.0)
    alone = src.forecast(issue, valid)
    mixed = src.forecast(np.concatenate([issue, issue + 86_400.0]), np.concatenate([valid, valid]))
    for k in alone:
        np.testing.assert_array_equal(alone[k], mixed[k][: len(valid)])


def test_history_per_site_and_kind_adds_up_to_net():
    spec = generate_fleet(25, 4)
    start = pd.Timestamp("2026-02-02", tz="UTC")
    history, weather = twin_history(spec, start, 3, 4, dropout_rate=0.01)
    assert history.times[0] == start
    assert len(history.times) == 3 * 96
    assert set(history.quantities) == {*KIND_QUANTITY.values(), "net"}
    parts = sum(history.series[q] for q in KIND_QUANTITY.values())
    net = history.series["net"]
    ok = ~np.isnan(parts) & ~np.isnan(net)
    np.testing.assert_allclose(parts[ok], net[ok], atol=1e-9)
    assert 0.005 < np.isnan(net).mean() < 0.02
    assert np.nanmax(history.series["pv"]) > 0
    assert np.nanmax(history.series["load"]) <= 0
    sites = history.sites
    assert list(sites.ids) == list(spec.sites["id"])
    has_hp = sites.heat_pump_kw > 0
    hp = history.series["heat_pump"]
    assert np.all(np.nan_to_num(hp[~has_hp]) == 0)
    assert np.nanmean(hp[has_hp]) < -0.3
    assert weather.times.equals(history.times)
