"""Baselines: what each site would have drawn without the event, by the rules markets settle on.

Every method takes the same inputs (:class:`MeterData`, an :class:`EventWindow`, a
:class:`Calendar` of holidays and previous event days, optional :class:`SiteInfo`) and
returns a :class:`Baseline`: one baseline series per site over the event window, in kW
with the generator sign. Day-matching methods are vectorised over sites: the intervals
they need are gathered into a (sites, days, intervals) block once and averaged there.

Sources and parameters of each method are in ``docs/mv.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

import numpy as np
import pandas as pd

from gridflock.domain.messages import BoolArray, FloatArray, IntArray, StrArray
from gridflock.mv.meter import BatteryParams, Calendar, EventWindow, MeterData, SiteInfo

__all__ = [
    "METHODS",
    "Baseline",
    "Method",
    "compute_baseline",
]


class Method(StrEnum):
    """The baseline methods, by the name settlement statements print."""

    CAISO_10IN10 = "caiso_10in10"
    """CAISO 10-in-10 with the multiplicative day-of adjustment capped at ±20 %."""
    CAISO_10IN10_UNADJUSTED = "caiso_10in10_unadjusted"
    """CAISO 10-in-10 without the day-of adjustment."""
    CAISO_10IN10_ADDITIVE = "caiso_10in10_additive"
    """CAISO 10-in-10 with an additive day-of adjustment taken after sunset-like hours."""
    PJM_HIGH4OF5 = "pjm_high4of5"
    """PJM High 4 of 5 with the symmetric additive adjustment (SAA)."""
    PJM_HIGH4OF5_WSA = "pjm_high4of5_wsa"
    """PJM High 4 of 5 with the weather-sensitive adjustment (WSA)."""
    UK_DFS = "uk_dfs"
    """UK Demand Flexibility Service: mean of the previous 10 working days, in-day adjusted."""
    REGRESSION = "regression"
    """CalTRACK hourly regression on temperature and time of week (eemeter)."""
    CONTROL_GROUP = "control_group"
    """Randomised control group: held-out sites matched on kind and size."""
    BATTERY_DEVICE = "battery_device"
    """Device-level baseline for batteries: the power held before the event."""
    BATTERY_DEVICE_DAYS = "battery_device_days"
    """Device-level baseline for batteries: their power at the same hours of recent days."""
    BATTERY_DEVICE_TREND = "battery_device_trend"
    """Device-level baseline for batteries: recent days, adjusted for the season and the sun."""
    BATTERY_DEVICE_REPLAY = "battery_device_replay"
    """Device-level baseline for batteries: their control law replayed from the event's SOC."""
    WEATHER_MATCHED = "weather_matched"
    """Day matching on weather: the 5 eligible days closest in irradiance and temperature."""
    CAISO_10IN10_MGO = "caiso_10in10_mgo"
    """CAISO 10-in-10 (±20 % day-of adjustment) on gross load, generation metered (MGO)."""
    PJM_HIGH4OF5_MGO = "pjm_high4of5_mgo"
    """PJM High 4 of 5 (SAA) on gross load, generation metered (MGO)."""
    UK_DFS_MGO = "uk_dfs_mgo"
    """UK DFS (in-day adjusted) on gross load, generation metered (MGO)."""
    REGRESSION_MGO = "regression_mgo"
    """CalTRACK hourly regression (eemeter) on gross load, generation metered (MGO)."""


@dataclass(frozen=True)
class Baseline:
    """One method's baseline for each row over the event window.

    ``kw`` and ``actual_kw`` are (n_sites, n_steps) [kW, generator sign] over ``times``
    (the event window's intervals); ``valid`` marks rows for which the method had
    enough data (a row without is NaN throughout); ``adjustment`` is the day-of
    adjustment applied per row (a ratio for multiplicative methods, kW for additive
    ones, NaN where none); ``days_used`` how many history days each row averaged.
    """

    method: str
    event_id: str
    site_ids: StrArray
    times: pd.DatetimeIndex
    kw: FloatArray
    actual_kw: FloatArray
    valid: BoolArray
    adjustment: FloatArray
    days_used: IntArray
    notes: str = ""

    @property
    def step_h(self) -> float:
        """Interval length [h]."""
        if len(self.times) < 2:
            return float("nan")
        return float((self.times[1] - self.times[0]).total_seconds() / 3600.0)

    @property
    def delivered_kw(self) -> FloatArray:
        """Actual minus baseline per row and interval [kW, generator sign: > 0 is "up"]."""
        return self.actual_kw - self.kw

    def total(self) -> tuple[FloatArray, FloatArray]:
        """Baseline and actual summed over the valid rows, per interval [kW]."""
        v = self.valid
        return np.nansum(self.kw[v], axis=0), np.nansum(self.actual_kw[v], axis=0)

    def by_group(self, groups: StrArray) -> tuple[StrArray, FloatArray, FloatArray]:
        """Baseline and actual summed per group (e.g. grid node) over the valid rows.

        Returns the group names and two (n_groups, n_steps) arrays [kW].
        """
        keys = np.asarray(groups, dtype=object).astype(str)
        names, inv = np.unique(keys, return_inverse=True)
        base = np.zeros((len(names), len(self.times)))
        act = np.zeros_like(base)
        v = self.valid
        np.add.at(base, inv[v], np.nan_to_num(self.kw[v]))
        np.add.at(act, inv[v], np.nan_to_num(self.actual_kw[v]))
        return names.astype(object), base, act


MethodFn = Callable[[MeterData, EventWindow, Calendar, SiteInfo | None], Baseline]

#: The methods by name; each is ``fn(meter, event, calendar, info) -> Baseline``.
METHODS: dict[str, MethodFn] = {}


def compute_baseline(
    method: str | Method,
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar | None = None,
    info: SiteInfo | None = None,
) -> Baseline:
    """Baseline of every row of ``meter`` for ``event`` by ``method``.

    ``calendar`` lists holidays and previous event days (excluded from history);
    ``info`` is needed by the control group (kinds, sizes, held-out sites).
    """
    try:
        fn = METHODS[str(method)]
    except KeyError:
        raise ValueError(
            f"unknown baseline method {method!r}: use one of {', '.join(METHODS)}"
        ) from None
    return fn(meter, event, calendar or Calendar(), info)


# ---------------------------------------------------------------------- day matching
def _steps(meter: MeterData, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Interval starts of the meter grid within ``[start, end)``."""
    return pd.date_range(start, end, freq=pd.Timedelta(seconds=meter.step_s), inclusive="left")


def _columns(meter: MeterData, steps: pd.DatetimeIndex, what: str) -> IntArray:
    """Meter columns of ``steps``; every one must be there."""
    idx = np.asarray(meter.times.get_indexer(steps), dtype=np.int64)
    if len(idx) == 0 or (idx < 0).any():
        raise ValueError(
            f"the meter data ({meter.times[0]} to {meter.times[-1]}, step {meter.step_s:.0f} s) "
            f"does not cover the {what} ({steps[0] if len(steps) else '?'} onwards): give meter "
            "data over the event and the hours before it, on the same interval grid"
        )
    return idx


def _event_day(meter: MeterData, event: EventWindow) -> dt.date:
    day: dt.date = pd.Timestamp(event.start).tz_convert(meter.tz).date()
    return day


def _shifted_columns(meter: MeterData, steps: pd.DatetimeIndex, offsets: IntArray) -> IntArray:
    """Columns of ``steps`` moved ``offsets`` local days back on the wall clock: (D, K).

    The same local clock time on another day is a different UTC time across a DST change;
    a wall time that does not exist that day (spring forward) maps to -1 (a gap), an
    ambiguous one (fall back) to its first occurrence.
    """
    wall = steps.tz_convert(meter.tz).tz_localize(None).to_numpy()
    naive = wall[None, :] - offsets[:, None].astype(np.int64) * np.timedelta64(1, "D")
    flat = pd.DatetimeIndex(naive.ravel())
    local = flat.tz_localize(meter.tz, ambiguous=np.ones(len(flat), dtype=bool), nonexistent="NaT")
    idx = np.asarray(meter.times.get_indexer(local.tz_convert("UTC")), dtype=np.int64)
    idx[np.asarray(local.isna())] = -1
    return idx.reshape(len(offsets), len(steps))


def _gather(x: FloatArray, cols: IntArray) -> FloatArray:
    """``x[:, cols]`` with NaN where a column is missing (-1): (n, *cols.shape)."""
    out = x[:, np.maximum(cols, 0)]
    out[:, cols < 0] = np.nan
    return out


def candidate_days(
    event_day: dt.date, calendar: Calendar, lookback_days: int
) -> tuple[IntArray, list[dt.date]]:
    """Days before ``event_day`` of its type, no holiday and no event day, newest first.

    A working-day event learns from working days (Monday to Friday, not a holiday); an
    event on a weekend or holiday from weekend days and holidays. Returns the day
    offsets (1 = the day before) and the dates.
    """
    working = calendar.is_working(event_day)
    offsets, days = [], []
    for k in range(1, lookback_days + 1):
        d = event_day - dt.timedelta(days=k)
        if d in calendar.event_days or calendar.is_working(d) != working:
            continue
        offsets.append(k)
        days.append(d)
    return np.asarray(offsets, dtype=np.int64), days


def _nanmean(x: FloatArray, axis: int) -> FloatArray:
    """Mean over the finite values along ``axis``; NaN (without a warning) where none is."""
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(ok, x, 0.0).sum(axis=axis) / count, dtype=np.float64)


def _most_recent(valid: BoolArray, k: int) -> BoolArray:
    """Per row, the first ``k`` valid days (days ordered newest first)."""
    return valid & (np.cumsum(valid, axis=1) <= k)


def _mean_over_days(block: FloatArray, sel: BoolArray) -> FloatArray:
    """Mean over the selected days of a (n, D, K) block: (n, K); gaps are skipped."""
    w = sel[:, :, None] & np.isfinite(block)
    count = w.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(w, block, 0.0).sum(axis=1) / count, float)


@dataclass(frozen=True)
class _History:
    """The blocks a day-matching method works on, gathered once."""

    steps: pd.DatetimeIndex
    window: FloatArray  # (n, D, K) history over the event's clock times
    adjust: FloatArray  # (n, D, Ka) history over the adjustment window's clock times
    actual: FloatArray  # (n, K) the event day's window
    actual_adjust: FloatArray  # (n, Ka) the event day's adjustment window
    valid: BoolArray  # (n, D): the day has every interval of the window
    offsets: IntArray
    days: list[dt.date]


def _history(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    lookback_days: int,
    adjust_hours: tuple[float, float] | None,
    series: FloatArray | None = None,
) -> _History:
    """Gather the event window and the adjustment window on the event day and its history.

    ``adjust_hours = (a, b)`` is the adjustment window ``[start - a h, start - b h)``.
    """
    x = meter.net_kw if series is None else series
    steps = _steps(meter, event.start, event.end)
    cols = _columns(meter, steps, "event window")
    offsets, days = candidate_days(_event_day(meter, event), calendar, lookback_days)
    hist_cols = _shifted_columns(meter, steps, offsets)
    window = _gather(x, hist_cols)
    if adjust_hours is not None:
        a, b = adjust_hours
        adj_steps = _steps(
            meter, event.start - pd.Timedelta(hours=a), event.start - pd.Timedelta(hours=b)
        )
        adj_cols = _columns(meter, adj_steps, "adjustment window before the event")
        adjust = _gather(x, _shifted_columns(meter, adj_steps, offsets))
        actual_adjust = x[:, adj_cols]
    else:
        adjust = np.zeros((x.shape[0], len(offsets), 0))
        actual_adjust = np.zeros((x.shape[0], 0))
    valid = np.asarray(np.isfinite(window).all(axis=2) & (window.shape[2] > 0), dtype=bool)
    return _History(steps, window, adjust, x[:, cols], actual_adjust, valid, offsets, days)


def _multiplicative(
    h: _History, sel: BoolArray, base: FloatArray, cap: float
) -> tuple[FloatArray, FloatArray]:
    """Scale the baseline by actual/baseline import over the adjustment window, capped.

    The ratio is taken on import (-net kW); where the baseline's import there is not
    positive the ratio means nothing and no adjustment is made (ratio 1).
    """
    act = (
        -_nanmean(h.actual_adjust, axis=1)
        if h.actual_adjust.shape[1]
        else np.full(len(base), np.nan)
    )
    ref = -_mean_over_days(h.adjust, sel).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(ref > 1e-6, act / ref, 1.0)
    ratio = np.where(np.isfinite(ratio), np.clip(ratio, 1 - cap, 1 + cap), 1.0)
    return base * ratio[:, None], ratio


def _additive(
    h: _History, sel: BoolArray, base: FloatArray, cap: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """Shift the baseline by mean(actual - baseline) over the adjustment window [kW].

    With ``cap`` the shift is limited to that share of the baseline's mean magnitude
    over the event window.
    """
    act = (
        _nanmean(h.actual_adjust, axis=1)
        if h.actual_adjust.shape[1]
        else np.full(len(base), np.nan)
    )
    ref = _mean_over_days(h.adjust, sel).mean(axis=1)
    shift = act - ref
    if cap is not None:
        lim = cap * np.abs(base).mean(axis=1)
        shift = np.clip(shift, -lim, lim)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    return base + shift[:, None], shift


def _result(
    method: Method,
    meter: MeterData,
    event: EventWindow,
    h: _History,
    kw: FloatArray,
    sel: BoolArray,
    min_days: int,
    adjustment: FloatArray,
    notes: str = "",
) -> Baseline:
    used = sel.sum(axis=1).astype(np.int64)
    valid = (used >= min_days) & np.isfinite(kw).all(axis=1)
    kw = np.where(valid[:, None], kw, np.nan)
    return Baseline(
        str(method),
        event.event_id,
        meter.site_ids,
        h.steps,
        kw,
        h.actual,
        valid,
        np.where(valid, adjustment, np.nan),
        used,
        notes,
    )


#: CAISO: the adjustment window is the three hours ending one hour before the event.
CAISO_ADJUST_HOURS = (4.0, 1.0)
#: CAISO caps the day-of adjustment at ±20 %.
CAISO_CAP = 0.20
#: CAISO and PJM look back at most 45 days for eligible days.
LOOKBACK_DAYS = 45


def caiso_10in10(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    adjust: str = "multiplicative",
    cap: float = CAISO_CAP,
) -> Baseline:
    """CAISO 10-in-10: mean of the 10 most recent eligible weekdays (4 for weekend events).

    ``adjust`` is ``"multiplicative"`` (CAISO's day-of adjustment, the ratio of actual
    to baseline load over the adjustment window, capped at ±``cap``), ``"additive"``
    (the difference, capped at ±``cap`` of the baseline) or ``"none"``.
    """
    h = _history(meter, event, calendar, LOOKBACK_DAYS, CAISO_ADJUST_HOURS)
    k = 10 if calendar.is_working(_event_day(meter, event)) else 4
    sel = _most_recent(h.valid, k)
    base = _mean_over_days(h.window, sel)
    if adjust == "multiplicative":
        kw, adj = _multiplicative(h, sel, base, cap)
        method = Method.CAISO_10IN10
    elif adjust == "additive":
        kw, adj = _additive(h, sel, base, cap)
        method = Method.CAISO_10IN10_ADDITIVE
    elif adjust == "none":
        kw, adj = base, np.full(len(base), np.nan)
        method = Method.CAISO_10IN10_UNADJUSTED
    else:
        raise ValueError(f"adjust must be 'multiplicative', 'additive' or 'none', got {adjust!r}")
    return _result(method, meter, event, h, kw, sel, min(5, k), adj)


#: PJM's symmetric additive adjustment: the three hours ending one hour before the event.
PJM_ADJUST_HOURS = (4.0, 1.0)


def _high_x_of_y(h: _History, x: int, y: int) -> BoolArray:
    """Of each row's ``y`` most recent valid days, the ``x`` with the highest mean import."""
    sel = _most_recent(h.valid, y)
    imp = np.where(sel, -_nanmean(np.nan_to_num(h.window, nan=0.0), axis=2), np.inf)
    # drop the (count - x) lowest-import days among the selected
    order = np.argsort(imp, axis=1, kind="stable")  # lowest first; unselected (inf) last
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(imp.shape[1])[None, :].repeat(len(imp), 0), 1)
    drop = np.maximum(sel.sum(axis=1) - x, 0)
    return np.asarray(sel & (rank >= drop[:, None]), dtype=bool)


#: PJM WSA: history the WSA factor is fitted on (PJM asks for two years; we use what there is).
WSA_LOOKBACK_DAYS = 730
#: PJM WSA: a factor needs at least this many days of history.
WSA_MIN_DAYS = 5


def wsa_factor(
    load: FloatArray, temp: FloatArray, valid: BoolArray, min_days: int = WSA_MIN_DAYS
) -> FloatArray:
    """PJM's WSA factor: the OLS slope of each row's load on temperature [kW per degree].

    ``load`` is (n, D, K): each row's import at the event's clock intervals on D history
    days; ``temp`` (D, K) the temperature at the same intervals; ``valid`` (n, D) the
    days a row may learn from. Every (day, interval) pair is one observation, as in PJM's
    regression of hourly load on hourly temperature over the hours and day types where
    reductions are expected. Rows with fewer than ``min_days`` days or no temperature
    spread get 0 (no adjustment).
    """
    ok = valid[:, :, None] & np.isfinite(load) & np.isfinite(temp)[None, :, :]
    w = ok.astype(float)
    cnt = w.sum(axis=(1, 2))
    t = np.where(ok, temp[None, :, :], 0.0)
    y = np.where(ok, load, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = t.sum(axis=(1, 2)) / cnt
        ym = y.sum(axis=(1, 2)) / cnt
        dt_ = np.where(ok, t - tm[:, None, None], 0.0)
        slope = (dt_ * np.where(ok, y - ym[:, None, None], 0.0)).sum(axis=(1, 2)) / (dt_**2).sum(
            axis=(1, 2)
        )
    days = (ok.any(axis=2)).sum(axis=1)
    return np.asarray(np.where(np.isfinite(slope) & (days >= min_days), slope, 0.0), float)


def pjm_high4of5(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    weather: bool = False,
    wsa_lookback_days: int = WSA_LOOKBACK_DAYS,
) -> Baseline:
    """PJM High 4 of 5 (High 2 of 3 on weekends and holidays), adjusted.

    Of the 5 most recent eligible weekdays within 45 days, the 4 with the highest mean
    import over the event hours are averaged. The symmetric additive adjustment (SAA)
    shifts it by the actual-minus-baseline difference over the three hours ending one
    hour before the event.

    With ``weather`` PJM's Weather Sensitive Adjustment (WSA factor method) replaces the
    SAA: the WSA factor is the slope of the row's import on temperature, fitted (OLS) on
    every interval at the event's clock times of every eligible day in up to
    ``wsa_lookback_days`` of history; each interval's CBL moves by the factor times (the
    event day's temperature at that interval minus the mean temperature at that interval
    over the CBL days averaged).
    """
    h = _history(meter, event, calendar, LOOKBACK_DAYS, PJM_ADJUST_HOURS)
    working = calendar.is_working(_event_day(meter, event))
    x, y = (4, 5) if working else (2, 3)
    sel = _high_x_of_y(h, x, y)
    base = _mean_over_days(h.window, sel)
    if not weather:
        kw, adj = _additive(h, sel, base)
        return _result(Method.PJM_HIGH4OF5, meter, event, h, kw, sel, x, adj)
    if meter.temp_c is None:
        raise ValueError(
            "the weather-sensitive adjustment needs a temperature series: give MeterData.temp_c"
        )
    temp = meter.temp_c[None, :]
    long = _history(meter, event, calendar, wsa_lookback_days, None)
    tl = _history(meter, event, calendar, wsa_lookback_days, None, series=temp)
    factor = wsa_factor(-long.window, tl.window[0], long.valid)  # kW import per degree
    # the CBL days' mean temperature at each interval, and the event day's
    th = tl.window[0][: len(h.offsets)]  # the 45-day lookback's days come first
    t_cbl = _mean_over_days(np.broadcast_to(th, (len(base), *th.shape)), sel)  # (n, K)
    shift = -factor[:, None] * (tl.actual[0][None, :] - t_cbl)  # generator sign
    shift = np.where(np.isfinite(shift), shift, 0.0)
    return _result(
        Method.PJM_HIGH4OF5_WSA,
        meter,
        event,
        h,
        base + shift,
        sel,
        x,
        shift.mean(axis=1),
        "PJM WSA factor method: CBL + factor x (event - CBL days) temperature",
    )


#: UK DFS: the in-day adjustment window, [start - 4 h, start - 1 h): the three hours (six
#: half hours) before the event, ending one hour before it; no cap. See docs/mv.md.
DFS_ADJUST_HOURS = (4.0, 1.0)
#: UK DFS: how far back the 10 working days may be found.
DFS_LOOKBACK_DAYS = 60


#: A standard load profile: ``fn(times, tz)`` -> import at ``times`` [kW per kWh/year].
ProfileFn = Callable[[pd.DatetimeIndex, str], FloatArray]


def household_profile(times: pd.DatetimeIndex, tz: str) -> FloatArray:
    """BDEW's H25 standard household load profile at ``times`` [kW per kWh/year, import].

    The German standard load profile for households (BDEW 2025, via demandlib), on the
    local wall clock of ``tz``: a shape per month and day type, so it carries how the
    evening grows against the afternoon as the days shorten.
    """
    from gridflock.fleet.load_profile import household_load_shape

    key = (tz, hash(np.asarray(times.asi8).tobytes()))
    if key not in _PROFILES:
        if len(_PROFILES) >= 8:
            _PROFILES.pop(next(iter(_PROFILES)))
        x = np.asarray(household_load_shape(times, tz), dtype=np.float64)
        x.flags.writeable = False
        _PROFILES[key] = x
    return _PROFILES[key]


#: The last few H25 series computed (about 1 s each for two months at 15 min): the replay
#: applies the rule to ten past days of the same meter.
_PROFILES: dict[tuple[str, int], FloatArray] = {}


#: Fewest eligible history days a row needs for its standard-profile scale.
PROFILE_MIN_DAYS = 5


def _profile_scale(
    meter: MeterData, event: EventWindow, calendar: Calendar, x: FloatArray, lookback: int
) -> FloatArray:
    """Per row, the profile's scale: the row's metered household consumption [kWh/year].

    Its mean series over every interval of the 24 h ending at the event's end on the
    eligible days of the lookback (the event day left out), over the profile's mean
    there: the standard profile scaled to the consumption the meter recorded, as
    standard-profile settlement scales it by each customer's metered annual use. With
    ``meter.load_kw`` the metered controllable loads (EV chargers, heat pumps, water
    heaters) are taken out first: the household profile describes the base load, not
    them. Linear in the meter data. 0 (no correction) for a row with fewer than
    :data:`PROFILE_MIN_DAYS` complete days or no net import.
    """
    steps = _steps(meter, event.end - pd.Timedelta(hours=24), event.end)
    offsets, _ = candidate_days(_event_day(meter, event), calendar, lookback)
    cols = _shifted_columns(meter, steps, offsets)  # (D, K)
    base = meter.net_kw if meter.load_kw is None else meter.net_kw - meter.load_kw
    y = _gather(base, cols).reshape(meter.n_sites, -1)  # (n, D*K)
    xp = _gather(x[None, :], cols).reshape(-1)  # (D*K,)
    ok = np.isfinite(y) & np.isfinite(xp)[None, :]
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(ok, y, 0.0).sum(axis=1) / np.where(ok, xp[None, :], 0.0).sum(axis=1)
    enough = count >= PROFILE_MIN_DAYS * len(steps)
    return np.where(enough & np.isfinite(c) & (c > 0), c, 0.0)


def _profile_shift(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    h: _History,
    sel: BoolArray,
    adjust_hours: tuple[float, float],
    profile: ProfileFn,
) -> FloatArray:
    """What the rule misses of the standard profile's own change, scaled per row [kW].

    The day-matching rule (with its additive in-day shift) is applied to the profile
    itself, with each row's own selected days; its miss on the event day
    (profile - its baseline) times the row's scale (:func:`_profile_scale`) moves the
    row's baseline. Equivalent to running the rule on the load minus its scaled profile
    and adding the profile back: what the profile predicts of the season's change the
    baseline follows, the rest (the homes' own deviation) the rule handles as before.
    Generator sign: returned as a change of net kW.
    """
    x = -np.asarray(profile(meter.times, meter.tz), dtype=np.float64)  # import: negative
    pm = MeterData(np.array(["profile"], dtype=object), meter.times, x[None, :], meter.tz)
    hp = _history(pm, event, calendar, DFS_LOOKBACK_DAYS, adjust_hours)
    n = meter.n_sites
    base = _mean_over_days(np.broadcast_to(hp.window, (n, *hp.window.shape[1:])), sel)
    ref = _mean_over_days(np.broadcast_to(hp.adjust, (n, *hp.adjust.shape[1:])), sel)
    shift = hp.actual_adjust.mean(axis=1) - ref.mean(axis=1)  # (n,)
    miss = hp.actual - (base + shift[:, None])  # (n, K)
    c = _profile_scale(meter, event, calendar, x, LOOKBACK_DAYS)
    return np.asarray(c[:, None] * miss, dtype=np.float64)


def uk_dfs(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    adjust_hours: tuple[float, float] = DFS_ADJUST_HOURS,
    temperature: bool = False,
    profile: ProfileFn | None = None,
) -> Baseline:
    """UK Demand Flexibility Service: previous 10 working days, same half hour, in-day adjusted.

    The mean of each interval over the 10 most recent working days (no holidays, no
    event days; the 4 most recent weekend days or holidays for an event on one),
    shifted by the mean difference between actual and baseline over the in-day
    adjustment window ``[start - a h, start - b h)`` (three hours ending one hour before
    the event by default), without a cap.

    With ``profile`` (ours) the baseline also follows the standard load profile's change
    between the history days and the event day (:func:`_profile_shift`): the 10 days lag
    the event by a week on average, and the in-day shift carries a change of level, not
    of the evening's shape against the afternoon.
    """
    h = _history(meter, event, calendar, DFS_LOOKBACK_DAYS, adjust_hours)
    k = 10 if calendar.is_working(_event_day(meter, event)) else 4
    sel = _most_recent(h.valid, k)
    base = _mean_over_days(h.window, sel)
    kw, adj = _additive(h, sel, base)
    if temperature:
        kw = kw + _temperature_shift(meter, event, calendar, h, sel, adjust_hours)
    if profile is not None:
        kw = kw + _profile_shift(meter, event, calendar, h, sel, adjust_hours, profile)
    return _result(Method.UK_DFS, meter, event, h, kw, sel, min(5, k), adj)


def _temperature_shift(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    h: _History,
    sel: BoolArray,
    adjust_hours: tuple[float, float],
) -> FloatArray:
    """What the in-day shift misses: the change of the temperature anomaly since its window.

    The additive shift carries the load's anomaly over the adjustment window into the
    event; a temperature-driven load (cooling, heating) moves on with the temperature.
    Each interval gets ``factor x ((T_event,k - T_days,k) - (T_event,adj - T_days,adj))``
    in import, ``factor`` PJM's WSA factor of the row (:func:`wsa_factor`) and ``T_days``
    the mean over the days averaged. Generator sign: returned as a change of net kW.
    """
    if meter.temp_c is None:
        raise ValueError("the temperature adjustment needs MeterData.temp_c")
    temp = meter.temp_c[None, :]
    long = _history(meter, event, calendar, WSA_LOOKBACK_DAYS, None)
    tl = _history(meter, event, calendar, DFS_LOOKBACK_DAYS, adjust_hours, series=temp)
    t_long = _history(meter, event, calendar, WSA_LOOKBACK_DAYS, None, series=temp)
    factor = wsa_factor(-long.window, t_long.window[0], long.valid)
    n = len(factor)
    t_win = _mean_over_days(np.broadcast_to(tl.window[0], (n, *tl.window[0].shape)), sel)
    t_adj = _mean_over_days(np.broadcast_to(tl.adjust[0], (n, *tl.adjust[0].shape)), sel)
    anomaly = (tl.actual[0][None, :] - t_win) - (
        np.nanmean(tl.actual_adjust[0]) - t_adj.mean(axis=1)
    )[:, None]
    shift = -factor[:, None] * anomaly
    return np.asarray(np.where(np.isfinite(shift), shift, 0.0), float)


def _register() -> None:
    METHODS[Method.CAISO_10IN10] = caiso_10in10
    METHODS[Method.CAISO_10IN10_UNADJUSTED] = partial(caiso_10in10, adjust="none")
    METHODS[Method.CAISO_10IN10_ADDITIVE] = partial(caiso_10in10, adjust="additive")
    METHODS[Method.PJM_HIGH4OF5] = pjm_high4of5
    METHODS[Method.PJM_HIGH4OF5_WSA] = partial(pjm_high4of5, weather=True)
    METHODS[Method.UK_DFS] = uk_dfs


_register()


#: The battery baseline holds the power measured this long before the event's start.
BATTERY_HOLD_S = 900.0
#: ... ending this long before the start, so a ramp commanded ahead of the event is not in it.
BATTERY_GAP_S = 900.0


def battery_device(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    hold_s: float = BATTERY_HOLD_S,
    gap_s: float = BATTERY_GAP_S,
) -> Baseline:
    """Device-level baseline for batteries: the battery keeps doing what it did before.

    The battery's mean power over ``[start - gap - hold, start - gap)`` (each rounded up
    to whole meter intervals) is held over the window; the site's baseline is its
    metered net with the battery's measured power replaced by that held power, so only
    the battery's response is measured. Rows
    without battery telemetry (all zero or NaN) get no baseline.
    """
    if meter.battery_kw is None:
        raise ValueError(
            "the battery baseline needs per-site battery power: give MeterData.battery_kw"
        )
    steps = _steps(meter, event.start, event.end)
    cols = _columns(meter, steps, "event window")
    step = meter.step_s
    n_gap, n_hold = int(np.ceil(gap_s / step - 1e-9)), max(int(np.ceil(hold_s / step - 1e-9)), 1)
    before = _steps(
        meter,
        event.start - pd.Timedelta(seconds=(n_gap + n_hold) * step),
        event.start - pd.Timedelta(seconds=n_gap * step),
    )
    bcols = _columns(meter, before, "interval before the event")
    bat = meter.battery_kw
    held = _nanmean(bat[:, bcols], axis=1)
    actual = meter.net_kw[:, cols]
    kw = actual - bat[:, cols] + held[:, None]
    has = (np.nan_to_num(bat) != 0).any(axis=1)
    valid = has & np.isfinite(kw).all(axis=1)
    kw[~valid] = np.nan
    return Baseline(
        str(Method.BATTERY_DEVICE),
        event.event_id,
        meter.site_ids,
        steps,
        kw,
        actual,
        valid,
        np.where(valid, held, np.nan),
        np.zeros(meter.n_sites, np.int64),
        "batteries only: the power held before the event",
    )


def battery_device_days(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    days: int = 10,
) -> Baseline:
    """Device-level baseline for batteries from history: the battery's own 10-in-10.

    The battery's power at the event's clock hours averaged over the ``days`` most recent
    eligible days (same rules as CAISO's day selection) replaces its measured power in the
    site's net. A battery under self-consumption control discharges in the evening every
    day, which the pre-event power (charging from PV in the afternoon) does not show.
    """
    if meter.battery_kw is None:
        raise ValueError(
            "the battery baseline needs per-site battery power: give MeterData.battery_kw"
        )
    bat = meter.battery_kw
    h = _history(meter, event, calendar, LOOKBACK_DAYS, None, series=bat)
    sel = _most_recent(h.valid, days)
    held = _mean_over_days(h.window, sel)
    cols = _columns(meter, h.steps, "event window")
    actual = meter.net_kw[:, cols]
    kw = actual - h.actual + held
    has = (np.nan_to_num(bat) != 0).any(axis=1)
    used = sel.sum(axis=1).astype(np.int64)
    valid = has & (used >= min(5, days)) & np.isfinite(kw).all(axis=1)
    kw[~valid] = np.nan
    return Baseline(
        str(Method.BATTERY_DEVICE_DAYS),
        event.event_id,
        meter.site_ids,
        h.steps,
        kw,
        actual,
        valid,
        np.full(meter.n_sites, np.nan),
        used,
        "batteries only: their power at the same hours of recent days",
    )


#: The sun that fills a battery for the evening: irradiance over the hours before the event.
BATTERY_SUN_HOURS = 8.0
#: A battery's trend and sun slopes need at least this many history days.
BATTERY_TREND_MIN_DAYS = 10


#: The battery's own charging before the event, ``[start - 10 h, start - 4 h)`` (09:00-15:00
#: for a 19:00 event): ends before any pre-event move of a dispatcher. See docs/mv.md.
BATTERY_CHARGE_HOURS = (10.0, 4.0)

#: ``trend_days``: the trend refitted over the most recent days of the lookback (calendar
#: days before the event); the autumn's fall of the evening discharge is not linear over
#: 45 days. See docs/mv.md.
BATTERY_RECENT_TREND_DAYS = 21
#: The recent trend needs at least this many days there, else the 45-day one is kept.
BATTERY_RECENT_MIN_DAYS = 5


def _recent_trend(
    xf: FloatArray,
    y: FloatArray,
    ok: BoolArray,
    coef: FloatArray,
    fitted: BoolArray,
    recent: BoolArray,
) -> FloatArray:
    """Refit the intercept and the day slope (columns 0, 1) on the ``recent`` days only.

    The other slopes (sun, own charge) keep their 45-day fit; the intercept and the trend
    are fitted by OLS on what those leave over, on the days where ``recent`` (D,) is set.
    Rows not ``fitted`` (n,) over the 45 days, or with fewer than ``BATTERY_RECENT_MIN_DAYS``
    recent days, keep ``coef``. xf (n, D, p), y and ok (n, D), coef (n, p); returns the new
    coef.
    """
    rest = y - np.einsum("ndi,ni->nd", xf[:, :, 2:], coef[:, 2:])
    on = ok & recent[None, :]
    w = on.astype(float)
    x2 = xf[:, :, :2]
    a = np.einsum("nd,ndi,ndj->nij", w, x2, x2)
    b = np.einsum("nd,ndi,nd->ni", w, x2, np.where(on, rest, 0.0))
    with np.errstate(invalid="ignore", over="ignore"):
        det = np.abs(np.linalg.det(a))
    fit = fitted & (on.sum(axis=1) >= BATTERY_RECENT_MIN_DAYS) & (det > 1e-9)
    out = coef.copy()
    if fit.any():
        out[fit, :2] = np.linalg.solve(a[fit], b[fit][:, :, None])[:, :, 0]
    return out


#: A regressor whose spread over a row's days is below this share of its level is flat
#: (a battery full every afternoon: its charge column differs only by float32 rounding).
FLAT_REGRESSOR_REL = 1e-6
#: A battery's fit whose normal matrix is worse conditioned than this keeps the plain mean:
#: nearly collinear days gave slopes of 1e6 and a baseline of -8,000 kW at one site.
BATTERY_FIT_MAX_COND = 1e12


def _flat_columns(xf: FloatArray, w: FloatArray) -> BoolArray:
    """Regressors (beyond the intercept) that do not vary over a row's fitted days (n, p).

    A battery charged from the grid at night takes nothing in over the daytime charge
    window: that column is zero every day and would make the whole fit singular, losing
    the trend and the sun with it. Such a column is left out of that row's fit (slope 0).
    """
    cnt = np.maximum(w.sum(axis=1), 1.0)[:, None]
    mean = np.einsum("nd,ndi->ni", w, xf) / cnt
    var = np.einsum("nd,ndi->ni", w, (xf - mean[:, None, :]) ** 2) / cnt
    scale = np.maximum(np.abs(mean), 1.0)
    flat: BoolArray = np.asarray(var <= (FLAT_REGRESSOR_REL * scale) ** 2)
    flat[:, 0] = False
    return flat


def battery_held_trend(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    days: int = 10,
    charge: bool = False,
    trend_days: int | None = None,
    curve: bool = False,
) -> tuple[FloatArray, IntArray]:
    """The battery's power at the event's clock times, from recent days, moved to the event day.

    The mean over the ``days`` most recent eligible days (the 10-in-10 of
    :func:`battery_device_days`) is shifted by two slopes fitted per row (OLS) on every
    eligible day of the 45-day lookback: of the battery's mean window power on the day
    (days before the event: the season's trend) and on the day's mean irradiance over the
    ``BATTERY_SUN_HOURS`` before the event (the sun that filled the battery), each times
    the event day's value minus the mean over the days averaged. A self-consumption
    battery discharges in the evening what the afternoon's sun put in, and more each week
    as the evenings darken; the plain mean of the past lags both. Rows with fewer than
    ``BATTERY_TREND_MIN_DAYS`` days keep the plain mean. Returns (held (n, K) kW, days used).

    With ``charge`` a third slope is fitted, on the battery's own mean power over
    ``BATTERY_CHARGE_HOURS`` before the event (what it charged that morning and early
    afternoon, metered on the event day before anything was dispatched): the energy a
    self-consumption battery discharges in the evening is what it took in during the day,
    which the irradiance only approximates.

    With ``trend_days`` (e.g. ``BATTERY_RECENT_TREND_DAYS``) the intercept and the day
    slope are then refitted on the days at most ``trend_days`` before the event, the sun
    and charge slopes held (:func:`_recent_trend`): the local slope of a discharge whose
    fall speeds up through the autumn, which the 45-day slope understates. With ``curve``
    a slope on the squared day offset (/ 45) joins the fit instead: the same bend as a
    parabola over the 45 days, zero on the event day.
    """
    assert meter.battery_kw is not None
    h = _history(meter, event, calendar, LOOKBACK_DAYS, None, series=meter.battery_kw)
    sel = _most_recent(h.valid, days)
    base = _mean_over_days(h.window, sel)
    n, n_days = h.valid.shape
    cols: list[FloatArray] = [np.ones(n_days), -h.offsets.astype(float)]
    at_event = [1.0, 0.0]
    if meter.ghi_w_m2 is not None:
        sun = EventWindow(
            event.start - pd.Timedelta(hours=BATTERY_SUN_HOURS), event.start, event.event_id
        )
        g = _history(meter, sun, calendar, LOOKBACK_DAYS, None, series=meter.ghi_w_m2[None, :])
        cols.append(_nanmean(g.window[0], axis=1))
        at_event.append(float(_nanmean(g.actual[0], axis=0)))
    if curve:
        cols.append(h.offsets.astype(float) ** 2 / LOOKBACK_DAYS)
        at_event.append(0.0)
    own: list[FloatArray] = []
    if charge:
        a, b = BATTERY_CHARGE_HOURS
        pre = EventWindow(
            event.start - pd.Timedelta(hours=a), event.start - pd.Timedelta(hours=b), event.event_id
        )
        c = _history(meter, pre, calendar, LOOKBACK_DAYS, None, series=meter.battery_kw)
        own = [_nanmean(c.window, axis=2), _nanmean(c.actual, axis=1)]  # (n, D), (n,)
    x = np.stack(cols, axis=1)  # (D, p)
    y = _nanmean(h.window, axis=2)  # (n, D) the window's mean power per day
    xr = np.broadcast_to(x, (n, *x.shape))  # (n, D, p): per row, the own charge joins
    at = np.broadcast_to(np.asarray(at_event), (n, len(at_event)))
    if own:
        xr = np.concatenate([xr, own[0][:, :, None]], axis=2)
        at = np.concatenate([at, own[1][:, None]], axis=1)
    x_ok = np.isfinite(xr).all(axis=2)
    ok = h.valid & np.isfinite(y) & x_ok
    w = ok.astype(float)
    xf = np.nan_to_num(xr)
    flat = _flat_columns(xf, w)  # (n, p): e.g. no daytime charge at a night-charged battery
    xf = np.where(flat[:, None, :], 0.0, xf)
    xtx = np.einsum("nd,ndi,ndj->nij", w, xf, xf) + flat[:, :, None] * np.eye(xf.shape[2])
    xty = np.einsum("nd,ndi,nd->ni", w, xf, np.where(ok, y, 0.0))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        cond = np.linalg.cond(xtx) if n else np.zeros(0)
    fit = (ok.sum(axis=1) >= BATTERY_TREND_MIN_DAYS) & (cond < BATTERY_FIT_MAX_COND)
    coef = np.zeros((n, xr.shape[2]))
    if fit.any():
        coef[fit] = np.linalg.solve(xtx[fit], xty[fit][:, :, None])[:, :, 0]
    if trend_days is not None:
        coef = _recent_trend(xf, y, ok, coef, fit, h.offsets <= trend_days)
    cnt = sel.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_sel = np.einsum("nd,ndi->ni", sel.astype(float), xf) / cnt[:, None]  # days averaged
    shift = ((at[:, 1:] - x_sel[:, 1:]) * coef[:, 1:]).sum(axis=1)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    return base + shift[:, None], sel.sum(axis=1).astype(np.int64)


def battery_device_trend(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    days: int = 10,
) -> Baseline:
    """Device-level battery baseline: :func:`battery_held_trend` replaces the battery's power."""
    if meter.battery_kw is None:
        raise ValueError(
            "the battery baseline needs per-site battery power: give MeterData.battery_kw"
        )
    held, used = battery_held_trend(meter, event, calendar, days)
    steps = _steps(meter, event.start, event.end)
    cols = _columns(meter, steps, "event window")
    actual = meter.net_kw[:, cols]
    kw = actual - meter.battery_kw[:, cols] + held
    has = (np.nan_to_num(meter.battery_kw) != 0).any(axis=1)
    valid = has & (used >= min(5, days)) & np.isfinite(kw).all(axis=1)
    kw[~valid] = np.nan
    return Baseline(
        str(Method.BATTERY_DEVICE_TREND),
        event.event_id,
        meter.site_ids,
        steps,
        kw,
        actual,
        valid,
        np.full(meter.n_sites, np.nan),
        used,
        "batteries only: recent days' power, adjusted for the season's trend and the sun",
    )


#: Weather matching: how many of the closest days are averaged.
WEATHER_MATCH_DAYS = 5


def weather_matched(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    k: int = WEATHER_MATCH_DAYS,
) -> Baseline:
    """Day matching on weather: the ``k`` eligible days most like the event day.

    Days are compared on the mean irradiance (GHI) from four hours before the event to
    its end and on the mean temperature over the window, each scaled by its spread over
    the candidate days; the ``k`` closest eligible days (45-day lookback, holidays and
    event days excluded) are averaged, without a day-of adjustment. On PV-heavy fleets
    the afternoon's sunshine sets what the batteries hold in the evening and how much PV
    is still exporting, which the adjustment windows of CAISO and PJM only see as noise.
    """
    if meter.temp_c is None or meter.ghi_w_m2 is None:
        raise ValueError(
            "weather matching needs MeterData.temp_c (°C) and MeterData.ghi_w_m2 (W/m²)"
        )
    h = _history(meter, event, calendar, LOOKBACK_DAYS, None)
    wide = EventWindow(event.start - pd.Timedelta(hours=4), event.end, event.event_id)
    g = _history(meter, wide, calendar, LOOKBACK_DAYS, None, series=meter.ghi_w_m2[None, :])
    t = _history(meter, event, calendar, LOOKBACK_DAYS, None, series=meter.temp_c[None, :])
    ghi_d, ghi_e = _nanmean(g.window[0], axis=1), float(_nanmean(g.actual[0], axis=0))
    tmp_d, tmp_e = _nanmean(t.window[0], axis=1), float(_nanmean(t.actual[0], axis=0))

    def scaled(x: FloatArray, e: float) -> FloatArray:
        sd = float(np.nanstd(x)) if np.isfinite(x).sum() > 1 else 1.0
        return np.asarray((x - e) / (sd if sd > 0 else 1.0), dtype=np.float64)

    dist = np.hypot(scaled(ghi_d, ghi_e), scaled(tmp_d, tmp_e))  # (D,)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    score = np.where(h.valid, dist[None, :], np.inf)
    order = np.argsort(score, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(score.shape[1])[None, :].repeat(len(score), 0), 1)
    sel = np.asarray(h.valid & (rank < k), dtype=bool)
    base = _mean_over_days(h.window, sel)
    return _result(
        Method.WEATHER_MATCHED,
        meter,
        event,
        h,
        base,
        sel,
        min(3, k),
        np.full(meter.n_sites, np.nan),
        f"{k} days closest in irradiance and temperature",
    )


METHODS[Method.BATTERY_DEVICE] = battery_device
METHODS[Method.BATTERY_DEVICE_DAYS] = battery_device_days
METHODS[Method.WEATHER_MATCHED] = weather_matched
METHODS[Method.BATTERY_DEVICE_TREND] = battery_device_trend


def replay_self_consumption(
    e0_kwh: FloatArray, other_kw: FloatArray, params: BatteryParams, step_h: float
) -> FloatArray:
    """A self-consumption battery stepped from ``e0_kwh``: its power per step (n, K) [kW].

    ``other_kw`` (n, K) is the rest of each site (load and generation, generator sign);
    each step the battery is asked for ``-other_kw`` (discharge to cover the site's
    import, charge from its surplus), clipped to its power limits and to what its energy
    between ``floor_kwh`` (the reserve) and ``ceiling_kwh`` allows over the step; the
    stored energy falls by ``p / eta_discharge`` discharging and rises by ``|p| x
    eta_charge`` charging. The law of the twin's batteries (``sim.physics.battery_step``),
    in kWh per site. Generator sign: > 0 discharges. Rows without a battery give 0.
    """
    e = np.asarray(e0_kwh, dtype=np.float64).copy()
    other = np.asarray(other_kw, dtype=np.float64)
    eta_c = np.where(params.eta_charge > 0, params.eta_charge, 1.0)
    eta_d = np.where(params.eta_discharge > 0, params.eta_discharge, 1.0)
    has = params.has
    out = np.zeros_like(other)
    for k in range(other.shape[1]):
        p = np.clip(-other[:, k], -params.p_charge_max_kw, params.p_discharge_max_kw)
        can_dis = np.maximum(e - params.floor_kwh, 0.0) * eta_d / step_h
        can_chg = np.maximum(params.ceiling_kwh - e, 0.0) / (eta_c * step_h)
        p = np.where(has, np.clip(p, -can_chg, can_dis), 0.0)
        e = e - np.where(p > 0, p / eta_d, p * eta_c) * step_h
        out[:, k] = p
    return out


#: A baseline rule on one window: ``rule(meter, window) -> Baseline``.
RuleFn = Callable[[MeterData, EventWindow], Baseline]


def _days_back(ts: pd.Timestamp, tz: str, days: int) -> pd.Timestamp:
    """The same local clock time ``days`` days earlier (UTC)."""
    wall = ts.tz_convert(tz).tz_localize(None) - pd.Timedelta(days=days)
    local = wall.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return pd.Timestamp(local).tz_convert("UTC")


def rule_residuals(
    load: MeterData, event: EventWindow, calendar: Calendar, rule: RuleFn, days: int = 10
) -> FloatArray:
    """What the baseline rule missed of each row's load on its recent days: (n, days, K) kW.

    On each of the ``days`` most recent eligible days (the event's day type, no holiday
    or event day), the event's clock window is treated as an event: the rule's baseline
    of it (from that day's own history) is subtracted from the load measured there.
    Added to the event's baseline they give ``days`` load paths as far from it as the
    rule's recent misses were (its error, not only the days' spread around their mean).
    NaN for days the rule could not be computed on (too little history before them).
    """
    offsets, _ = candidate_days(_event_day(load, event), calendar, DFS_LOOKBACK_DAYS)
    k = len(_steps(load, event.start, event.end))
    out = np.full((load.n_sites, days, k), np.nan)
    for j, back in enumerate(offsets[:days].tolist()):
        past = EventWindow(
            _days_back(event.start, load.tz, back),
            _days_back(event.end, load.tz, back),
            f"{event.event_id}-rule-{back}",
        )
        try:
            b = rule(load, past)
        except ValueError:  # not enough history before that day
            continue
        if b.kw.shape[1] == k:
            out[:, j] = b.actual_kw - b.kw
    return out


def load_paths(baseline_kw: FloatArray, spread: FloatArray, gen_kw: FloatArray) -> FloatArray:
    """The rest of each site along its recent days' load paths: (n, S, K) kW, generator sign.

    ``baseline_kw`` (n, K) is the baseline gross load, ``spread`` (n, S, K) the rule's
    recent misses (:func:`rule_residuals`), ``gen_kw`` (n, K) the metered generation. A path's
    load is capped at 0 (a household's consumption never exports): the in-day shift can
    move a baseline below a day's deviation, and a path that exported would have its
    battery charge in the evening.
    """
    load = np.minimum(baseline_kw[:, None, :] + spread, 0.0)
    return np.asarray(load + gen_kw[:, None, :], dtype=np.float64)


def battery_replay(
    meter: MeterData,
    event: EventWindow,
    info: SiteInfo | None,
    other_kw: FloatArray,
    paths: FloatArray | None = None,
) -> tuple[FloatArray, BoolArray]:
    """The battery's power had there been no event: its own law replayed over the window.

    From each site's stored energy at the event's start (``MeterData.battery_soc_kwh``,
    telemetry) and its registry parameters (``SiteInfo.battery``), against ``other_kw``
    (n, K): the site's baseline load plus its generation over the window [kW, generator
    sign]. With ``paths`` (n, S, K; :func:`load_paths`) the law is replayed against
    each of the S load paths around that baseline and the powers averaged: the law is
    not linear (a battery covers a 10 kW EV session only up to its power limit, a flat
    3 kW baseline in full), so replaying the baseline alone overstates what it would
    have discharged; rows without a finite path replay ``other_kw`` alone. Returns
    (power (n, K) kW, replayed (n,)); a row without a battery, its parameters or a
    finite energy at the start is not replayed (zeros there: the caller falls back).
    """
    n = meter.n_sites
    out = np.zeros((n, other_kw.shape[1]))
    if meter.battery_soc_kwh is None or info is None or info.battery is None:
        return out, np.zeros(n, bool)
    steps = _steps(meter, event.start, event.end)
    col = _columns(meter, steps[:1], "event's start")[0]
    e0 = meter.battery_soc_kwh[:, col]
    params = info.battery
    ok = params.has & np.isfinite(e0) & np.isfinite(other_kw).all(axis=1)
    step_h = meter.step_s / 3600.0
    if ok.any():
        out[ok] = replay_self_consumption(e0[ok], other_kw[ok], params.take(ok), step_h)
    if paths is not None and ok.any():
        fine = ok[:, None] & np.isfinite(paths).all(axis=2)  # (n, S)
        row, path = np.nonzero(fine)
        if len(row):
            p = replay_self_consumption(e0[row], paths[row, path], params.take(row), step_h)
            total = np.zeros_like(out)
            np.add.at(total, row, p)
            count = np.bincount(row, minlength=n).astype(float)
            has = count > 0
            out[has] = total[has] / count[has, None]
    return out, np.asarray(ok, dtype=bool)


def battery_device_replay(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    days: int = 10,
) -> Baseline:
    """Device-level battery baseline: the battery's law replayed from its state of charge.

    The battery's measured power in the site's net is replaced by :func:`battery_replay`
    against the site's baseline consumption (``uk_dfs`` with the H25 profile on the gross
    load, as ``uk_dfs_mgo``, with the paths of its recent misses) plus its metered
    generation; rows without a state of charge or battery parameters fall back to
    :func:`battery_held_trend`.
    """
    if meter.battery_kw is None:
        raise ValueError(
            "the battery baseline needs per-site battery power: give MeterData.battery_kw"
        )
    load = meter.gross()

    def rule(m: MeterData, e: EventWindow) -> Baseline:
        return uk_dfs(m, e, calendar, info, profile=household_profile)

    gross = rule(load, event)
    cols = _columns(meter, gross.times, "event window")
    gen = meter.gen_kw[:, cols] if meter.gen_kw is not None else np.zeros_like(gross.kw)
    held, used = battery_held_trend(meter, event, calendar, days)
    paths = load_paths(gross.kw, rule_residuals(load, event, calendar, rule, days), gen)
    rep, replayed = battery_replay(meter, event, info, gross.kw + gen, paths)
    held[replayed] = rep[replayed]
    actual = meter.net_kw[:, cols]
    kw = actual - meter.battery_kw[:, cols] + held
    has = (np.nan_to_num(meter.battery_kw) != 0).any(axis=1)
    valid = has & (replayed | (used >= min(5, days))) & np.isfinite(kw).all(axis=1)
    kw[~valid] = np.nan
    return Baseline(
        str(Method.BATTERY_DEVICE_REPLAY),
        event.event_id,
        meter.site_ids,
        gross.times,
        kw,
        actual,
        valid,
        np.full(meter.n_sites, np.nan),
        gross.days_used,
        f"batteries only: their self-consumption law replayed from the state of charge at "
        f"the event's start ({int(replayed.sum())} rows); the others by recent days' power "
        "(trend and sun)",
    )


METHODS[Method.BATTERY_DEVICE_REPLAY] = battery_device_replay


#: Which day-matching method each MGO variant applies to the gross load.
MGO_INNER: dict[Method, Method] = {
    Method.CAISO_10IN10_MGO: Method.CAISO_10IN10,
    Method.PJM_HIGH4OF5_MGO: Method.PJM_HIGH4OF5,
    Method.UK_DFS_MGO: Method.UK_DFS,
    Method.REGRESSION_MGO: Method.REGRESSION,  # registered by gridflock.mv.regression
}


def metered_generation(
    meter: MeterData,
    event: EventWindow,
    calendar: Calendar,
    info: SiteInfo | None = None,
    method: Method = Method.CAISO_10IN10_MGO,
    battery_days: int = 10,
    battery: str = "charge",
    profile: ProfileFn | None = None,
    battery_trend_days: int | None = None,
    battery_curve: bool = True,
) -> Baseline:
    """A day-matching baseline on gross load, with the metered generation added back.

    After CAISO's "Metering Generator Output" (MGO) baseline for sites with
    behind-the-meter generation: the baseline is built on the site's consumption
    (``net - gen - battery``, :meth:`MeterData.gross`), day-of adjustment included, so
    the adjustment window sees the load rather than the sunshine; the generation
    measured during the event (PV and wind are not what the event dispatches) is added
    back, and the battery's part is its own device baseline: with ``battery="trend"``
    :func:`battery_held_trend`, its power at the event's clock hours over the
    ``battery_days`` most recent eligible days moved to the event day by its trend and
    the afternoon's sun; with ``"charge"`` (default) also by what it charged earlier
    that day (``battery_held_trend(charge=True)``: placebo bias 3-4 points nearer zero
    than the trend's on seasons from August, as near on seasons from June, and a lower
    RMSE on both; docs/mv.md); with ``"days"`` that plain mean; with
    ``"replay"`` the battery's self-consumption law replayed over the window from its
    stored energy at the event's start against the baseline gross load plus the metered
    generation, once per load path that the rule's misses on the ``battery_days`` recent
    days draw around that baseline, averaged (:func:`battery_replay`,
    :func:`rule_residuals`, :func:`load_paths`; rows without a state
    of charge or battery parameters in ``info`` fall back to ``"trend"``). Delivered is
    then the load's response plus the battery's. Two options bend the battery's trend
    for the season (``battery_held_trend``'s ``curve`` and ``trend_days``; placebo
    seasons in docs/mv.md): ``battery_curve`` (default) adds a squared day term, which
    from 3 August moved the whole method from -3.6 and -3.4 % to -1.2 and -0.7 % on the
    battery and PV+battery mixes (nine seasons each), and from 1 June read -1.6 and
    -1.0 % against -1.2 and -0.9 %, at an RMSE 1-2 points higher; ``battery_trend_days``
    (e.g. ``BATTERY_RECENT_TREND_DAYS``) refits the trend on that many recent days
    instead (about half the gain from August).
    """
    if battery not in ("trend", "charge", "days", "replay"):
        raise ValueError(f"battery must be 'trend', 'charge', 'days' or 'replay', got {battery!r}")
    if meter.gen_kw is None:
        raise ValueError(
            "the MGO baselines need each site's metered generation (PV, wind): give "
            "MeterData.gen_kw (zeros for sites without generation)"
        )
    if profile is not None and MGO_INNER[method] != Method.UK_DFS:
        raise ValueError("the standard-profile correction is implemented for uk_dfs_mgo only")

    def rule(m: MeterData, e: EventWindow) -> Baseline:
        if profile is not None:
            return uk_dfs(m, e, calendar, info, profile=profile)
        return METHODS[str(MGO_INNER[method])](m, e, calendar, info)

    load = meter.gross()
    gross = rule(load, event)
    cols = _columns(meter, gross.times, "event window")
    kw = gross.kw + meter.gen_kw[:, cols]
    replayed = np.zeros(meter.n_sites, bool)
    if meter.battery_kw is not None:
        if battery in ("trend", "charge", "replay"):
            held, _ = battery_held_trend(
                meter,
                event,
                calendar,
                battery_days,
                charge=battery == "charge",
                trend_days=battery_trend_days,
                curve=battery_curve,
            )
        else:
            bh = _history(meter, event, calendar, LOOKBACK_DAYS, None, series=meter.battery_kw)
            held = _mean_over_days(bh.window, _most_recent(bh.valid, battery_days))
        if battery == "replay":
            spread = rule_residuals(load, event, calendar, rule, battery_days)
            paths = load_paths(gross.kw, spread, meter.gen_kw[:, cols])
            rep, replayed = battery_replay(meter, event, info, kw, paths)
            held[replayed] = rep[replayed]
        no_bat = ~(np.nan_to_num(meter.battery_kw) != 0).any(axis=1) & ~replayed
        held[no_bat] = 0.0  # no battery: nothing to hold
        kw = kw + held
    valid = gross.valid & np.isfinite(kw).all(axis=1)
    return Baseline(
        str(method),
        event.event_id,
        meter.site_ids,
        gross.times,
        np.where(valid[:, None], kw, np.nan),
        meter.net_kw[:, cols],
        valid,
        np.where(valid, gross.adjustment, np.nan),
        gross.days_used,
        f"{MGO_INNER[method]} on gross load; metered generation added back"
        + _battery_note(meter, battery, replayed, battery_curve),
    )


def _battery_note(
    meter: MeterData, battery: str, replayed: BoolArray, battery_curve: bool = False
) -> str:
    """How an MGO baseline took the batteries' part, for the baseline's notes."""
    if meter.battery_kw is None:
        return ""
    if battery != "replay":
        bend = " with the season's curve" if battery_curve and battery != "days" else ""
        return f"; batteries at their recent days' power ({battery}{bend})"
    return (
        f"; batteries replayed from their state of charge at the event's start "
        f"({int(replayed.sum())} rows), the others at their recent days' power (trend)"
    )


for _m in (Method.CAISO_10IN10_MGO, Method.PJM_HIGH4OF5_MGO):
    METHODS[_m] = partial(metered_generation, method=_m)
METHODS[Method.UK_DFS_MGO] = partial(
    metered_generation, method=Method.UK_DFS_MGO, profile=household_profile
)
