"""The twin's weather forecasts: its own actual weather plus seeded errors that grow with lead.

A forecast run is issued every ``run_every_h`` hours. Its error about the actual weather is a
smooth random function of the valid time (random Fourier features with periods of 6 to 72 h),
half shared by every run of the same day and half the run's own, scaled by a standard
deviation that grows linearly with lead time (temperature about 0.3 K at once, 1.7 K at 36 h;
the clear-sky index 0.04 to 0.22; wind a lognormal factor of 10 % to 32 %). Clouds faster
than about two hours cannot be forecast beyond the first hour: the forecast clear-sky index
is the 2-hour mean of the actual one plus the error. So the same seed gives the same
forecasts, nothing issued later leaks into an earlier run, and forecasts are consistent with
the weather the twin's homes actually feel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib

from gridflock.forecast import WeatherLocations, WeatherSeries
from gridflock.forecast._locations import haversine_km
from gridflock.forecast._types import FloatArray
from gridflock.sim.seasonal import seasonal_weather
from gridflock.sim.weather import CLOUD_MAX, CLOUD_MIN, Weather

__all__ = ["TwinWeatherSource", "twin_weather_locations", "weather_series"]

_K = 6  # Fourier components per error function
_NAMES = ("ghi", "dni", "dhi", "temp_air_c", "wind_speed_m_s", "cloud_factor")
_MAX_LEAD_H = 72.0


def weather_series(weather: Weather, lat: float, lon: float) -> WeatherSeries:
    """The twin's weather as a forecasting :class:`WeatherSeries` (actuals)."""
    return WeatherSeries(weather.times, {n: getattr(weather, n) for n in _NAMES}, lat=lat, lon=lon)


class TwinWeatherSource:
    """Forecasts of a twin :class:`Weather`, with seeded errors growing with lead time.

    Parameters
    ----------
    weather : Weather
        The actual weather (covering every valid time asked; NaN outside).
    seed : int
        Seeds the errors.
    lat, lon : float [deg]
        Where the weather is (kept for the models' solar geometry).
    run_every_h : float [h]
        Spacing of forecast runs; an issue time sees the latest run at or before it.
    error_scale : float [1]
        Multiplies every error (0 gives perfect forecasts).

    """

    def __init__(
        self,
        weather: Weather,
        seed: int,
        lat: float = float("nan"),
        lon: float = float("nan"),
        *,
        run_every_h: float = 1.0,
        error_scale: float = 1.0,
    ) -> None:
        self.weather = weather
        self.seed = int(seed)
        self.lat, self.lon = lat, lon
        self.run_s = run_every_h * 3600.0
        self.error_scale = float(error_scale)
        t = weather.times
        self._t_s = np.asarray((t - pd.Timestamp(0, tz="UTC")).total_seconds(), dtype=np.float64)
        self._step_s = float(np.median(np.diff(self._t_s))) if len(self._t_s) > 1 else 900.0
        n_smooth = max(1, round(7200.0 / self._step_s))
        cloud = pd.Series(weather.cloud_factor)
        self._cloud_smooth = (
            cloud.rolling(n_smooth, center=True, min_periods=1).mean().to_numpy(np.float64)
        )
        self._ghi_clear = weather.ghi / np.maximum(weather.cloud_factor, CLOUD_MIN)

    @property
    def names(self) -> tuple[str, ...]:
        """Columns provided."""
        return _NAMES

    def _errors(self, key: FloatArray, valid_s: FloatArray, channel: int) -> FloatArray:
        """Unit-variance smooth random functions of valid time, one per distinct ``key``."""
        uniq, inv = np.unique(key.astype(np.int64), return_inverse=True)
        period = np.empty((len(uniq), _K))
        phase = np.empty((len(uniq), _K))
        for i, k in enumerate(uniq):
            rng = np.random.default_rng([self.seed, channel, int(k) & 0x7FFFFFFF])
            period[i] = np.exp(rng.uniform(np.log(6 * 3600.0), np.log(72 * 3600.0), _K))
            phase[i] = rng.uniform(0.0, 2.0 * np.pi, _K)
        arg = 2.0 * np.pi * valid_s[:, None] / period[inv] + phase[inv]
        return np.asarray(np.sqrt(2.0 / _K) * np.cos(arg).sum(axis=1), dtype=np.float64)

    def forecast(self, issued_at: FloatArray, valid_at: FloatArray) -> dict[str, FloatArray]:
        """Forecast values for each (issue, valid) pair [epoch s]; NaN outside the weather."""
        issued = np.asarray(issued_at, dtype=np.float64)
        valid = np.asarray(valid_at, dtype=np.float64)
        issued, valid = np.broadcast_arrays(issued, valid)
        run = np.floor(issued / self.run_s)
        run_t = run * self.run_s
        lead_h = np.clip((valid - run_t) / 3600.0, 0.0, _MAX_LEAD_H)
        day = np.floor(run_t / 86_400.0)
        w = self._weather_at(valid)
        s = self.error_scale

        def err(channel: int) -> FloatArray:
            shared = self._errors(day, valid, 2 * channel)
            own = self._errors(run, valid, 2 * channel + 1)
            return np.asarray(np.sqrt(0.5) * (shared + own), dtype=np.float64)

        temp = w["temp_air_c"] + s * (0.3 + 0.04 * lead_h) * err(0)
        nowcast = np.exp(-lead_h)  # within the first hour the fast clouds are still seen
        cloud_base = nowcast * w["cloud_factor"] + (1.0 - nowcast) * w["cloud_smooth"]
        cloud = np.clip(cloud_base + s * (0.04 + 0.005 * lead_h) * err(1), CLOUD_MIN, CLOUD_MAX)
        sd_w = s * (0.1 + 0.006 * lead_h)
        wind = w["wind_speed_m_s"] * np.exp(sd_w * err(2) - sd_w**2 / 2.0)
        ghi = w["ghi_clear"] * cloud
        zen = w["solar_zenith"]
        doy = pd.to_datetime(np.nan_to_num(valid), unit="s", utc=True).day_of_year.to_numpy()
        erbs = pvlib.irradiance.erbs(np.nan_to_num(ghi), np.nan_to_num(zen, nan=90.0), doy)
        dni = np.maximum(np.nan_to_num(np.asarray(erbs["dni"], dtype=np.float64), nan=0.0), 0.0)
        dhi = np.maximum(ghi - dni * np.maximum(np.cos(np.radians(zen)), 0.0), 0.0)
        out = {
            "ghi": ghi,
            "dni": np.where(np.isnan(ghi), np.nan, dni),
            "dhi": dhi,
            "temp_air_c": temp,
            "wind_speed_m_s": wind,
            "cloud_factor": cloud,
        }
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    def _weather_at(self, valid_s: FloatArray) -> dict[str, FloatArray]:
        t = self._t_s
        pos = np.searchsorted(t, valid_s, side="right") - 1
        ok = (pos >= 0) & (valid_s < (t[-1] + self._step_s if len(t) else -np.inf))
        pos = np.clip(pos, 0, max(len(t) - 1, 0))
        wx = self.weather
        cols = {
            "temp_air_c": wx.temp_air_c,
            "cloud_factor": wx.cloud_factor,
            "cloud_smooth": self._cloud_smooth,
            "wind_speed_m_s": wx.wind_speed_m_s,
            "ghi_clear": self._ghi_clear,
            "solar_zenith": wx.solar_zenith,
        }
        return {k: np.where(ok, v[pos], np.nan) for k, v in cols.items()}


#: Distance over which two places' weather decorrelates [km] (weight of the shared part
#: ``exp(-d / CORRELATION_KM)`` from the places' centre).
CORRELATION_KM = 250.0


def twin_weather_locations(
    times: pd.DatetimeIndex,
    positions: dict[str, tuple[float, float]],
    seed: int,
    *,
    correlation_km: float = CORRELATION_KM,
) -> WeatherLocations:
    """Seasonal weather at several places, correlated by distance, as forecast sources.

    Each place first gets a seasonal weather of its own (seeded per place, under its own
    sun). Its actual temperature, clear-sky index and wind are then a weighted mean of every
    place's, with weights ``exp(-d / correlation_km)`` by the distance d between the places
    (normalised to 1): near places share most of their weather, distant ones little.
    Irradiance follows from the place's own sun and mixed clear-sky index. Each place's
    forecasts carry their own seeded errors that grow with lead time
    (:class:`TwinWeatherSource`).
    """
    if not positions:
        raise ValueError("twin_weather_locations needs at least one place")
    names = list(positions)
    lat = np.array([positions[n][0] for n in names], dtype=np.float64)
    lon = np.array([positions[n][1] for n in names], dtype=np.float64)
    own = [seasonal_weather(times, lat[k], lon[k], seed * 1009 + k) for k in range(len(names))]
    dist = np.stack([haversine_km(lat, lon, lat[k], lon[k]) for k in range(len(names))])
    weights = np.exp(-dist / correlation_km)
    weights /= weights.sum(axis=1, keepdims=True)

    def mix(k: int, field: str) -> FloatArray:
        stack = np.stack([getattr(w, field) for w in own])
        return np.asarray(weights[k] @ stack, dtype=np.float64)

    sources: dict[str, TwinWeatherSource] = {}
    for k, name in enumerate(names):
        base = own[k]
        cloud = np.clip(mix(k, "cloud_factor"), CLOUD_MIN, CLOUD_MAX)
        ghi = base.ghi / np.maximum(base.cloud_factor, CLOUD_MIN) * cloud
        zen = base.solar_zenith
        erbs = pvlib.irradiance.erbs(ghi, zen, times.day_of_year.to_numpy())
        dni = np.maximum(np.nan_to_num(np.asarray(erbs["dni"], dtype=np.float64), nan=0.0), 0.0)
        dhi = np.maximum(ghi - dni * np.maximum(np.cos(np.radians(zen)), 0.0), 0.0)
        weather = Weather(
            times=base.times,
            ghi=ghi,
            dni=dni,
            dhi=dhi,
            temp_air_c=mix(k, "temp_air_c"),
            wind_speed_m_s=mix(k, "wind_speed_m_s"),
            solar_zenith=zen,
            solar_azimuth=base.solar_azimuth,
            cloud_factor=cloud,
        )
        sources[name] = TwinWeatherSource(weather, seed * 31 + k, float(lat[k]), float(lon[k]))
    return WeatherLocations(sources, {n: positions[n] for n in names})
