"""Rolling-origin backtests: day-ahead and intraday, against seasonal naive and persistence.

The final ``test_days`` local days are forecast as they would have been: each day-ahead
forecast is issued on D-1 at the issue hour, each intraday one at its origin, from models
trained only on what was measured before the first origin of their block (retrained every
``retrain_every_days``; expanding window). Two references are scored on the same points:
seasonal naive (the same time a week earlier) and persistence (day-ahead: the latest known
value at the same time of day; intraday: the last known value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from gridflock.forecast import _metrics as m
from gridflock.forecast._aggregate import aggregate, group_masks
from gridflock.forecast._features import DAY, _tz_offset_steps
from gridflock.forecast._model import (
    ModelBundle,
    TrainConfig,
    _day_ahead_origins,
    _index,
    _market_tz,
    predict,
    train,
)
from gridflock.forecast._peak import peak_index, spread
from gridflock.forecast._types import STEP, FloatArray, History, WeatherSeries, WeatherSource

__all__ = ["BacktestConfig", "BacktestReport", "SeriesResult", "backtest", "score"]


@dataclass(frozen=True)
class BacktestConfig:
    """Which origins to test and how often to retrain.

    Attributes
    ----------
    test_days : int
        Final local days held out; every day-ahead origin (D-1 at the issue hour) and every
        intraday origin (each ``intraday_every_h`` within those days) is forecast with models
        trained only on data before it.
    retrain_every_days : int
        Models are retrained (expanding window) every this many test days.
    intraday_every_h : float [h]
        Spacing of intraday origins in the backtest (the service issues every 15 min; a
        coarser spacing gives the same statistics faster).
    horizons : tuple of str
        ``day_ahead`` and/or ``intraday``.
    groups : tuple of str
        Groupings whose totals are scored too (``fleet``, ``grid_node``, ...); ignored for
        a history of one site.
    train : TrainConfig
        How each model is trained.

    """

    test_days: int = 14
    retrain_every_days: int = 7
    intraday_every_h: float = 3.0
    horizons: tuple[str, ...] = ("day_ahead", "intraday")
    groups: tuple[str, ...] = ("fleet",)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.test_days < 1 or self.retrain_every_days < 1 or self.intraday_every_h <= 0:
            raise ValueError("test_days, retrain_every_days and intraday_every_h must be > 0")
        bad = set(self.horizons) - {"day_ahead", "intraday"}
        if bad or not self.horizons:
            raise ValueError(f"horizons must be day_ahead and/or intraday, got {self.horizons}")


@dataclass
class SeriesResult:
    """Scores of one series (a quantity of one site, all sites pooled, or a group total).

    ``metrics`` maps names (mae, nmae, rmse, pinball, crps, coverage, peak_time_error_min,
    peak_within_30min, mae_seasonal_naive, mae_persistence, skill_seasonal_naive,
    skill_persistence, relative_mae_p1_p99, one_minus_wape, n_points) to values; ``times``,
    ``y`` (actual) and ``p`` (quantiles, (n, n_q)) are the scored day-ahead points in time
    order, for plots (empty for pooled sites and intraday).
    """

    series: str
    horizon: str
    metrics: dict[str, float]
    times: pd.DatetimeIndex
    y: FloatArray
    p: FloatArray


@dataclass
class BacktestReport:
    """Every series' scores, plus notes on how they were made (perfect weather, ...)."""

    results: list[SeriesResult]
    quantiles: tuple[float, ...]
    notes: list[str] = field(default_factory=list)
    bundles: list[ModelBundle] = field(default_factory=list, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per series and horizon, one column per metric."""
        rows = [{"series": r.series, "horizon": r.horizon, **r.metrics} for r in self.results]
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        """Metrics and notes as plain JSON types (NaN as null)."""

        def clean(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 6)

        return {
            "quantiles": list(self.quantiles),
            "notes": list(self.notes),
            "results": [
                {
                    "series": r.series,
                    "horizon": r.horizon,
                    "metrics": {k: clean(v) for k, v in r.metrics.items()},
                }
                for r in self.results
            ],
        }


def _peak_sign(y: FloatArray, quantity: str = "") -> float:
    """+1 if the series' peaks are its maxima (export, PV), -1 if its minima (import, load).

    ``net`` always peaks at its largest import (the grid's need, the issue's target), even
    on a sunny day whose mean is an export; other quantities by the sign of ``y``'s mean.
    """
    if quantity == "net":
        return -1.0
    with np.errstate(all="ignore"):
        mean = float(np.nanmean(y)) if np.isfinite(y).any() else 0.0
    return -1.0 if mean < 0 else 1.0


def score(
    y: FloatArray,
    p: FloatArray,
    quantiles: tuple[float, ...],
    naive: FloatArray,
    persistence: FloatArray,
    *,
    day_blocks: int = 0,
) -> dict[str, float]:
    """Every metric of one series: ``y`` (k, n) actuals, ``p`` (k, n, n_q), references (k, n).

    ``k`` rows are independent series (sites) or origins; if ``day_blocks`` > 0 each row of
    ``n`` is ``n / day_blocks`` whole days for the peak timing (day-ahead).
    """
    qs = quantiles
    mid = qs.index(0.5)
    med = p[..., mid]
    out = {
        "n_points": float(np.sum(~np.isnan(y))),
        "mae": m.mae(y, med),
        "nmae": m.nmae(y, med),
        "rmse": m.rmse(y, med),
        "pinball": m.pinball(y, p, qs),
        "crps": m.crps_quantiles(y, p, qs),
        "coverage": m.coverage(y, p[..., 0], p[..., -1]),
        "mae_seasonal_naive": m.mae(y, naive),
        "mae_persistence": m.mae(y, persistence),
        "relative_mae_p1_p99": m.relative_mae_range(y, med),
        "one_minus_wape": m.one_minus_wape(y, med),
    }
    out["skill_seasonal_naive"] = m.skill(out["mae"], out["mae_seasonal_naive"])
    out["skill_persistence"] = m.skill(out["mae"], out["mae_persistence"])
    if day_blocks > 0:
        errs = []
        for row in range(y.shape[0]):
            sign = _peak_sign(y[row])
            for d in range(day_blocks):
                n = y.shape[1] // day_blocks
                sl = slice(d * n, (d + 1) * n)
                errs.append(m.peak_timing_error_min(sign * y[row, sl], sign * med[row, sl], n))
        e = np.concatenate(errs) if errs else np.zeros(0)
        e = e[~np.isnan(e)]
        out["peak_time_error_min"] = float(np.median(e)) if len(e) else float("nan")
        out["peak_within_30min"] = float(np.mean(e <= 30.0)) if len(e) else float("nan")
    else:
        out["peak_time_error_min"] = float("nan")
        out["peak_within_30min"] = float("nan")
    return out


def _references(
    y: FloatArray,
    issue: int,
    targets: np.ndarray,
    horizon: str,
    t0_s: float = 0.0,
    tz: str = "UTC",
) -> tuple[FloatArray, FloatArray]:
    """Seasonal naive and persistence (n_sites, len(targets)) as known at ``issue``.

    "The same time" a week or some days earlier is the same local wall-clock time in ``tz``
    (steps from ``t0_s``, epoch seconds): 92 or 100 steps per day across a DST change.
    """
    n_t = y.shape[1]

    def at(idx: np.ndarray) -> FloatArray:
        ok = (idx >= 0) & (idx < min(issue, n_t))
        return np.where(ok[None, :], y[:, np.clip(idx, 0, n_t - 1)], np.nan)

    targets = np.asarray(targets, dtype=np.int64)
    off = _tz_offset_steps(targets, t0_s, tz)

    def back(days: np.ndarray | int) -> np.ndarray:
        b = targets - np.asarray(days, dtype=np.int64) * DAY
        return b + (off - _tz_offset_steps(b, t0_s, tz))

    naive = at(back(7))
    if horizon == "intraday":
        pers = np.repeat(at(np.array([issue - 1]))[:, :1], len(targets), axis=1)
    else:
        pers = at(back((targets - issue) // DAY + 1))
    return naive, pers


def backtest(
    history: History,
    weather: WeatherSource,
    config: BacktestConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BacktestReport:
    """Rolling-origin backtest of every series of ``history`` (and the configured groups).

    ``progress(phase, done, total)`` is called as test days are forecast (phase ``train``
    before each retraining, ``forecast`` after each day).
    """
    cfg = config or BacktestConfig()
    tcfg = cfg.train
    quantities = tcfg.quantities or history.quantities
    tz = _market_tz(history.sites)
    n_t = len(history.times)
    lo = max(n_t - cfg.test_days * DAY - DAY, 0)
    origins = _day_ahead_origins(history.times, tz, tcfg.issue_hour_local, lo, n_t)
    origins = origins[-cfg.test_days :]
    if not origins:
        raise ValueError("the history is too short for a backtest: no whole test day")
    first_target = origins[0][1]
    if first_target < 3 * DAY:
        raise ValueError(
            f"the history has {first_target / DAY:.1f} days before the first test day; a "
            "backtest needs at least 3 (and 2+ weeks for weekly patterns): lower --test-days "
            "or give a longer file"
        )
    notes = []
    if isinstance(weather, WeatherSeries):
        notes.append(
            "weather: recorded actuals used as forecasts (perfect weather forecasts): the "
            "scores are better than a live forecast would reach"
            if weather.names
            else "weather: none; the models use the calendar and the series' own history"
        )
    multi = history.n_sites > 1
    masks = group_masks(history.sites, cfg.groups) if multi else {}
    qs = tcfg.quantiles
    # collected per (series, horizon): lists of y, p, naive, persistence, and plot points
    acc: dict[tuple[str, str], dict[str, list[Any]]] = {}

    def add(
        key: tuple[str, str],
        y: Any,
        p: Any,
        nv: Any,
        ps: Any,
        times: Any,
        ar: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        slot = acc.setdefault(key, {"y": [], "p": [], "nv": [], "ps": [], "t": [], "ar": []})
        slot["ar"].append(ar)
        slot["y"].append(y)
        slot["p"].append(p)
        slot["nv"].append(nv)
        slot["ps"].append(ps)
        slot["t"].append(times)

    bundles: list[ModelBundle] = []
    t0 = history.times[0]
    t0_s = t0.timestamp()
    step_h = cfg.intraday_every_h
    for b0 in range(0, len(origins), cfg.retrain_every_days):
        block = origins[b0 : b0 + cfg.retrain_every_days]
        first_issue = min(block[0][0], block[0][1])
        cut = t0 + first_issue * STEP
        train_hist = history.before(cut)
        if progress is not None:
            progress("train", b0, len(origins))
        bundle = train(train_hist, weather, replace(tcfg, quantities=tuple(quantities)))
        bundles.append(bundle)
        for issue, j0, j1 in block:
            jobs: list[tuple[str, int, pd.Timestamp, Any]] = []
            if "day_ahead" in cfg.horizons:
                jobs.append(("day_ahead", issue, t0 + issue * STEP, "day_ahead"))
            if "intraday" in cfg.horizons:
                for a in range(j0, j1, max(1, round(step_h * 4))):
                    jobs.append(("intraday", a, t0 + a * STEP, "intraday"))
            for horizon, a, issued_at, hz in jobs:
                fcs = predict(bundle, history, weather, issued_at, hz, tz=tz)
                for q, fc in fcs.items():
                    targets = np.array([_index(t0, t) for t in fc.times])
                    inside = targets < n_t
                    if not inside.all():
                        continue
                    y = history.series[q][:, targets]
                    nv, ps = _references(history.series[q], a, targets, horizon, t0_s, tz)
                    name = q if not multi else f"{q}@sites"
                    times_ = fc.times if not multi else None
                    add((name, horizon), y, fc.values, nv, ps, times_, fc.error_ar)
                    for gname, mask in masks.items():
                        g = aggregate(fc, {gname: mask})
                        gy = _group_total(y[mask])
                        gnv = _group_total(nv[mask])
                        gps = _group_total(ps[mask])
                        add(
                            (f"{q}@{gname}", horizon),
                            gy[None],
                            g.values[:1],
                            gnv[None],
                            gps[None],
                            fc.times,
                            g.error_ar,
                        )
            if progress is not None:
                progress("forecast", origins.index((issue, j0, j1)) + 1, len(origins))
    results = []
    for (series, horizon), s in acc.items():
        if horizon == "day_ahead":
            # day-ahead days differ in length on DST days: pad each to 100 steps for peaks
            ys = np.concatenate(s["y"], axis=1)
            ps_ = np.concatenate(s["p"], axis=1)
            nv = np.concatenate(s["nv"], axis=1)
            pe = np.concatenate(s["ps"], axis=1)
            metrics = score(ys, ps_, qs, nv, pe)
            peak = _peak_days(s["y"], s["p"], qs, s["ar"], series.split("@")[0])
            metrics.update(peak)
        else:
            ys = np.concatenate(s["y"], axis=1)
            ps_ = np.concatenate(s["p"], axis=1)
            nv = np.concatenate(s["nv"], axis=1)
            pe = np.concatenate(s["ps"], axis=1)
            metrics = score(ys, ps_, qs, nv, pe)
        plot = horizon == "day_ahead" and s["t"][0] is not None and ys.shape[0] == 1
        times = (
            pd.DatetimeIndex(np.concatenate([np.asarray(t) for t in s["t"]]))
            if plot
            else pd.DatetimeIndex([], tz="UTC")
        )
        results.append(
            SeriesResult(
                series,
                horizon,
                metrics,
                times,
                ys[0] if plot else np.zeros(0),
                ps_[0] if plot else np.zeros((0, len(qs))),
            )
        )
    results.sort(key=lambda r: (r.series, r.horizon))
    return BacktestReport(results, qs, notes, bundles)


#: A group total is scored only at steps where at least this share of its sites is known.
MIN_KNOWN_SHARE = 0.95


def _group_total(block: Any) -> FloatArray:
    """Total of a group's sites (n_sites, n) per step, scaled up for missing sites.

    The missing ones count as the known sites' mean (telemetry gaps); a step with fewer than
    ``MIN_KNOWN_SHARE`` of the sites known is NaN.
    """
    known = ~np.isnan(block)
    share = known.mean(axis=0) if len(block) else np.zeros(block.shape[1])
    total = np.nansum(block, axis=0) / np.maximum(share, 1e-12)
    return np.asarray(np.where(share >= MIN_KNOWN_SHARE, total, np.nan), dtype=np.float64)


def _peak_days(
    ys: list[Any],
    ps: list[Any],
    qs: tuple[float, ...],
    ars: list[tuple[float, float]],
    quantity: str = "",
) -> dict[str, float]:
    """Peak timing over every (row, day) of day-ahead forecasts (one list item per day).

    ``peak_*`` score the forecast's peak time (:func:`gridflock.forecast._peak.peak_index`
    with the error process learned in training), ``peak_*_p50`` the time of the median's
    own maximum, for comparison. Which extreme is the peak is fixed per row over all days
    (:func:`_peak_sign`; ``net``: the largest import), not chosen day by day from the
    actuals: a sunny day's export maximum is not the import peak the target asks for.
    """
    mid = qs.index(0.5)
    errs, errs_p50 = [], []
    signs = [_peak_sign(row, quantity) for row in np.concatenate(ys, axis=1)] if len(ys) else []
    for y, p, (phi, sd) in zip(ys, ps, ars, strict=True):
        sigma = spread(p[..., 0], p[..., -1], qs[0], qs[-1])
        for row in range(y.shape[0]):
            sign = signs[row]
            med = sign * p[row, :, mid]
            if np.isnan(y[row]).any() or np.isnan(med).any():
                errs.append(np.array([np.nan]))
                errs_p50.append(np.array([np.nan]))
                continue
            true = int(np.argmax(sign * y[row]))
            est = peak_index(med, sigma[row], phi, sd, tolerance=2, seed=row)
            errs.append(np.array([abs(est - true) * 15.0]))
            errs_p50.append(np.array([abs(int(np.argmax(med)) - true) * 15.0]))
    out: dict[str, float] = {}
    for suffix, parts in (("", errs), ("_p50", errs_p50)):
        e = np.concatenate(parts) if parts else np.zeros(0)
        e = e[~np.isnan(e)]
        out[f"peak_time_error_min{suffix}"] = float(np.median(e)) if len(e) else float("nan")
        out[f"peak_within_30min{suffix}"] = float(np.mean(e <= 30.0)) if len(e) else float("nan")
        out[f"peak_days{suffix}"] = float(len(e))
    return out
