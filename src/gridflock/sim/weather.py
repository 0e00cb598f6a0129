"""Synthetic, seeded weather for the digital twin: irradiance, air temperature and wind.

Clear-sky irradiance comes from pvlib (Ineichen with the Linke turbidity climatology
that pvlib ships, so nothing is downloaded); clouds, temperature noise and wind are
seeded stochastic processes whose correlation times are set in physical time, so the
same seed gives statistically the same weather whatever the time step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib

__all__ = ["Weather", "hot_summer_day", "make_weather"]

FloatArray = npt.NDArray[np.float64]

#: Correlation time of the cloud (clear-sky index) process [s].
CLOUD_TAU_S = 25 * 60.0
#: Correlation time of the air temperature noise [s].
TEMP_NOISE_TAU_S = 45 * 60.0
#: Standard deviation of the air temperature noise [K].
TEMP_NOISE_SD_K = 0.4
#: Correlation time of the wind speed process [s].
WIND_TAU_S = 90 * 60.0
#: Local solar hour of the daily minimum and maximum air temperature [h].
HOUR_T_MIN = 5.0
HOUR_T_MAX = 15.5
#: Bounds of the clear-sky index (fraction of clear-sky GHI kept).
CLOUD_MIN, CLOUD_MAX = 0.1, 1.0


@dataclass(frozen=True, eq=False)
class Weather:
    """Weather over a UTC time index; every array has ``len(times)`` values.

    Attributes
    ----------
    times : DatetimeIndex, tz UTC
    ghi, dni, dhi : array [W/m2]
        Global horizontal, direct normal and diffuse horizontal irradiance.
    temp_air_c : array [degC]
    wind_speed_m_s : array [m/s]
        Wind speed at 10 m above ground.
    solar_zenith, solar_azimuth : array [deg]
        Apparent (refraction-corrected) zenith; azimuth clockwise from north.
    cloud_factor : array [1]
        Clear-sky index: fraction of clear-sky GHI that reaches the ground, 0..1.

    Arrays are stored as read-only float64 copies, so a ``Weather`` can be shared.

    """

    times: pd.DatetimeIndex
    ghi: FloatArray
    dni: FloatArray
    dhi: FloatArray
    temp_air_c: FloatArray
    wind_speed_m_s: FloatArray
    solar_zenith: FloatArray
    solar_azimuth: FloatArray
    cloud_factor: FloatArray

    def __post_init__(self) -> None:
        if self.times.tz is None or str(self.times.tz) != "UTC":
            raise ValueError("Weather.times must be a timezone-aware UTC DatetimeIndex")
        for f in fields(self):
            if f.name == "times":
                continue
            arr = np.array(getattr(self, f.name), dtype=np.float64)  # own, read-only copy
            if arr.shape != (len(self.times),):
                raise ValueError(
                    f"Weather.{f.name} has shape {arr.shape}, need ({len(self.times)},)"
                )
            arr.setflags(write=False)
            object.__setattr__(self, f.name, arr)


def _to_utc(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    if times.tz is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return times.tz_convert("UTC")


def _step_seconds(times: pd.DatetimeIndex) -> FloatArray:
    """Length of the step that ends at each time [s] (the first repeats the second)."""
    epoch_s = _epoch_s(times)
    if len(epoch_s) < 2:
        return np.full(len(epoch_s), 60.0)
    steps = np.diff(epoch_s)
    return np.concatenate([steps[:1], steps])


def _epoch_s(times: pd.DatetimeIndex) -> FloatArray:
    """Seconds since the Unix epoch [s], whatever the index's resolution."""
    delta = times - pd.Timestamp(0, tz="UTC")
    return np.asarray(delta.total_seconds(), dtype=np.float64)


def _ou(step_s: FloatArray, tau_s: float, rng: np.random.Generator) -> FloatArray:
    """Stationary Ornstein-Uhlenbeck path with unit variance sampled at the given steps.

    A loop over time only (never over homes): T scalar updates.
    """
    phi = np.exp(-step_s / tau_s)
    innov = np.sqrt(1.0 - phi**2) * rng.standard_normal(len(step_s))
    out = np.empty(len(step_s))
    x = rng.standard_normal()
    for k in range(len(step_s)):
        x = phi[k] * x + innov[k]
        out[k] = x
    return out


def _solar_hour(times: pd.DatetimeIndex, lon: float) -> FloatArray:
    """Local apparent solar time [h], 0..24."""
    utc_h = times.hour + times.minute / 60.0 + times.second / 3600.0
    doy = times.day_of_year.to_numpy()
    eot_min = pvlib.solarposition.equation_of_time_spencer71(doy)
    return np.asarray((np.asarray(utc_h) + lon / 15.0 + eot_min / 60.0) % 24.0, dtype=np.float64)


def _diurnal_temperature(solar_h: FloatArray, t_min_c: float, t_max_c: float) -> FloatArray:
    """Smooth asymmetric diurnal cycle: minimum at 05:00, maximum at 15:30 solar time [degC]."""
    rise_h = HOUR_T_MAX - HOUR_T_MIN
    fall_h = 24.0 - rise_h
    since_min = (solar_h - HOUR_T_MIN) % 24.0
    rising = since_min < rise_h
    phase = np.where(rising, since_min / rise_h, (since_min - rise_h) / fall_h)
    up = (1.0 - np.cos(np.pi * phase)) / 2.0  # 0 -> 1 along each half
    frac = np.where(rising, up, 1.0 - up)
    return t_min_c + (t_max_c - t_min_c) * frac


def make_weather(
    times: pd.DatetimeIndex,
    lat: float,
    lon: float,
    seed: int,
    *,
    t_max_c: float = 33.0,
    t_min_c: float = 19.0,
    cloudiness: float = 0.15,
    wind_mean_m_s: float = 4.0,
    altitude_m: float = 500.0,
) -> Weather:
    """Seeded synthetic weather at one location; the defaults describe a hot summer day.

    Parameters
    ----------
    times : DatetimeIndex, tz-aware (converted to UTC)
        Instants to sample; steps may be irregular.
    lat : float [deg]
        Latitude.
    lon : float [deg]
        Longitude (east positive).
    seed : int
        Seeds every stochastic part; the same seed gives the same weather.
    t_max_c, t_min_c : float [degC]
        Daily maximum (about 15:30 solar time) and minimum (about 05:00) air temperature.
    cloudiness : float [1]
        Mean fraction of clear-sky GHI lost to clouds, 0..0.9. The clear-sky index follows
        an Ornstein-Uhlenbeck process (correlation time 25 min) with mean ``1 - cloudiness``,
        clipped to [0.1, 1] (so its realised mean is slightly lower). 0 gives clear sky.
    wind_mean_m_s : float [m/s]
        Mean wind speed at 10 m; the speed is Rayleigh (Weibull k=2) distributed, built from
        two correlated Gaussian components (correlation time 90 min).
    altitude_m : float [m]
        Site altitude, for the clear-sky model.

    Returns
    -------
    Weather
        DNI and DHI come from the Erbs decomposition of the cloudy GHI, with DHI closing
        ``ghi = dni * cos(zenith) + dhi``.

    """
    if not 0.0 <= cloudiness <= 0.9:
        raise ValueError(f"cloudiness must be in [0, 0.9], got {cloudiness}")
    if wind_mean_m_s < 0.0:
        raise ValueError(f"wind_mean_m_s must be >= 0, got {wind_mean_m_s}")
    times = _to_utc(times)
    rng_cloud, rng_temp, rng_wind = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    step_s = _step_seconds(times)
    doy = times.day_of_year.to_numpy()

    # Clear sky (Ineichen, monthly Linke turbidity from pvlib's shipped table).
    location = pvlib.location.Location(lat, lon, tz="UTC", altitude=altitude_m)
    solpos = location.get_solarposition(times)
    linke = pvlib.clearsky.lookup_linke_turbidity(times, lat, lon, interp_turbidity=False)
    dni_extra = np.asarray(pvlib.irradiance.get_extra_radiation(doy), dtype=np.float64)
    clear = location.get_clearsky(
        times, model="ineichen", solar_position=solpos, dni_extra=dni_extra, linke_turbidity=linke
    )
    zenith = solpos["apparent_zenith"].to_numpy(dtype=np.float64)
    azimuth = solpos["azimuth"].to_numpy(dtype=np.float64)
    ghi_clear = np.maximum(clear["ghi"].to_numpy(dtype=np.float64), 0.0)

    # Clouds: clear-sky index around 1 - cloudiness.
    spread = 0.8 * min(cloudiness, 1.0 - cloudiness)
    cloud = np.clip(
        1.0 - cloudiness + spread * _ou(step_s, CLOUD_TAU_S, rng_cloud), CLOUD_MIN, CLOUD_MAX
    )
    ghi = ghi_clear * cloud
    erbs = pvlib.irradiance.erbs(ghi, zenith, doy)
    dni = np.nan_to_num(np.asarray(erbs["dni"], dtype=np.float64), nan=0.0)
    dni = np.maximum(dni, 0.0)
    cos_z = np.maximum(np.cos(np.radians(zenith)), 0.0)
    dhi = np.maximum(ghi - dni * cos_z, 0.0)

    # Air temperature: diurnal cycle plus slow noise.
    temp = _diurnal_temperature(_solar_hour(times, lon), t_min_c, t_max_c)
    temp = temp + TEMP_NOISE_SD_K * _ou(step_s, TEMP_NOISE_TAU_S, rng_temp)

    # Wind: |(u, v)| of two unit OU components is Rayleigh; scale to the mean.
    sigma = wind_mean_m_s / np.sqrt(np.pi / 2.0)
    u = _ou(step_s, WIND_TAU_S, rng_wind)
    v = _ou(step_s, WIND_TAU_S, rng_wind)
    wind = sigma * np.hypot(u, v)

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


def hot_summer_day(
    date: dt.date,
    lat: float,
    lon: float,
    seed: int,
    step: pd.Timedelta,
    hours: float = 24.0,
    start_hour_utc: float = 0.0,
    *,
    cloudiness: float = 0.15,
) -> Weather:
    """Weather for a hot summer day starting at ``start_hour_utc`` on ``date`` (UTC).

    Parameters
    ----------
    date : date
        UTC date of the start.
    lat : float [deg]
        Latitude.
    lon : float [deg]
        Longitude (east positive).
    seed : int
        See :func:`make_weather`.
    step : Timedelta
        Time step; the index has ``round(hours / step)`` steps.
    hours : float [h]
        Length of the index.
    start_hour_utc : float [h]
        Start of the index after midnight UTC of ``date``.
    cloudiness : float [1]
        See :func:`make_weather`.

    """
    step = pd.Timedelta(step)
    if step <= pd.Timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    n_steps = round(pd.Timedelta(hours=hours) / step)
    start = pd.Timestamp(date, tz="UTC") + pd.Timedelta(hours=start_hour_utc)
    times = pd.date_range(start, periods=n_steps, freq=step)
    return make_weather(times, lat, lon, seed, cloudiness=cloudiness)
