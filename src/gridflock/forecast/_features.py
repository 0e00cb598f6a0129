"""Features of the global models, built as of each row's issue time (no look-ahead).

A row is (site, target step, issue time). Everything a row sees was known at its issue time:
its own series only at steps that ended by then, weather only as forecast by a run issued by
then (the :class:`WeatherSource` contract), and the calendar and static attributes.
``tests/forecast/test_leakage.py`` proves it by altering everything after the issue time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import holidays
import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.forecast._locations import WeatherLocations
from gridflock.forecast._types import STEP, FloatArray, SiteAttributes, WeatherSource

__all__ = ["FEATURES", "Rows", "build_features", "issue_stats"]

IntArray = npt.NDArray[np.int64]
STEP_S = STEP.total_seconds()
DAY = 96  # steps per day
#: Days of the trailing window that sets each site's scale.
SCALE_DAYS = 28
#: Floor of a site's scale [kW], so that series of zeros (no PV here) stay finite.
SCALE_FLOOR_KW = 0.01

FEATURES: tuple[str, ...] = (
    # calendar (local time of the site)
    "tod", "dow", "weekend", "holiday", "doy_sin", "doy_cos", "lead_h",
    # static attributes
    "kwp", "battery_kwh", "wind_kw", "ev_kw", "heat_pump_kw", "water_heater_kw", "annual_kwh",
    "log_scale",
    # own series as of issue, divided by the site's scale
    "lag_day", "lag_1w", "lag_2w", "prof_7d", "last_1h", "mean_1d", "mean_7d",
    # weather forecast as of issue at the target time, and physics from it
    "temp", "temp_m3h", "temp_m12h", "ghi", "cloud", "wind", "clear_ghi", "elevation",
    "pv_phys", "pv_site", "wind_site",
)  # fmt: skip


@dataclass(frozen=True)
class Rows:
    """Rows to build: site index, target step index and issue step index.

    ``target`` and ``issue`` count 15-minute steps from the history's first step; the
    issue index is the number of steps whose values were known (steps ``< issue``).
    """

    site: IntArray
    target: IntArray
    issue: IntArray

    def __len__(self) -> int:
        return len(self.site)


def issue_stats(
    y: FloatArray, site: IntArray, issue: IntArray, fallback_scale: float
) -> dict[str, FloatArray]:
    """Per row: the site's scale and recent means, from the steps before its issue.

    Windows end at the issue (clipped to the data) and reach back 1 h, 1 d, 7 d and
    ``SCALE_DAYS`` (scale: mean absolute value); means skip NaN. Cumulative sums over a
    block of sites at a time keep the memory at O(block x T).
    """
    windows = {"last_1h": 4, "mean_1d": DAY, "mean_7d": 7 * DAY, "scale": SCALE_DAYS * DAY}
    r = len(site)
    out = {k: np.full(r, np.nan) for k in windows}
    if r == 0:
        return {**out, "scale": np.zeros(0)}
    n_t = y.shape[1]
    end_all = np.minimum(issue, n_t)
    lo = max(int(end_all.min()) - SCALE_DAYS * DAY, 0)
    hi = max(int(end_all.max()), lo)
    order = np.argsort(site, kind="stable")
    sites_u, starts = np.unique(site[order], return_index=True)
    bounds = [*starts.tolist(), r]
    block = 256
    for b0 in range(0, len(sites_u), block):
        su = sites_u[b0 : b0 + block]
        rows = order[bounds[b0] : bounds[min(b0 + block, len(sites_u))]]
        local = np.searchsorted(su, site[rows])
        vals = y[su, lo:hi]
        known = ~np.isnan(vals)
        zero = np.zeros((len(su), 1))
        cs = np.concatenate([zero, np.cumsum(np.where(known, vals, 0.0), axis=1)], axis=1)
        ca = np.concatenate([zero, np.cumsum(np.where(known, np.abs(vals), 0.0), axis=1)], axis=1)
        cn = np.concatenate([zero, np.cumsum(known, axis=1, dtype=np.float64)], axis=1)
        e = end_all[rows] - lo
        for name, k in windows.items():
            b = np.maximum(e - k, 0)
            c = cs if name != "scale" else ca
            cnt = cn[local, e] - cn[local, b]
            tot = c[local, e] - c[local, b]
            out[name][rows] = np.where(cnt > 0, tot / np.maximum(cnt, 1.0), np.nan)
    scale = np.where(np.isfinite(out["scale"]), out["scale"], fallback_scale)
    out["scale"] = np.maximum(scale, SCALE_FLOOR_KW)
    return out


def _gather(y: FloatArray, site: IntArray, idx: IntArray, known: IntArray) -> FloatArray:
    """``y[site, idx]`` where ``0 <= idx < known`` (known at issue), else NaN."""
    ok = (idx >= 0) & (idx < known)
    v = y[site, np.clip(idx, 0, y.shape[1] - 1)]
    return np.where(ok, v, np.nan)


@lru_cache(maxsize=32)
def _holiday_dates(country: str, years: tuple[int, ...]) -> frozenset[dt.date]:
    if not country:
        return frozenset()
    try:
        return frozenset(holidays.country_holidays(country, years=list(years)).keys())
    except NotImplementedError:
        return frozenset()


def _calendar(target_s: FloatArray, site: IntArray, sites: SiteAttributes) -> dict[str, FloatArray]:
    """Local calendar features per row, computed once per distinct (time, tz, country)."""
    n = len(target_s)
    out = {k: np.empty(n) for k in ("tod", "dow", "weekend", "holiday", "doy_sin", "doy_cos")}
    combo = np.char.add(
        sites.tz.astype(str), np.char.add("|", sites.country.astype(str))
    )  # per site
    combos, site_combo = np.unique(combo, return_inverse=True)
    row_combo = site_combo[site] if len(site) else np.zeros(0, np.int64)
    for c, name in enumerate(combos.tolist()):
        tz, country = name.split("|", 1)
        rows = np.flatnonzero(row_combo == c)
        if not len(rows):
            continue
        uniq, inv = np.unique(target_s[rows], return_inverse=True)
        local = pd.to_datetime(uniq, unit="s", utc=True).tz_convert(tz or "UTC")
        tod = (local.hour * 4 + local.minute // 15).to_numpy(np.float64)
        dow = local.day_of_week.to_numpy(np.float64)
        doy = local.day_of_year.to_numpy(np.float64)
        years = tuple(sorted(set(local.year.tolist())))
        hol_dates = _holiday_dates(country, years)
        hol = (
            np.array([d in hol_dates for d in local.date], dtype=np.float64)
            if hol_dates
            else np.zeros(len(uniq))
        )
        ang = 2.0 * np.pi * doy / 365.25
        vals = {
            "tod": tod,
            "dow": dow,
            "weekend": (dow >= 5).astype(np.float64),
            "holiday": hol,
            "doy_sin": np.sin(ang),
            "doy_cos": np.cos(ang),
        }
        for k, v in vals.items():
            out[k][rows] = v[inv]
    return out


def _tz_offset_steps(idx: IntArray, t0_s: float, tz: str) -> IntArray:
    """UTC offset of time zone ``tz`` at steps ``idx`` (from ``t0_s``), in 15-minute steps.

    One table over the span of ``idx``, so the cost is O(span + len(idx)).
    """
    if not len(idx) or tz in ("", "UTC"):
        return np.zeros(len(idx), dtype=np.int64)
    lo, hi = int(idx.min()), int(idx.max())
    utc = pd.to_datetime(t0_s + np.arange(lo, hi + 1) * STEP_S, unit="s", utc=True)
    off = utc.tz_convert(tz).tz_localize(None) - utc.tz_localize(None)
    table = (off.total_seconds().to_numpy() // STEP_S).astype(np.int64)
    return np.asarray(table[idx - lo], dtype=np.int64)


class _LocalClock:
    """Each row's site UTC offset at any step near its target, from one table per zone.

    Built once per :func:`build_features` call over the steps its lags can reach (the
    target back to ``LAG_REACH_DAYS`` before it), so a lookup is an index, not a time-zone
    conversion: at 100,000 sites the per-lag conversions cost a third of the prediction.
    """

    def __init__(
        self, target: IntArray, t0_s: float, site: IntArray, sites: SiteAttributes
    ) -> None:
        zones, site_zone = np.unique(sites.tz.astype(str), return_inverse=True)
        self.row_zone = np.asarray(site_zone, dtype=np.int64)[site]
        self.lo = int(target.min()) - LAG_REACH_DAYS * DAY if len(target) else 0
        hi = int(target.max()) if len(target) else 0
        span = np.arange(self.lo, hi + 1, dtype=np.int64)
        self.table = np.stack([_tz_offset_steps(span, t0_s, tz) for tz in zones.tolist()])
        self.single = len(zones) == 1

    def offset(self, idx: IntArray) -> IntArray:
        """UTC offsets [15-minute steps] of each row's site at steps ``idx``."""
        i = np.clip(idx - self.lo, 0, self.table.shape[1] - 1)
        if self.single:
            return np.asarray(self.table[0][i], dtype=np.int64)
        return np.asarray(self.table[self.row_zone, i], dtype=np.int64)

    def lag(self, target: IntArray, off_target: IntArray, days: IntArray | int) -> IntArray:
        """Step index of the same local wall-clock time ``days`` days before ``target``.

        ``days * 96`` steps back, moved by the change of the site's UTC offset in between:
        across a daylight-saving change "the same time last week" is 92 or 100 steps per
        day back, not 96, so a lag reads what the site did at that wall-clock time (the
        evening peak follows the clock, not UTC).
        """
        back = target - np.asarray(days, dtype=np.int64) * DAY
        return back + (off_target - self.offset(back))


#: Farthest a lag reaches back [days]: ``lag_2w``; ``prof_7d`` and ``lag_day`` stay within
#: 7 days plus the lead (at most 48 h).
LAG_REACH_DAYS = 15


def _location(sites: SiteAttributes, weather: WeatherSource) -> tuple[float, float]:
    lat = float(getattr(weather, "lat", np.nan))
    lon = float(getattr(weather, "lon", np.nan))
    if not (np.isfinite(lat) and np.isfinite(lon)) and np.isfinite(sites.lat).any():
        lat, lon = float(np.nanmean(sites.lat)), float(np.nanmean(sites.lon))
    return lat, lon


def _weather(
    weather: WeatherSource, issue_s: FloatArray, target_s: FloatArray, lat: float, lon: float
) -> dict[str, FloatArray]:
    """Weather features for distinct (issue, target) pairs (arrays of equal length)."""
    n = len(target_s)
    nan = np.full(n, np.nan)
    names = set(weather.names)
    fc = weather.forecast(issue_s, target_s)
    temp = fc.get("temp_air_c", nan)
    out: dict[str, FloatArray] = {
        "temp": temp,
        "ghi": fc.get("ghi", nan),
        "cloud": fc.get("cloud_factor", nan),
        "wind": fc.get("wind_speed_m_s", nan),
    }
    if "temp_air_c" in names:
        out["temp_m3h"] = weather.forecast(issue_s, target_s - 3 * 3600.0)["temp_air_c"]
        out["temp_m12h"] = weather.forecast(issue_s, target_s - 12 * 3600.0)["temp_air_c"]
    else:
        out["temp_m3h"] = out["temp_m12h"] = nan
    if not (np.isfinite(lat) and np.isfinite(lon)):
        out.update(clear_ghi=nan, elevation=nan, pv_phys=nan)
        return out
    import pvlib  # on first use: a second of start-up for every process that never forecasts

    # solar geometry at the step's middle, once per distinct time
    uniq, inv = np.unique(target_s, return_inverse=True)
    mid = pd.to_datetime(uniq + STEP_S / 2.0, unit="s", utc=True)
    sol = pvlib.solarposition.get_solarposition(mid, lat, lon)
    zen = sol["apparent_zenith"].to_numpy(np.float64)[inv]
    azi = sol["azimuth"].to_numpy(np.float64)[inv]
    cs = pvlib.clearsky.haurwitz(sol["apparent_zenith"])
    out["clear_ghi"] = np.asarray(cs["ghi"], dtype=np.float64)[inv]
    out["elevation"] = 90.0 - zen
    ghi = out["ghi"]
    if "dni" in fc and "dhi" in fc:
        dni, dhi = fc["dni"], fc["dhi"]
    else:
        doy = mid.day_of_year.to_numpy()[inv]
        erbs = pvlib.irradiance.erbs(np.nan_to_num(ghi), zen, doy)
        dni = np.where(np.isnan(ghi), np.nan, np.asarray(erbs["dni"], dtype=np.float64))
        dhi = np.where(np.isnan(ghi), np.nan, np.asarray(erbs["dhi"], dtype=np.float64))
    # PV physics: a reference plane (30 deg tilt, south) through pvlib's transposition and
    # PVWatts' DC model with a Faiman cell temperature; the learned model corrects it per site
    poa = pvlib.irradiance.get_total_irradiance(
        30.0, 180.0, zen, azi, np.nan_to_num(dni), np.nan_to_num(ghi), np.nan_to_num(dhi)
    )["poa_global"]
    poa = np.where(np.isnan(ghi), np.nan, np.maximum(np.asarray(poa, dtype=np.float64), 0.0))
    t_cell = pvlib.temperature.faiman(
        poa, np.nan_to_num(temp, nan=10.0), np.nan_to_num(out["wind"], nan=2.0)
    )
    out["pv_phys"] = np.asarray(
        pvlib.pvsystem.pvwatts_dc(poa, t_cell, 1.0, -0.004), dtype=np.float64
    )  # kW per kWp
    return out


def _weather_rows(
    weather: WeatherSource, lat: float, lon: float, t0_s: float, issue: IntArray, target: IntArray
) -> dict[str, FloatArray]:
    """Weather features of rows at one place, computed once per distinct (issue, target)."""
    key = issue.astype(np.int64) * (1 << 22) + (target - issue).astype(np.int64)
    ukey, inv = np.unique(key, return_inverse=True)
    u_issue = ukey >> 22
    u_target = u_issue + (ukey & ((1 << 22) - 1))
    wx = _weather(
        weather,
        np.asarray(t0_s + u_issue * STEP_S, dtype=np.float64),
        np.asarray(t0_s + u_target * STEP_S, dtype=np.float64),
        lat,
        lon,
    )
    return {name: v[inv] for name, v in wx.items()}


def build_features(
    y: FloatArray,
    t0_s: float,
    sites: SiteAttributes,
    rows: Rows,
    weather: WeatherSource,
    fallback_scale: float,
) -> tuple[npt.NDArray[np.float32], FloatArray]:
    """The feature matrix (rows, len(FEATURES)) and each row's scale [kW].

    ``y`` (n_sites, T) is the quantity's history from ``t0_s`` (epoch s); a row's own-series
    features read only ``y[site, :issue]``.
    """
    site, target, issue = rows.site, rows.target, rows.issue
    r = len(site)
    known = np.minimum(issue, y.shape[1])
    target_s = np.asarray(t0_s + target * STEP_S, dtype=np.float64)
    st = issue_stats(y, site, issue, fallback_scale)
    scale = st["scale"]
    cols: dict[str, FloatArray] = {}
    cols.update(_calendar(target_s, site, sites))
    cols["lead_h"] = np.asarray((target - issue) * STEP_S / 3600.0, dtype=np.float64)
    for name in (
        "kwp", "battery_kwh", "wind_kw", "ev_kw", "heat_pump_kw", "water_heater_kw", "annual_kwh"
    ):  # fmt: skip
        cols[name] = getattr(sites, name)[site]
    cols["log_scale"] = np.log(scale)
    ahead = target - issue  # >= 0
    back_days = ahead // DAY + 1  # most recent day whose same time of day is known
    # lags at the same local wall-clock time (a day has 92 or 100 steps on DST changes)
    clock = _LocalClock(target, t0_s, site, sites)
    off = clock.offset(target)

    def lag(days: IntArray | int) -> FloatArray:
        return _gather(y, site, clock.lag(target, off, days), known)

    cols["lag_day"] = lag(back_days) / scale
    cols["lag_1w"] = lag(7) / scale
    cols["lag_2w"] = lag(14) / scale
    acc = np.zeros(r)
    cnt = np.zeros(r)
    for k in range(7):
        v = lag(back_days + k)
        ok = ~np.isnan(v)
        acc[ok] += v[ok]
        cnt += ok
    cols["prof_7d"] = np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan) / scale
    for name in ("last_1h", "mean_1d", "mean_7d"):
        cols[name] = st[name] / scale

    # weather: per location, once per distinct (issue, target) pair
    if isinstance(weather, WeatherLocations):
        loc = weather.assign(sites)[site] if r else np.zeros(0, dtype=np.intp)
        for i in np.unique(loc).tolist():
            rows_i = np.flatnonzero(loc == i)
            src, lat, lon = weather.source(int(i))
            wx = _weather_rows(src, lat, lon, t0_s, issue[rows_i], target[rows_i])
            for name, v in wx.items():
                cols.setdefault(name, np.full(r, np.nan))[rows_i] = v
        if not r:
            cols.update(_weather_rows(weather, np.nan, np.nan, t0_s, issue, target))
    else:
        lat, lon = _location(sites, weather)
        cols.update(_weather_rows(weather, lat, lon, t0_s, issue, target))
    cols["pv_site"] = cols["pv_phys"] * np.nan_to_num(cols["kwp"]) / scale
    cols["wind_site"] = (
        np.nan_to_num(cols["wind_kw"]) * np.clip((cols["wind"] / 11.0) ** 3, 0.0, 1.0) / scale
    )
    x = np.empty((r, len(FEATURES)), dtype=np.float32)
    for i, name in enumerate(FEATURES):
        x[:, i] = cols[name]
    return x, scale
