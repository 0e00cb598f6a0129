import datetime as dt

import numpy as np
import pandas as pd
import pytest

from gridflock.sim.weather import Weather, hot_summer_day, make_weather

LAT, LON = 51.0, 10.0  # central Germany
JUNE = dt.date(2025, 6, 21)


@pytest.fixture(scope="module")
def clear_day() -> Weather:
    times = pd.date_range("2025-06-21", periods=24 * 60, freq="1min", tz="UTC")
    return make_weather(times, LAT, LON, seed=1, cloudiness=0.0)


def test_clear_sky_ghi_zero_at_night_and_peaks_near_solar_noon(clear_day):
    w = clear_day
    night = w.solar_zenith > 90.0
    assert night.any()
    assert np.all(w.ghi[night] == 0.0)
    assert np.all(w.dni[night] == 0.0)
    assert 700.0 < w.ghi.max() < 1100.0
    # Solar noon at 10 deg E is about 11:20 UTC in June.
    peak = w.times[np.argmax(w.ghi)]
    noon = pd.Timestamp("2025-06-21 12:00", tz="UTC") - pd.Timedelta(hours=LON / 15.0)
    assert abs(peak - noon) < pd.Timedelta(minutes=30)


def test_irradiance_components_close(clear_day):
    w = clear_day
    cos_z = np.maximum(np.cos(np.radians(w.solar_zenith)), 0.0)
    np.testing.assert_allclose(w.dni * cos_z + w.dhi, w.ghi, atol=1e-6)
    assert np.all(w.dni >= 0)
    assert np.all(w.dhi >= 0)


def test_weather_is_utc_and_read_only(clear_day):
    assert str(clear_day.times.tz) == "UTC"
    with pytest.raises(ValueError, match="read-only"):
        clear_day.ghi[0] = 1.0


def test_cloud_factor_bounds_and_mean():
    w = hot_summer_day(JUNE, LAT, LON, seed=3, step=pd.Timedelta("1min"))
    assert np.all((w.cloud_factor >= 0.1) & (w.cloud_factor <= 1.0))
    assert 0.75 < w.cloud_factor.mean() < 0.92
    assert np.all(w.ghi >= 0.0)


def test_seed_reproducible_and_seeds_differ():
    a = hot_summer_day(JUNE, LAT, LON, seed=7, step=pd.Timedelta("5min"))
    b = hot_summer_day(JUNE, LAT, LON, seed=7, step=pd.Timedelta("5min"))
    c = hot_summer_day(JUNE, LAT, LON, seed=8, step=pd.Timedelta("5min"))
    for name in ("ghi", "cloud_factor", "temp_air_c", "wind_speed_m_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.cloud_factor, c.cloud_factor)


def test_cloud_correlation_time_independent_of_step():
    """Lag-30-min autocorrelation is similar at 1-min and 5-min steps."""

    def lag_corr(step_min: int) -> float:
        vals = []
        for seed in range(20):
            times = pd.date_range(
                "2025-06-21", periods=3 * 1440 // step_min, freq=f"{step_min}min", tz="UTC"
            )
            w = make_weather(times, LAT, LON, seed, cloudiness=0.5)
            x = w.cloud_factor
            lag = 30 // step_min
            vals.append(np.corrcoef(x[:-lag], x[lag:])[0, 1])
        return float(np.mean(vals))

    c1, c5 = lag_corr(1), lag_corr(5)
    assert 0.1 < c1 < 0.8
    assert abs(c1 - c5) < 0.1


def test_temperature_diurnal_cycle():
    w = hot_summer_day(JUNE, LAT, LON, seed=2, step=pd.Timedelta("10min"))
    assert 17.0 < w.temp_air_c.min() < 21.0
    assert 31.0 < w.temp_air_c.max() < 35.0
    hour = w.times.hour.to_numpy()
    # Early morning (UTC 3-5, solar about 4-6) cooler than afternoon (UTC 13-15).
    assert w.temp_air_c[(hour >= 3) & (hour < 5)].mean() < 21.0
    assert w.temp_air_c[(hour >= 13) & (hour < 15)].mean() > 31.0


def test_wind_positive_with_requested_mean():
    times = pd.date_range("2025-01-01", periods=60 * 24, freq="30min", tz="UTC")
    w = make_weather(times, LAT, LON, seed=4, wind_mean_m_s=5.0)
    assert np.all(w.wind_speed_m_s >= 0.0)
    assert 4.0 < w.wind_speed_m_s.mean() < 6.0


def test_hot_summer_day_index():
    w = hot_summer_day(
        JUNE, LAT, LON, seed=0, step=pd.Timedelta("15min"), hours=6, start_hour_utc=4.0
    )
    assert len(w.times) == 24
    assert w.times[0] == pd.Timestamp("2025-06-21 04:00", tz="UTC")
    assert len(w.ghi) == len(w.times)


def test_naive_times_rejected():
    with pytest.raises(ValueError, match="timezone"):
        make_weather(pd.date_range("2025-06-21", periods=3, freq="1h"), LAT, LON, 0)
