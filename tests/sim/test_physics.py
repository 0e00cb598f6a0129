import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.sim.physics import (
    battery_step,
    cop,
    ev_sessions,
    heat_pump_mode,
    house_step,
    pv_profiles,
    thermostat_heat_pump,
    thermostat_water_heater,
    water_draw_profile,
    water_heater_step,
    wind_power_curve,
    wind_power_kw,
)
from gridflock.sim.weather import hot_summer_day, make_weather

LAT, LON = 51.0, 10.0
TZ = "Europe/Berlin"


# ---------------------------------------------------------------------------- PV


@pytest.fixture(scope="module")
def clear_june_day():
    times = pd.date_range("2025-06-21", periods=24 * 60, freq="1min", tz="UTC")
    return make_weather(times, LAT, LON, seed=0, cloudiness=0.0)


def test_pv_clear_june_day_energy(clear_june_day):
    profiles, bins = pv_profiles(clear_june_day, np.array([30.0]), np.array([180.0]), LAT, LON)
    kwh = profiles[:, bins[0]].sum() / 60.0
    assert 5.0 < kwh < 8.0
    assert profiles.max() <= 1.0
    assert np.all(profiles >= 0.0)
    night = clear_june_day.solar_zenith > 90.0
    assert np.all(profiles[night] == 0.0)


def test_pv_bins_shared_and_orientation_matters(clear_june_day):
    tilt = np.array([30.0, 31.0, 30.0, 30.0, 90.0])
    azimuth = np.array([180.0, 182.0, 90.0, 270.0, 0.0])
    profiles, bins = pv_profiles(clear_june_day, tilt, azimuth, LAT, LON)
    assert bins.shape == (5,)
    assert profiles.shape == (len(clear_june_day.times), len(np.unique(bins)))
    assert bins[0] == bins[1]  # same 5/15-deg bin
    energy = profiles[:, bins].sum(axis=0) / 60.0
    south, east, west, north_wall = energy[0], energy[2], energy[3], energy[4]
    assert south > east
    assert south > west
    assert north_wall < 0.5 * south
    # East produces in the morning, west in the afternoon.
    east_peak = clear_june_day.times[np.argmax(profiles[:, bins[2]])]
    west_peak = clear_june_day.times[np.argmax(profiles[:, bins[3]])]
    assert east_peak < west_peak


def test_pv_clouds_reduce_output(clear_june_day):
    cloudy = hot_summer_day(
        dt.date(2025, 6, 21), LAT, LON, seed=0, step=pd.Timedelta("1min"), cloudiness=0.5
    )
    clear, _ = pv_profiles(clear_june_day, np.array([30.0]), np.array([180.0]), LAT, LON)
    dull, _ = pv_profiles(cloudy, np.array([30.0]), np.array([180.0]), LAT, LON)
    assert dull.sum() < 0.8 * clear.sum()


# -------------------------------------------------------------------------- wind


def test_wind_curve_shape():
    speed, power = wind_power_curve("E-53/800")
    assert np.all(np.diff(speed) > 0)
    assert power.min() >= 0.0
    assert power.max() == pytest.approx(1.0)
    assert wind_power_curve("E-53/800") is wind_power_curve("E-53/800")  # cached


def test_wind_power_zero_below_cut_in_and_rated_at_rated_speed():
    curve = wind_power_curve("E-53/800")
    speed, power = curve
    cut_in = speed[np.argmax(power > 0)] - (speed[1] - speed[0])
    rated_speed = speed[np.argmax(power >= 0.999)]
    hub = np.full(3, 10.0)  # at 10 m the hub speed is the 10 m speed
    rated = np.array([5.0, 10.0, 20.0])
    np.testing.assert_allclose(wind_power_kw(min(cut_in, 1.0), hub, rated, curve), 0.0)
    np.testing.assert_allclose(wind_power_kw(rated_speed, hub, rated, curve), rated, rtol=0.01)
    np.testing.assert_allclose(wind_power_kw(40.0, hub, rated, curve), 0.0)  # past cut-out


def test_wind_power_grows_with_hub_height():
    curve = wind_power_curve("E-53/800")
    out = wind_power_kw(np.array([5.0, 5.0]), np.array([10.0, 40.0]), np.array([10.0, 10.0]), curve)
    assert out[1] > out[0] > 0


def test_wind_unknown_type_lists_known():
    with pytest.raises(ValueError, match="E-53/800"):
        wind_power_curve("NoSuchTurbine/1")


# ----------------------------------------------------------------------- battery

finite = {"allow_nan": False, "allow_infinity": False}


@settings(max_examples=300, deadline=None)
@given(
    soc_min=st.floats(0.0, 0.5, **finite),
    span=st.floats(0.0, 0.5, **finite),
    frac=st.floats(0.0, 1.0, **finite),
    p_kw=st.floats(-50.0, 50.0, **finite),
    dt_h=st.floats(1e-4, 4.0, **finite),
    e_kwh=st.floats(0.0, 30.0, **finite),
    p_max=st.floats(0.0, 20.0, **finite),
    eta_c=st.floats(0.5, 1.0, **finite),
    eta_d=st.floats(0.5, 1.0, **finite),
)
def test_battery_stays_in_band_and_conserves_energy(
    soc_min, span, frac, p_kw, dt_h, e_kwh, p_max, eta_c, eta_d
):
    soc_max = soc_min + span
    soc = soc_min + frac * span
    args = (
        dt_h,
        np.array([e_kwh]),
        np.array([p_max]),
        np.array([p_max]),
        np.array([eta_c]),
        np.array([eta_d]),
        np.array([soc_min]),
        np.array([soc_max]),
    )
    new_soc, p = battery_step(np.array([soc]), np.array([p_kw]), *args)
    assert soc_min <= new_soc[0] <= soc_max
    assert -p_max <= p[0] <= p_max
    assert abs(p[0]) <= abs(p_kw) + 1e-12
    assert p[0] * p_kw >= 0  # never reverses the request
    stored_change = (new_soc[0] - soc) * e_kwh
    expected = -(p[0] / eta_d if p[0] > 0 else p[0] * eta_c) * dt_h
    assert stored_change == pytest.approx(expected, abs=1e-9)


def test_battery_full_day_vectorised():
    n = 1000
    rng = np.random.default_rng(0)
    soc = rng.uniform(0.1, 0.9, n)
    lo, hi = np.full(n, 0.1), np.full(n, 0.9)
    for _ in range(96):
        soc, p = battery_step(
            soc,
            rng.normal(0, 5, n),
            0.25,
            np.full(n, 10.0),
            np.full(n, 5.0),
            np.full(n, 5.0),
            np.full(n, 0.95),
            np.full(n, 0.95),
            lo,
            hi,
        )
        assert np.all((soc >= lo) & (soc <= hi))
        assert np.all(np.abs(p) <= 5.0)


def test_battery_limits_power_by_soc():
    soc, p = battery_step(
        np.array([0.15]),
        np.array([10.0]),
        1.0,
        np.array([10.0]),
        np.array([10.0]),
        np.array([10.0]),
        np.array([1.0]),
        np.array([0.9]),
        np.array([0.1]),
        np.array([1.0]),
    )
    assert soc[0] == pytest.approx(0.1)
    assert p[0] == pytest.approx(0.5 * 0.9)


# ----------------------------------------------------------------------- thermal


def test_cop_rated_points_and_trends():
    nominal = np.full(2, 3.5)
    np.testing.assert_allclose(cop(np.array([7.0, 35.0]), nominal, np.array([True, False])), 3.5)
    heat = cop(np.array([-15.0, 0.0, 15.0]), 3.5, np.array([True, True, True]))
    cool = cop(np.array([25.0, 35.0, 45.0]), 3.5, np.array([False, False, False]))
    assert np.all(np.diff(heat) > 0)
    assert np.all(np.diff(cool) < 0)
    extreme = cop(np.array([-60.0, 34.0, 14.0]), 5.0, np.array([True, True, False]))
    assert np.all((extreme >= 1.0) & (extreme <= 8.0))


def test_house_converges_to_outdoor_without_heat_pump():
    t = np.array([21.0, 10.0])
    t_out = np.array([5.0, 30.0])
    for _ in range(100):
        t = house_step(t, t_out, 0.0, np.array([0.15, 0.3]), np.array([6.0, 4.0]), 10.0)
    np.testing.assert_allclose(t, t_out, atol=1e-3)


def test_house_steady_state_with_constant_heat_and_any_step():
    ua, c, q, t_out = 0.2, 5.0, 3.0, 0.0
    steady = t_out + q / ua
    t = np.array([20.0])
    for _ in range(100):
        t = house_step(t, t_out, q, ua, c, 10.0)
    assert t[0] == pytest.approx(steady, abs=1e-6)
    # One big step equals many small ones (exact solution).
    big = house_step(np.array([20.0]), t_out, q, ua, c, 10.0)
    small = np.array([20.0])
    for _ in range(600):
        small = house_step(small, t_out, q, ua, c, 10.0 / 600)
    np.testing.assert_allclose(big, small, rtol=1e-9)
    # Without losses, the heat simply accumulates.
    assert house_step(np.array([20.0]), 0.0, 1.0, 0.0, 5.0, 1.0)[0] == pytest.approx(20.2)


def test_heat_pump_mode():
    t_in = np.array([20.0, 22.0, 23.0, 23.0, 25.0])
    t_out = np.array([0.0, 20.0, 30.0, 30.0, 20.0])
    mode = heat_pump_mode(t_in, t_out, 21.0, 24.0, np.array([True, True, True, False, True]))
    np.testing.assert_array_equal(mode, [1, 0, -1, 0, -1])


def test_thermostat_holds_cooling_setpoint_on_hot_day():
    weather = hot_summer_day(
        dt.date(2025, 7, 10), LAT, LON, seed=5, step=pd.Timedelta("1min"), cloudiness=0.0
    )
    n, dt_h = 4, 1.0 / 60.0
    ua, c = np.full(n, 0.15), np.full(n, 6.0)
    t_cool = np.full(n, 24.0)
    t_in = np.full(n, 24.0)
    gains = np.array([0.0, 0.5, 1.0, 1.5])  # people, appliances, sun [kW]
    trace = []
    for t_out_c in weather.temp_air_c:
        t_out = np.full(n, t_out_c)
        mode = heat_pump_mode(t_in, t_out, 21.0, t_cool, True)
        p = thermostat_heat_pump(
            t_in, t_out, 3.0, 3.5, ua, c, 21.0, t_cool, True, dt_h, q_gain_kw=gains
        )
        assert np.all((p >= 0.0) & (p <= 3.0))
        q_hp = mode * p * cop(t_out, 3.5, mode > 0)
        t_in = house_step(t_in, t_out, q_hp, ua, c, dt_h, q_gain_kw=gains)
        trace.append(t_in)
    temps = np.array(trace)
    assert temps.max() < 24.5
    # Houses with gains need cooling all day and sit at the setpoint.
    assert np.all(np.abs(temps[:, 2:] - 24.0) < 0.5)
    # Without the heat pump the hot afternoon would push the house well above it.
    assert weather.temp_air_c.max() > 30.0


def test_thermostat_heats_in_winter_and_saturates():
    t_in = np.array([21.0, 15.0])
    p = thermostat_heat_pump(
        t_in, np.array([-5.0, -5.0]), np.array([5.0, 0.5]), 3.5, 0.15, 6.0, 21.0, 24.0, True, 0.25
    )
    q_loss = 0.15 * 26.0
    assert p[0] == pytest.approx(q_loss / cop(np.array([-5.0]), 3.5, True)[0], rel=0.02)
    assert p[1] == pytest.approx(0.5)
    # Already warm enough: no heating.
    assert (
        thermostat_heat_pump(np.array([23.0]), -5.0, 5.0, 3.5, 0.15, 6.0, 21.0, 24.0, True, 0.25)[0]
        == 0.0
    )


def test_water_heater_stays_between_limits_under_thermostat():
    n, dt_h = 500, 1.0 / 60.0
    rng = np.random.default_rng(1)
    times = pd.date_range("2025-06-18", periods=2 * 1440, freq="1min", tz="UTC")
    draw_shape = water_draw_profile(times, TZ)
    daily = rng.uniform(3.0, 8.0, n)
    t_tank = rng.uniform(50.0, 60.0, n)
    on = np.zeros(n, dtype=bool)
    lows, highs = [], []
    for k in range(len(times)):
        p, on = thermostat_water_heater(t_tank, 58.0, 3.0, 5.0, on)
        t_tank = water_heater_step(t_tank, p, daily * draw_shape[k], 200.0, 0.0015, 20.0, dt_h)
        lows.append(t_tank.min())
        highs.append(t_tank.max())
    assert min(lows) > 45.0
    assert max(highs) < 60.0


def test_water_heater_cools_towards_ambient_and_element_heats():
    cold = water_heater_step(np.array([60.0]), 0.0, 0.0, 200.0, 0.002, 20.0, 1000.0)
    assert cold[0] == pytest.approx(20.0, abs=0.01)
    c = 200.0 * 4.186 / 3600.0
    warm = water_heater_step(np.array([40.0]), 3.0, 0.0, 200.0, 0.0, 20.0, 0.5)
    assert warm[0] == pytest.approx(40.0 + 1.5 / c)
    assert water_heater_step(np.array([40.0]), 0.0, 50.0, 200.0, 0.0, 20.0, 1.0)[0] == 10.0


def test_water_heater_hysteresis():
    t = np.array([50.0, 55.0, 55.0, 58.5])
    p, on = thermostat_water_heater(t, 58.0, 3.0, 5.0, np.array([False, False, True, True]))
    np.testing.assert_array_equal(on, [True, False, True, False])
    np.testing.assert_array_equal(p, [3.0, 0.0, 3.0, 0.0])


def test_water_draw_profile_daily_integral_and_peaks():
    start = pd.Timestamp("2025-06-18", tz=TZ).tz_convert("UTC")
    times = pd.date_range(start, periods=1440, freq="1min")
    shape = water_draw_profile(times, TZ)
    assert shape.sum() / 60.0 == pytest.approx(1.0, rel=1e-3)
    hour = times.tz_convert(TZ).hour
    assert shape[hour == 7].mean() > 3 * shape[hour == 3].mean()
    assert shape[hour == 19].mean() > 3 * shape[hour == 3].mean()


# ---------------------------------------------------------------------------- EV


def test_ev_sessions_bounds():
    n = 20_000
    rng = np.random.default_rng(3)
    day = pd.Timestamp("2025-06-18 00:00", tz="UTC")
    arrival, departure, energy = ev_sessions(n, rng, np.full(n, 18.0), 7.5, 12.0, day, TZ)
    has = np.isfinite(arrival)
    assert 0.1 < 1.0 - has.mean() < 0.2
    assert np.all(departure[has] > arrival[has])
    assert np.all((energy[has] >= 1.0) & (energy[has] <= 80.0))
    assert np.all(energy[~has] == 0.0)
    assert energy[has].mean() == pytest.approx(12.0, rel=0.1)
    local_arr = pd.to_datetime(arrival[has], unit="s", utc=True).tz_convert(TZ)
    arr_h = local_arr.hour + local_arr.minute / 60.0
    assert arr_h.min() >= 14.0
    assert arr_h.max() <= 23.5
    assert np.all(local_arr.day == 18)
    local_dep = pd.to_datetime(departure[has], unit="s", utc=True).tz_convert(TZ)
    assert np.all(local_dep.day == 19)
    assert 7.0 < np.mean(local_dep.hour + local_dep.minute / 60.0) < 8.0


def test_ev_sessions_reproducible():
    day = pd.Timestamp("2025-03-30 12:00", tz="UTC")  # DST switch night in Berlin
    a = ev_sessions(100, np.random.default_rng(9), 18.0, 7.5, 12.0, day, TZ)
    b = ev_sessions(100, np.random.default_rng(9), 18.0, 7.5, 12.0, day, TZ)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
