"""The forecasting core's data types: history in, forecasts and support windows out.

Everything here is plain arrays over sites and 15-minute steps; nothing reads a clock, a
file or a database. Power is kW in the generator sign convention (``> 0`` = to the grid:
PV, wind, discharge; ``< 0`` = from the grid: load, heat pump, EV); net import is
``-net``. Times are tz-aware UTC; a step at ``t`` covers ``[t, t + 15 min)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "FLEX_HOLD_H",
    "FLEX_QUANTITIES",
    "QUANTITIES",
    "STEP",
    "FloatArray",
    "Forecast",
    "History",
    "HorizonName",
    "SiteAttributes",
    "SupportWindow",
    "WeatherSeries",
    "WeatherSource",
]

FloatArray = npt.NDArray[np.float64]
#: The model's time step.
STEP = pd.Timedelta(minutes=15)
#: Quantities the twin produces and the service stores, per site [kW, generator sign].
#: ``net`` is the site's meter (all devices, battery included). A history may hold any
#: subset, or other names (a file's columns): every series name is a quantity.
QUANTITIES = ("load", "pv", "wind", "heat_pump", "water_heater", "ev", "battery", "net")
#: The fleet's flexibility as forecast quantities: each site's up (more export or less
#: import) and down headroom [kW, >= 0] that its devices can hold for ``FLEX_HOLD_H`` from
#: the step's start, from the same power bands the dispatcher uses (``fleet.flexibility``).
FLEX_QUANTITIES = ("flex_up", "flex_down")
#: Hold of the flexibility quantities [h].
FLEX_HOLD_H = 1.0
#: ``intraday``: the next hours from the issue time, refreshed every 15 min;
#: ``day_ahead``: the whole next local day, issued the day before (before noon local).
HorizonName = Literal["intraday", "day_ahead"]

_NUMERIC_ATTRS = (
    "lat",
    "lon",
    "kwp",
    "battery_kwh",
    "wind_kw",
    "ev_kw",
    "heat_pump_kw",
    "water_heater_kw",
    "annual_kwh",
)
_TEXT_ATTRS = ("tz", "country", "grid_node", "program", "region", "weather_location")


def _utc_index(times: pd.DatetimeIndex, what: str) -> pd.DatetimeIndex:
    if not isinstance(times, pd.DatetimeIndex):
        raise TypeError(f"{what} must be a pandas DatetimeIndex")
    if times.tz is None:
        raise ValueError(f"{what} must be timezone-aware (UTC)")
    return times.tz_convert("UTC").as_unit("ns")


def _regular(times: pd.DatetimeIndex, what: str) -> None:
    if len(times) > 1:
        d = np.diff(times.asi8)
        step_ns = STEP.value
        if not np.all(d == step_ns):
            bad = int(np.argmax(d != step_ns))
            raise ValueError(
                f"{what} must be a regular 15-minute index without gaps (gaps are NaN "
                f"values instead); it breaks after {times[bad]}"
            )
    if len(times) and (times[0].value % STEP.value) != 0:
        raise ValueError(f"{what} must start on a quarter hour, got {times[0]}")


@dataclass(frozen=True, eq=False)
class SiteAttributes:
    """Static attributes of n sites, one array entry per site (features of global models).

    Attributes
    ----------
    ids : array (n,) of str
        Site ids; the forecast's keys.
    lat, lon : array (n,) [deg]
        Position (NaN if unknown).
    kwp, battery_kwh, wind_kw, ev_kw, heat_pump_kw, water_heater_kw : array (n,)
        Installed capacity by kind [kWp, kWh, kW]; 0 where the site has none, NaN if unknown.
    annual_kwh : array (n,) [kWh]
        Household annual consumption (NaN if unknown).
    tz, country, grid_node, program, region : array (n,) of str
        Local time zone (IANA) and grouping labels; "" if unknown.
    weather_location : array (n,) of str, optional
        The weather location whose forecasts the site takes (a name of a
        :class:`~gridflock.forecast.WeatherLocations`); "" (default): the nearest by lat/lon.

    """

    ids: npt.NDArray[np.object_]
    lat: FloatArray
    lon: FloatArray
    kwp: FloatArray
    battery_kwh: FloatArray
    wind_kw: FloatArray
    ev_kw: FloatArray
    heat_pump_kw: FloatArray
    water_heater_kw: FloatArray
    annual_kwh: FloatArray
    tz: npt.NDArray[np.object_]
    country: npt.NDArray[np.object_]
    grid_node: npt.NDArray[np.object_]
    program: npt.NDArray[np.object_]
    region: npt.NDArray[np.object_]
    weather_location: npt.NDArray[np.object_] | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.weather_location is None:
            object.__setattr__(self, "weather_location", np.full(n, "", dtype=object))
        ids = np.asarray(self.ids, dtype=object)
        if len(set(ids.tolist())) != n:
            raise ValueError("site ids must be unique")
        object.__setattr__(self, "ids", ids)
        for name in _NUMERIC_ATTRS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"SiteAttributes.{name} has shape {arr.shape}, need ({n},)")
            object.__setattr__(self, name, arr)
        for name in _TEXT_ATTRS:
            arr = np.asarray(getattr(self, name), dtype=object)
            if arr.shape != (n,):
                raise ValueError(f"SiteAttributes.{name} has shape {arr.shape}, need ({n},)")
            object.__setattr__(self, name, arr)

    @property
    def n(self) -> int:
        """Number of sites."""
        return len(self.ids)

    @classmethod
    def unknown(cls, ids: list[str] | npt.NDArray[np.object_], tz: str = "UTC") -> SiteAttributes:
        """Sites of which nothing is known but their ids (a file's meters)."""
        n = len(ids)
        nan = np.full(n, np.nan)
        text = np.full(n, "", dtype=object)
        return cls(
            np.asarray(ids, dtype=object),
            nan, nan, nan, nan, nan, nan, nan, nan, nan,
            np.full(n, tz, dtype=object), text, text, text, text,
        )  # fmt: skip

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> SiteAttributes:
        """From a table with an ``id`` column and any of the attribute columns.

        Missing numeric columns are NaN (unknown), missing text columns "" (tz: "UTC").
        """
        if "id" not in frame.columns:
            raise ValueError("the site table needs an 'id' column")
        n = len(frame)
        num = {
            c: frame[c].to_numpy(np.float64) if c in frame.columns else np.full(n, np.nan)
            for c in _NUMERIC_ATTRS
        }
        text = {
            c: frame[c].fillna("").astype(str).to_numpy(object)
            if c in frame.columns
            else np.full(n, "UTC" if c == "tz" else "", dtype=object)
            for c in _TEXT_ATTRS
        }
        return cls(ids=frame["id"].astype(str).to_numpy(object), **num, **text)

    def to_frame(self) -> pd.DataFrame:
        """One row per site, the columns of :meth:`from_frame`."""
        cols: dict[str, object] = {"id": self.ids}
        cols.update({c: getattr(self, c) for c in _NUMERIC_ATTRS + _TEXT_ATTRS})
        return pd.DataFrame(cols)

    def take(self, rows: npt.NDArray[np.intp]) -> SiteAttributes:
        """The sites at ``rows``, in that order."""
        return SiteAttributes(
            **{c: getattr(self, c)[rows] for c in ("ids", *_NUMERIC_ATTRS, *_TEXT_ATTRS)}
        )

    def groups(self, by: str) -> npt.NDArray[np.object_]:
        """Group label of each site for ``by`` in fleet, grid_node, program, region, country."""
        if by == "fleet":
            return np.full(self.n, "fleet", dtype=object)
        if by not in ("grid_node", "program", "region", "country"):
            raise ValueError(
                f"unknown grouping {by!r}: use fleet, grid_node, program, region or country"
            )
        return np.asarray(getattr(self, by), dtype=object)


@dataclass(frozen=True, eq=False)
class WeatherSeries:
    """Weather at one place over a UTC index: actuals, or one forecast's values.

    Columns are named arrays of ``len(times)`` values; the models use any of ``ghi``
    [W/m2], ``dni``, ``dhi`` [W/m2], ``temp_air_c`` [degC], ``wind_speed_m_s`` [m/s],
    ``cloud_factor`` [1] that are present; other columns are kept and used as features too
    (a price, say). NaN = unknown. As a :class:`WeatherSource` it is a perfect forecast
    (what happened, whatever the issue time): fine for a backtest on recorded actuals, but it
    understates the uncertainty of a real forecast (said in every report that uses it).
    """

    times: pd.DatetimeIndex
    columns: Mapping[str, FloatArray]
    lat: float = float("nan")
    lon: float = float("nan")

    def __post_init__(self) -> None:
        times = _utc_index(self.times, "WeatherSeries.times")
        object.__setattr__(self, "times", times)
        cols: dict[str, FloatArray] = {}
        for name, values in self.columns.items():
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (len(times),):
                raise ValueError(
                    f"weather column {name!r} has shape {arr.shape}, need ({len(times)},)"
                )
            cols[name] = arr
        object.__setattr__(self, "columns", cols)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names."""
        return tuple(self.columns)

    def forecast(self, issued_at: FloatArray, valid_at: FloatArray) -> dict[str, FloatArray]:
        """Values at ``valid_at`` (epoch s), whatever ``issued_at``; NaN outside the index."""
        return _lookup(self.times, self.columns, np.asarray(valid_at, dtype=np.float64))


def _lookup(
    times: pd.DatetimeIndex, columns: Mapping[str, FloatArray], valid_s: FloatArray
) -> dict[str, FloatArray]:
    """Values of ``columns`` at epoch seconds ``valid_s`` (exact or the step containing it)."""
    t_s = np.asarray(times.as_unit("ns").asi8, dtype=np.float64) / 1e9
    pos = np.searchsorted(t_s, valid_s, side="right") - 1
    step = float(np.median(np.diff(t_s))) if len(t_s) > 1 else STEP.total_seconds()
    ok = (pos >= 0) & (valid_s < (t_s[-1] + step if len(t_s) else -np.inf))
    pos = np.clip(pos, 0, max(len(t_s) - 1, 0))
    out: dict[str, FloatArray] = {}
    for name, col in columns.items():
        v = col[pos] if len(col) else np.full(len(valid_s), np.nan)
        out[name] = np.where(ok, v, np.nan)
    return out


@runtime_checkable
class WeatherSource(Protocol):
    """Where weather forecasts come from: the twin, a file of recorded forecasts, actuals.

    ``forecast`` is vectorised over pairs: for each ``(issued_at[i], valid_at[i])`` (epoch
    seconds, UTC) the value a forecast known at ``issued_at[i]`` gives for ``valid_at[i]``
    (the latest run issued at or before it); NaN where no such forecast exists. Nothing
    issued after ``issued_at[i]`` may leak into row i.
    """

    @property
    def names(self) -> tuple[str, ...]:
        """Columns this source provides (ghi, temp_air_c, wind_speed_m_s, ...)."""
        ...

    def forecast(self, issued_at: FloatArray, valid_at: FloatArray) -> dict[str, FloatArray]:
        """Forecast values for each (issue, valid) pair; see the class docstring."""
        ...


@dataclass(frozen=True, eq=False)
class History:
    """Measured history of n sites at 15 minutes.

    Attributes
    ----------
    times : DatetimeIndex (T,), UTC, regular 15 min
        Start of each step.
    series : mapping quantity -> array (n, T) [kW, generator sign]
        Mean power over each step; NaN = missing. Every array has the same shape.
    sites : SiteAttributes
        The n sites, in the arrays' row order.

    """

    times: pd.DatetimeIndex
    series: Mapping[str, FloatArray]
    sites: SiteAttributes

    def __post_init__(self) -> None:
        times = _utc_index(self.times, "History.times")
        _regular(times, "History.times")
        object.__setattr__(self, "times", times)
        shape = (self.sites.n, len(times))
        series: dict[str, FloatArray] = {}
        for name, values in self.series.items():
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != shape:
                raise ValueError(f"series {name!r} has shape {arr.shape}, need {shape}")
            series[name] = arr
        object.__setattr__(self, "series", series)

    @property
    def quantities(self) -> tuple[str, ...]:
        """Names of the series."""
        return tuple(self.series)

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return self.sites.n

    def before(self, issued_at: pd.Timestamp) -> History:
        """What was known at ``issued_at``: every step that ended by then (no look-ahead)."""
        end = int(np.searchsorted(self.times.asi8, (issued_at - STEP).value, side="right"))
        return History(
            self.times[:end], {k: v[:, :end] for k, v in self.series.items()}, self.sites
        )


@dataclass(frozen=True, eq=False)
class Forecast:
    """Quantile forecasts of one quantity for n keys (sites or groups) at 15 minutes.

    Attributes
    ----------
    quantity : str
        What is forecast (``net``, ``pv``, ...), kW in the generator sign convention.
    keys : array (n_keys,) of str
        Site ids, or group labels after :func:`aggregate`.
    times : DatetimeIndex (n_steps,), UTC
        Start of each forecast step.
    quantiles : tuple of float
        Probability levels, ascending (e.g. 0.1, 0.5, 0.9).
    values : array (n_keys, n_steps, n_q) [kW]
        Quantiles, non-decreasing along the last axis.
    issued_at : Timestamp, UTC
        Issue time: nothing measured after it was used.
    horizon : str
        ``intraday``, ``day_ahead`` or ``custom``.
    corr : array (n_steps,) [1]
        Correlation of the keys' errors at each step (learned in training), used by
        :func:`aggregate` to widen the bands of a sum properly.
    model_version : str
        The bundle that made it.
    mean : array (n_keys, n_steps) [kW], or empty
        Expected value per key and step (a site's mean is not its median when its power is
        spiky: an EV charges or not). Sums of means are what group totals centre on.
    error_ar, group_error_ar : tuple (phi, sd)
        How the errors of one key (``error_ar``), or of a group total once aggregated
        (``group_error_ar``), run on from step to step: the lag-1 correlation and the size of
        the standardised errors, learned on the calibration days; :meth:`peak_times` draws
        sample paths with them.

    """

    quantity: str
    keys: npt.NDArray[np.object_]
    times: pd.DatetimeIndex
    quantiles: tuple[float, ...]
    values: FloatArray
    issued_at: pd.Timestamp
    horizon: str
    corr: FloatArray = field(default_factory=lambda: np.zeros(0))
    model_version: str = ""
    mean: FloatArray = field(default_factory=lambda: np.zeros(0))
    error_ar: tuple[float, float] = (0.0, 1.0)
    group_error_ar: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", np.asarray(self.keys, dtype=object))
        object.__setattr__(self, "times", _utc_index(self.times, "Forecast.times"))
        vals = np.asarray(self.values, dtype=np.float64)
        shape = (len(self.keys), len(self.times), len(self.quantiles))
        if vals.shape != shape:
            raise ValueError(f"Forecast.values has shape {vals.shape}, need {shape}")
        object.__setattr__(self, "values", vals)
        corr = np.asarray(self.corr, dtype=np.float64)
        if corr.shape == (0,):
            corr = np.zeros(len(self.times))
        if corr.shape != (len(self.times),):
            raise ValueError(f"Forecast.corr has shape {corr.shape}, need ({len(self.times)},)")
        object.__setattr__(self, "corr", corr)
        mean = np.asarray(self.mean, dtype=np.float64)
        if mean.size and mean.shape != shape[:2]:
            raise ValueError(f"Forecast.mean has shape {mean.shape}, need {shape[:2]} or empty")
        object.__setattr__(self, "mean", mean if mean.size else np.zeros(0))

    @property
    def expected(self) -> FloatArray:
        """The mean (n_keys, n_steps) if known, else the median."""
        return self.mean if self.mean.size else self.quantile(0.5)

    def quantile(self, q: float) -> FloatArray:
        """Values (n_keys, n_steps) at probability ``q`` (one of ``quantiles``)."""
        for i, qq in enumerate(self.quantiles):
            if abs(qq - q) < 1e-9:
                return self.values[:, :, i]
        raise KeyError(f"quantile {q} not in {self.quantiles}")

    def peak_times(self, lowest: bool = False, tolerance_min: float = 30.0) -> pd.DatetimeIndex:
        """Per key, the step most likely within ``tolerance_min`` of the span's peak.

        The peak is the maximum (``lowest``: the minimum, e.g. the largest import of
        ``net``); see :mod:`gridflock.forecast._peak` for the sample paths of the median plus
        errors that run on as learned (``error_ar``). One estimate over the forecast's span:
        the local day of a day-ahead forecast.
        """
        from gridflock.forecast._peak import peak_index, spread

        sign = -1.0 if lowest else 1.0
        lo, hi = self.values[:, :, 0], self.values[:, :, -1]
        sigma = spread(lo, hi, self.quantiles[0], self.quantiles[-1])
        med = self.quantile(0.5)
        phi, sd = self.error_ar
        tol = max(0, round(tolerance_min / 15.0))
        idx = [
            peak_index(sign * med[k], sigma[k], phi, sd, tol, seed=k) for k in range(len(self.keys))
        ]
        return self.times[np.asarray(idx, dtype=np.int64)]

    def to_frame(self) -> pd.DataFrame:
        """Long table: key, ts, one column per quantile (``p10``, ``p50``, ...), and ``mean``."""
        n_k, n_t, _ = self.values.shape
        data: dict[str, object] = {
            "key": np.repeat(self.keys, n_t),
            "ts": np.tile(self.times, n_k),
        }
        for i, q in enumerate(self.quantiles):
            data[f"p{round(q * 100):02d}"] = self.values[:, :, i].ravel()
        if self.mean.size:
            data["mean"] = self.mean.ravel()
        return pd.DataFrame(data)


@dataclass(frozen=True)
class SupportWindow:
    """A window in which the grid is forecast to need the plant.

    Attributes
    ----------
    start, end : Timestamp, UTC
        Half-open window ``[start, end)``.
    scope : str
        The key (fleet, grid node, ...) whose forecast crosses its limit, or ``price``.
    probability : float [0..1]
        Largest probability within the window that the limit is crossed.
    kw_needed : float [kW]
        Largest median excess over the limit in the window (what the plant should shave);
        ``kw_needed_p90`` the same at the 90th percentile (to plan reserve).
    kw_needed_p90 : float [kW]
    reason : str
        Plain words: which signal, which limit.

    """

    start: pd.Timestamp
    end: pd.Timestamp
    scope: str
    probability: float
    kw_needed: float
    kw_needed_p90: float
    reason: str
