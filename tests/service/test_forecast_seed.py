"""The demo's live twin runs under the weather its seeded history and forecasts use."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridflock.fleet.generate import generate_fleet
from gridflock.service.forecast_seed import interpolated_weather, twin_weather_source
from gridflock.sim.realtime import RealtimeTwin

T0 = 1_780_315_200.0  # 2026-06-01T12:00:00Z


def test_interpolated_weather_keeps_the_samples_and_averages_between() -> None:
    spec = generate_fleet(3, 1)
    source = twin_weather_source(spec, T0 - 86_400, 2, seed=1).weather
    same = interpolated_weather(source, source.times)
    for name in ("ghi", "temp_air_c", "wind_speed_m_s", "solar_zenith", "solar_azimuth"):
        np.testing.assert_allclose(getattr(same, name), getattr(source, name), atol=1e-9)
    mid = interpolated_weather(source, source.times[:-1] + pd.Timedelta(minutes=7.5))
    np.testing.assert_allclose(mid.temp_air_c, (source.temp_air_c[:-1] + source.temp_air_c[1:]) / 2)


def test_the_live_twin_takes_the_weather_it_is_given() -> None:
    spec = generate_fleet(3, 1)
    source = twin_weather_source(spec, T0 - 3600, 1, seed=1).weather
    twin = RealtimeTwin(
        spec,
        step_s=60.0,
        hours=1.0,
        sim_date=pd.Timestamp(T0, unit="s", tz="UTC").date(),
        clock=lambda: T0,
        weather=lambda times: interpolated_weather(source, times),
    )
    w = twin.twin.weather
    assert w.times[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    at = source.times.get_loc(pd.Timestamp(T0, unit="s", tz="UTC"))
    assert w.temp_air_c[0] == source.temp_air_c[at]
    assert w.ghi[15] == source.ghi[at + 1]  # 15 one-minute steps later: the next quarter hour
