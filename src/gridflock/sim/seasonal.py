"""Seasonal multi-week weather for the twin: day-to-day anomalies, cloud regimes, wind.

:func:`gridflock.sim.weather.make_weather` describes one day of given character; a
forecasting study needs weeks to months in which days differ: a seasonal cycle of
temperature with persistent warm and cold spells, runs of clear and overcast days (and a
smaller daily temperature range under cloud), calm and windy spells, windier winters. Daily
values are seeded AR(1) processes, interpolated between day centres so nothing jumps at
midnight; within the day the same processes as ``make_weather`` add the fast variation.
Defaults are of a central-European inland site (Munich: mean 9 degC, coldest in late January).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib

from gridflock.sim.weather import (
    CLOUD_MAX,
    CLOUD_MIN,
    CLOUD_TAU_S,
    TEMP_NOISE_SD_K,
    TEMP_NOISE_TAU_S,
    WIND_TAU_S,
    FloatArray,
    Weather,
    _diurnal_temperature,
    _epoch_s,
    _ou,
    _solar_hour,
    _step_seconds,
    _to_utc,
)

__all__ = ["seasonal_weather"]

_DAY_S = 86_400.0


def _ar1(n: int, phi: float, sd: float, rng: np.random.Generator) -> FloatArray:
    """Stationary AR(1) series of n values with lag-1 correlation phi and standard deviation sd."""
    out = np.empty(n)
    x = rng.standard_normal()
    innov = np.sqrt(1.0 - phi**2) * rng.standard_normal(n)
    for k in range(n):
        x = phi * x + innov[k]
        out[k] = x
    return sd * out


def seasonal_weather(
    times: pd.DatetimeIndex,
    lat: float,
    lon: float,
    seed: int,
    *,
    t_mean_c: float = 9.0,
    t_amplitude_k: float = 9.5,
    anomaly_sd_k: float = 3.5,
    anomaly_tau_days: float = 3.0,
    range_clear_k: float = 12.0,
    cloudiness_mean: float = 0.45,
    cloud_tau_days: float = 1.5,
    wind_mean_m_s: float = 3.5,
    altitude_m: float = 500.0,
) -> Weather:
    """Weather over weeks or months at one place, with the seasons and day-to-day variety.

    Parameters
    ----------
    times : DatetimeIndex, tz-aware
        Instants to sample (any steps; 15 min for forecasting studies).
    lat, lon : float [deg]
        Place.
    seed : int
        Seeds every stochastic part.
    t_mean_c : float [degC]
        Annual mean air temperature.
    t_amplitude_k : float [K]
        Seasonal amplitude: daily means run from ``t_mean - amp`` (late January) to
        ``t_mean + amp`` (late July).
    anomaly_sd_k, anomaly_tau_days : float [K], [d]
        Day-to-day anomaly of the daily mean: AR(1), this standard deviation and e-folding time.
    range_clear_k : float [K]
        Daily temperature range on a clear day; an overcast day has 30 % of it.
    cloudiness_mean : float [1]
        Mean daily cloudiness (fraction of clear-sky GHI lost), higher in winter by 0.15.
    cloud_tau_days : float [d]
        Persistence of cloud regimes (clear and overcast spells).
    wind_mean_m_s : float [m/s]
        Mean wind at 10 m; winters 30 % windier than summers; windy spells are lognormal AR(1).
    altitude_m : float [m]
        For the clear-sky model.

    """
    times = _to_utc(times)
    if len(times) == 0:
        raise ValueError("times is empty")
    rng_day, rng_cloud, rng_temp, rng_wind = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 7]).spawn(4)
    )
    t_s = _epoch_s(times)
    step_s = _step_seconds(times)
    # local solar days covering the index, one value per day centred at local solar noon
    shift = lon / 15.0 * 3600.0
    day0 = np.floor((t_s[0] + shift) / _DAY_S) - 1
    n_days = int(np.floor((t_s[-1] + shift) / _DAY_S) - day0) + 2
    centres = (day0 + np.arange(n_days) + 0.5) * _DAY_S - shift
    doy = (pd.to_datetime(centres, unit="s", utc=True).day_of_year.to_numpy()).astype(float)
    season = -np.cos(2.0 * np.pi * (doy - 25.0) / 365.25)  # -1 late January, +1 late July

    anomaly = _ar1(n_days, float(np.exp(-1.0 / anomaly_tau_days)), anomaly_sd_k, rng_day)
    t_daily = t_mean_c + t_amplitude_k * season + anomaly
    cloud_daily = np.clip(
        cloudiness_mean
        - 0.15 * season
        + _ar1(n_days, float(np.exp(-1.0 / cloud_tau_days)), 0.28, rng_day),
        0.0,
        0.9,
    )
    wind_daily = (
        wind_mean_m_s
        * (1.0 - 0.15 * season)
        * np.exp(_ar1(n_days, float(np.exp(-1.0 / 2.0)), 0.35, rng_day) - 0.35**2 / 2)
    )
    range_daily = range_clear_k * (1.0 - 0.7 * cloud_daily / 0.9)

    def per_step(daily: FloatArray) -> FloatArray:
        return np.asarray(np.interp(t_s, centres, daily), dtype=np.float64)

    location = pvlib.location.Location(lat, lon, tz="UTC", altitude=altitude_m)
    solpos = location.get_solarposition(times)
    linke = pvlib.clearsky.lookup_linke_turbidity(times, lat, lon, interp_turbidity=False)
    dni_extra = np.asarray(
        pvlib.irradiance.get_extra_radiation(times.day_of_year.to_numpy()), dtype=np.float64
    )
    clear = location.get_clearsky(
        times, model="ineichen", solar_position=solpos, dni_extra=dni_extra, linke_turbidity=linke
    )
    zenith = solpos["apparent_zenith"].to_numpy(dtype=np.float64)
    azimuth = solpos["azimuth"].to_numpy(dtype=np.float64)
    ghi_clear = np.maximum(clear["ghi"].to_numpy(dtype=np.float64), 0.0)

    cloudiness = per_step(cloud_daily)
    spread = 0.8 * np.minimum(cloudiness, 1.0 - cloudiness)
    cloud = np.clip(
        1.0 - cloudiness + spread * _ou(step_s, CLOUD_TAU_S, rng_cloud), CLOUD_MIN, CLOUD_MAX
    )
    ghi = ghi_clear * cloud
    erbs = pvlib.irradiance.erbs(ghi, zenith, times.day_of_year.to_numpy())
    dni = np.maximum(np.nan_to_num(np.asarray(erbs["dni"], dtype=np.float64), nan=0.0), 0.0)
    dhi = np.maximum(ghi - dni * np.maximum(np.cos(np.radians(zenith)), 0.0), 0.0)

    shape = _diurnal_temperature(_solar_hour(times, lon), 0.0, 1.0) - 0.5
    temp = per_step(t_daily) + per_step(range_daily) * shape
    temp = temp + TEMP_NOISE_SD_K * _ou(step_s, TEMP_NOISE_TAU_S, rng_temp)

    sigma = per_step(wind_daily) / np.sqrt(np.pi / 2.0)
    wind = sigma * np.hypot(_ou(step_s, WIND_TAU_S, rng_wind), _ou(step_s, WIND_TAU_S, rng_wind))

    return Weather(
        times=times,
        ghi=ghi,
        dni=dni,
        dhi=dhi,
        temp_air_c=np.asarray(temp, dtype=np.float64),
        wind_speed_m_s=wind,
        solar_zenith=zenith,
        solar_azimuth=azimuth,
        cloud_factor=cloud,
    )
