"""Placebo bias of the linear baselines over many twin seasons, from the participants' total.

A season without events is all placebo days: nothing is dispatched, the true effect of
every day is zero, and the twin needs no dispatcher nor shadow (``run_meters`` with no
events). The linear methods (UK DFS with its uncapped in-day shift, its MGO variant with
the battery's trend- and sun-adjusted device baseline, the unadjusted CAISO 10-in-10,
weather matching) give, summed over sites that all have complete data, exactly what
they give on the sites' summed meter (``tests/mv/test_placebo_aggregate.py`` checks it
against the per-site computation): so each season is kept as one aggregate row and every
method runs on it in milliseconds a day. Many seasons (weather seeds, each with its own
fleet draw) give thousands of placebo days per mix.

    # make (or reuse) the seasons' aggregates, in the background, resumable
    PYTHONPATH=$PWD/src OPENBLAS_NUM_THREADS=1 /work/main/.venv/bin/python \\
        benchmarks/bench_mv_placebo.py run --mixes ev_heavy --seeds 100-123 --dir /tmp/mvp
    # the table, pooled over every season in --dir
    PYTHONPATH=$PWD/src /work/main/.venv/bin/python benchmarks/bench_mv_placebo.py table \\
        --dir /tmp/mvp

``uk_dfs_mgo`` is the library's default (with the H25 standard-profile correction, scaled
to the base load: the gross load without the metered EV chargers, heat pumps and water
heaters); ``uk_dfs_mgo profile on all gross`` scales it to all the gross load (before);
``uk_dfs_mgo no profile`` is the plain DFS rule on gross load. The table also reports the
gross-load part with and without the correction (``gross_err``, ``gross_plain_err``) and
``h25_plain_err``: the plain rule applied to the participants' base load alone (sum of
annual kWh x the H25 profile, no noise), the part of the error the profile's season
explains. ``run --first-day`` starts the seasons on another date (keep them in their own
``--dir``). ``run --stagger`` moves each season's events by its seed (the first event on
working day ``seed mod every``), so that seasons do not share their event dates and what
those dates have in common (the weekdays, the household profile's calendar) averages out
over seasons; keep those in their own ``--dir`` too.

The battery's replay from its state of charge (``uk_dfs_mgo`` with ``battery="replay"``)
is not linear: each season also keeps its battery participants per site, and ``table``
replays them per site and day (cached next to the season, ``*.replay<version>``) and adds
``uk_dfs_mgo battery=replay`` and the ``bat_replay_*`` columns (see ``replay_days``). The
default ``battery="charge"`` is per site too (``uk_dfs_mgo battery=charge per site``,
``bat_charge_sites_err``), and so are its two bent-trend variants (``bent_trend_days``):
``battery_trend_days`` (``uk_dfs_mgo battery=charge recent trend per site``,
``bat_charge_recent_sites_err``) and ``battery_curve`` (``... charge curve per site``,
``bat_charge_curve_sites_err``).

Errors are in % of the nominal delivery (0.3 kW x participants, the event study's ask,
about 270 kW per 1,000 homes). Standard errors are given two ways: over days (treats days
as independent) and over seasons (the spread of the season means / sqrt(seasons)), the
honest one, since neighbouring days share baseline days and weather.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import bench_mv_accuracy as acc
from gridflock.mv import (
    Calendar,
    EventWindow,
    MeterData,
    Method,
    SiteInfo,
    assign_control_group,
)
from gridflock.mv import baselines as bl
from gridflock.sim.meters import run_meters, site_info

Fn = Callable[[MeterData, EventWindow, Calendar], float]


def _parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def make_season(
    mix: str,
    homes: int,
    days: int,
    seed: int,
    folder: Path,
    every: int = 0,
    first_day: dt.date = acc.FIRST_DAY,
    stagger: bool = False,
) -> Path:
    """Run one season and keep the participants' aggregate meters (with and without the VPP).

    ``every = 0``: no events (every working day after the history is a placebo day);
    otherwise an event every ``every``-th working day, as in the season study. The season
    starts on local ``first_day`` (keep seasons of other starts in their own folder: the
    file name does not carry it).
    """
    path = folder / f"{mix}_{homes}_{days}_{every}_{seed}.pkl"
    if path.exists():
        return path
    spec = acc.mix_fleet(mix, homes, seed)
    info = site_info(spec)
    control = assign_control_group(info.kinds, info.size, acc.CONTROL_SHARE, seed)
    tz = str(spec.sites["tz"].iloc[0])
    phase = seed % every if every and stagger else 0
    events = acc.plan(tz, days, every, first_day, phase)[0] if every else []
    t0 = time.perf_counter()
    c0 = time.process_time()
    run = run_meters(spec, first_day, days, events, control=control, seed=seed)
    part = ~control
    if not events:
        gap = float(np.abs(run.actual.net_kw - run.shadow.net_kw).max())
        assert gap < 1e-6, f"no events, yet the meters differ from the shadow by {gap} kW"
    label = np.full(int(part.sum()), "participants")
    assert run.info.battery is not None
    rows = part & run.info.battery.has
    bat_sites = run.actual.take(rows)
    kept = {
        "agg": run.actual.take(part).aggregate(label),
        "shadow": run.shadow.take(part).aggregate(label),
        "event_days": list(run.event_days),
        "n": int(part.sum()),
        "base_kwh": float(info.size[part].sum()),
        "tz": tz,
        "twin_s": time.perf_counter() - t0,
        "twin_cpu_s": time.process_time() - c0,
        "first_day": first_day,
        # the participants holding a battery, per site (float32): the replay is not linear
        "sites": {
            "ids": bat_sites.site_ids,
            **{
                name: np.asarray(getattr(bat_sites, name), np.float32)
                for name in ("net_kw", "gen_kw", "battery_kw", "battery_soc_kwh", "load_kw")
            },
            "battery": run.info.battery.take(rows),
        },
    }
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(kept, f)
    tmp.rename(path)
    return path


#: Bump when what :func:`replay_days` computes changes: its per-season cache is keyed on it.
REPLAY_VERSION = 5


def _sites_meter(d: dict[str, object], agg: MeterData) -> tuple[MeterData, SiteInfo]:
    """The battery participants' per-site meters and parameters kept by :func:`make_season`."""
    sites = d["sites"]
    assert isinstance(sites, dict)
    m = MeterData(
        sites["ids"],
        agg.times,
        sites["net_kw"],
        agg.tz,
        agg.temp_c,
        agg.ghi_w_m2,
        sites["battery_kw"],
        sites["gen_kw"],
        load_kw=sites.get("load_kw"),  # seasons made before it was kept: all gross scales
        battery_soc_kwh=sites["battery_soc_kwh"],
    )
    n = m.n_sites
    info = SiteInfo(np.full(n, "battery", dtype=object), np.ones(n), battery=sites["battery"])
    return m, info


def replay_days(
    m: MeterData, info: SiteInfo, days: list[dt.date], cal: Calendar
) -> dict[str, dict[str, np.ndarray]]:
    """Per day: the battery participants' summed replay baselines [kW per interval].

    The replay (``uk_dfs_mgo``'s ``battery="replay"``) is not linear in the meter data, so
    it runs per site and only its sum is kept: ``held`` as the method does it (the law
    averaged over the load paths the H25-corrected DFS rule's misses on the 10 recent
    days draw around the event's baseline gross load, plus the metered generation; paths
    capped at no export; the trend baseline where a site could not be replayed),
    ``spread`` the same with the 10 days' deviations from their mean as the paths,
    ``mean_path`` against the baseline alone, and ``measured`` against the measured rest
    of the site (the replay's physics alone: on a day without an event it is the
    battery's own power).
    """
    assert m.battery_kw is not None
    assert m.gen_kw is not None
    load = m.gross()
    seen: dict[pd.Timestamp, bl.Baseline] = {}

    def rule(meter: MeterData, ev: EventWindow) -> bl.Baseline:
        """The DFS rule with the profile, kept per window: each day is a past day 10 times."""
        if ev.start not in seen:
            seen[ev.start] = bl.uk_dfs(meter, ev, cal, None, profile=bl.household_profile)
        return seen[ev.start]

    out: dict[str, dict[str, np.ndarray]] = {}
    for day in days:
        ev = _window(day, m.tz)
        gross = rule(load, ev)
        cols = m.times.get_indexer(gross.times)
        gen = m.gen_kw[:, cols]
        other = gross.kw + gen
        trend, _ = bl.battery_held_trend(m, ev, cal)
        rows: dict[str, np.ndarray] = {}
        h = bl._history(load, ev, cal, bl.DFS_LOOKBACK_DAYS, None)
        sel = bl._most_recent(h.valid, 10)
        dev = np.where(
            sel[:, :, None], h.window - bl._mean_over_days(h.window, sel)[:, None], np.nan
        )
        for name, paths in (
            ("held", bl.load_paths(gross.kw, bl.rule_residuals(load, ev, cal, rule), gen)),
            ("spread", bl.load_paths(gross.kw, dev, gen)),
            ("mean_path", None),
        ):
            rep, ok = bl.battery_replay(m, ev, info, other, paths)
            rows[name] = np.nansum(np.where(ok[:, None], rep, trend), axis=0)
        charge, _ = bl.battery_held_trend(m, ev, cal, charge=True)  # per site: not linear
        rows["charge_sites"] = np.nansum(charge, axis=0)
        measured, _ = bl.battery_replay(m, ev, info, m.net_kw[:, cols] - m.battery_kw[:, cols])
        rows["measured"] = np.nansum(measured, axis=0)
        out[str(day)] = rows
    return out


def _replayed(
    path: Path, d: dict[str, object], agg: MeterData, days: list[dt.date], cal: Calendar
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`replay_days` of one season, cached next to it."""
    if "sites" not in d:
        return {}
    cache = path.with_suffix(f".replay{REPLAY_VERSION}")
    if cache.exists():
        with cache.open("rb") as f:
            out: dict[str, dict[str, np.ndarray]] = pickle.load(f)
        return out
    m, info = _sites_meter(d, agg)
    out = replay_days(m, info, days, cal)
    with cache.open("wb") as f:
        pickle.dump(out, f)
    return out


def bent_trend_days(
    d: dict[str, object], agg: MeterData, days: list[dt.date], cal: Calendar
) -> dict[str, dict[str, np.ndarray]]:
    """Per day: the battery participants' summed ``charge`` baselines with a bent trend.

    ``battery_held_trend(charge=True)`` per site (its slopes differ by site, so it is not
    linear), summed [kW per interval]: ``recent`` with ``trend_days =
    BATTERY_RECENT_TREND_DAYS``, ``curve`` with the squared day term. A few seconds a
    season, so not cached.
    """
    if "sites" not in d:
        return {}
    m, _ = _sites_meter(d, agg)
    out: dict[str, dict[str, np.ndarray]] = {}
    for day in days:
        ev = _window(day, m.tz)
        recent, _ = bl.battery_held_trend(
            m, ev, cal, charge=True, trend_days=bl.BATTERY_RECENT_TREND_DAYS
        )
        curve, _ = bl.battery_held_trend(m, ev, cal, charge=True, curve=True)
        out[str(day)] = {"recent": np.nansum(recent, axis=0), "curve": np.nansum(curve, axis=0)}
    return out


def _window(day: dt.date, tz: str) -> EventWindow:
    s, e = acc.window(day, tz)
    return EventWindow(s, e, f"placebo-{day}")


def _mean_delivered(b: bl.Baseline) -> float:
    return float(np.nanmean(b.delivered_kw[0])) if b.valid[0] else float("nan")


def dfs_mgo_parts(
    meter: MeterData, ev: EventWindow, cal: Calendar
) -> tuple[float, float, float, float]:
    """``uk_dfs_mgo``'s delivered split: gross-load part, battery part (trend, and with
    ``charge``), and the gross-load part without the standard-profile correction [kW];
    the generation adds 0."""
    gross = bl.uk_dfs(meter.gross(), ev, cal, None, profile=bl.household_profile)
    cols = meter.times.get_indexer(gross.times)
    assert meter.battery_kw is not None
    actual = meter.battery_kw[0, cols]
    held, _ = bl.battery_held_trend(meter, ev, cal)
    held_c, _ = bl.battery_held_trend(meter, ev, cal, charge=True)
    bat, bat_c = float(np.mean(actual - held[0])), float(np.mean(actual - held_c[0]))
    plain = bl.uk_dfs(meter.gross(), ev, cal, None)
    return _mean_delivered(gross), bat, bat_c, _mean_delivered(plain)


def dfs_mgo_shape_trend(meter: MeterData, ev: EventWindow, cal: Calendar) -> float:
    """Variant: ``uk_dfs_mgo`` whose gross part also follows the trend of the evening's shape.

    The in-day shift carries the load's level from the adjustment window to the event; what
    it cannot carry is a change, over the season, of the difference between the two windows
    (the evening growing faster than the afternoon). That difference per eligible day of the
    45-day lookback is regressed on the day number (OLS), and the baseline moves by the
    slope x (event day - mean day of the 10 days averaged).
    """
    gross = meter.gross()
    b = bl.metered_generation(meter, ev, cal, None, method=Method.UK_DFS_MGO)
    h = bl._history(gross, ev, cal, bl.LOOKBACK_DAYS, bl.DFS_ADJUST_HOURS)
    y = bl._nanmean(h.window[0], axis=1) - bl._nanmean(h.adjust[0], axis=1)  # (D,)
    x = -h.offsets.astype(float)
    ok = h.valid[0] & np.isfinite(y)
    if ok.sum() < bl.BATTERY_TREND_MIN_DAYS or not b.valid[0]:
        return float("nan")
    slope = float(np.polyfit(x[ok], y[ok], 1)[0])
    sel = bl._most_recent(h.valid, 10)[0]
    shift = slope * (0.0 - float(x[sel].mean()))
    return float(np.mean(b.actual_kw[0] - (b.kw[0] + shift)))


METHODS: dict[str, Fn] = {
    # battery="trend" (linear: exact on the total); "charge" fits a slope per site, so on
    # the total it is an approximation: "uk_dfs_mgo battery=charge per site" (from the
    # battery participants kept per site) is the exact one, and "... charge curve per
    # site" the exact service default (battery="charge" with the squared day term)
    "uk_dfs_mgo": lambda m, e, c: _mean_delivered(
        bl.metered_generation(
            m,
            e,
            c,
            None,
            method=Method.UK_DFS_MGO,
            battery="trend",
            profile=bl.household_profile,
            battery_curve=False,
        )
    ),
    "uk_dfs_mgo profile on all gross": lambda m, e, c: _mean_delivered(
        bl.metered_generation(
            dataclasses.replace(m, load_kw=None),
            e,
            c,
            None,
            method=Method.UK_DFS_MGO,
            battery="trend",
            profile=bl.household_profile,
            battery_curve=False,
        )
    ),
    "uk_dfs_mgo no profile": lambda m, e, c: _mean_delivered(
        bl.metered_generation(m, e, c, None, method=Method.UK_DFS_MGO)
    ),
    "uk_dfs_mgo battery=days": lambda m, e, c: _mean_delivered(
        bl.metered_generation(
            m, e, c, None, method=Method.UK_DFS_MGO, battery="days", profile=bl.household_profile
        )
    ),
    "uk_dfs_mgo shape trend": dfs_mgo_shape_trend,
    "uk_dfs_mgo battery=charge": lambda m, e, c: _mean_delivered(
        bl.metered_generation(
            m,
            e,
            c,
            None,
            method=Method.UK_DFS_MGO,
            battery="charge",
            profile=bl.household_profile,
            battery_curve=False,
        )
    ),
    "uk_dfs": lambda m, e, c: _mean_delivered(bl.compute_baseline(Method.UK_DFS, m, e, c)),
    "caiso_10in10_unadjusted": lambda m, e, c: _mean_delivered(
        bl.compute_baseline(Method.CAISO_10IN10_UNADJUSTED, m, e, c)
    ),
    "weather_matched": lambda m, e, c: _mean_delivered(
        bl.compute_baseline(Method.WEATHER_MATCHED, m, e, c)
    ),
}


def _base_kwh(mix: str, homes: int, seed: int) -> float:
    """The participants' household base load [kWh/year]: what follows the H25 profile.

    The season's fleet and control group drawn again (deterministic in the seed).
    """
    spec = acc.mix_fleet(mix, homes, seed)
    info = site_info(spec)
    control = assign_control_group(info.kinds, info.size, acc.CONTROL_SHARE, seed)
    return float(info.size[~control].sum())


def evaluate(
    path: Path, methods: dict[str, Fn], with_replay: bool = True
) -> list[dict[str, object]]:
    """Every working day after the history weeks of one season: each method's error [kW].

    ``with_replay=False`` leaves out the per-site replay (its columns NaN): about a minute
    per 1,000-home season the first time.
    """
    with path.open("rb") as f:
        d = pickle.load(f)
    agg: MeterData = d["agg"]
    mix, homes, days, every, seed = path.stem.rsplit("_", 4)
    event_days = set(d.get("event_days", []))
    cal = Calendar.of(event_days=event_days)
    shadow: MeterData = d.get("shadow", agg)
    local = agg.times.tz_convert(d["tz"])
    rows: list[dict[str, object]] = []
    n_days = int(days)
    first: dt.date = d.get("first_day", acc.FIRST_DAY)
    base_kwh = float(d["base_kwh"]) if "base_kwh" in d else _base_kwh(mix, int(homes), int(seed))
    h25 = MeterData(
        np.array(["h25"], dtype=object),
        agg.times,
        -base_kwh * bl.household_profile(agg.times, d["tz"])[None, :],
        d["tz"],
    )
    work = [
        first + dt.timedelta(days=k)
        for k in range(acc.HISTORY_DAYS, n_days)
        if (first + dt.timedelta(days=k)).weekday() < 5
    ]
    replay = _replayed(path, d, agg, work, cal) if with_replay else {}
    bent = bent_trend_days(d, agg, work, cal)
    for k in range(acc.HISTORY_DAYS, n_days):
        day = first + dt.timedelta(days=k)
        if day.weekday() >= 5:
            continue
        ev = _window(day, d["tz"])
        cols = agg.times.get_indexer(bl._steps(agg, ev.start, ev.end))
        true_kw = float(np.mean(agg.net_kw[0, cols] - shadow.net_kw[0, cols]))
        assert agg.battery_kw is not None
        assert shadow.battery_kw is not None
        true_bat = float(np.mean(agg.battery_kw[0, cols] - shadow.battery_kw[0, cols]))
        gross_est, bat_est, bat_c_est, plain_est = dfs_mgo_parts(agg, ev, cal)
        rep = replay.get(str(day))
        actual_bat = agg.battery_kw[0, cols]
        bat_r = float(np.mean(actual_bat - rep["held"])) if rep else float("nan")
        bat_rm = float(np.mean(actual_bat - rep["measured"])) if rep else float("nan")
        bat_r1 = float(np.mean(actual_bat - rep["mean_path"])) if rep else float("nan")
        bat_rs = float(np.mean(actual_bat - rep["spread"])) if rep else float("nan")
        bat_cs = float(np.mean(actual_bat - rep["charge_sites"])) if rep else float("nan")
        bt = bent.get(str(day))
        bat_cr = float(np.mean(actual_bat - bt["recent"])) if bt else float("nan")
        bat_cc = float(np.mean(actual_bat - bt["curve"])) if bt else float("nan")
        on = local.date == day
        hour = local.hour + local.minute / 60
        win = on & (hour >= acc.EVENT_HOUR) & (hour < acc.EVENT_HOUR + acc.EVENT_HOURS)
        adj = on & (hour >= acc.EVENT_HOUR - 4) & (hour < acc.EVENT_HOUR - 1)
        assert agg.temp_c is not None
        assert agg.ghi_w_m2 is not None
        row: dict[str, object] = {
            "mix": mix,
            "homes": int(homes),
            "seed": int(seed),
            "every": int(every),
            "kind": "event" if day in event_days else "placebo",
            "true_kw": true_kw,
            "day": str(day),
            "k": k,
            "scale_kw": acc.KW_PER_SITE * d["n"],
            "temp_win": float(agg.temp_c[win].mean()),
            "temp_adj": float(agg.temp_c[adj].mean()),
            "ghi_day": float(agg.ghi_w_m2[on & (hour >= 10) & (hour < 19)].mean()),
            "gross_err": gross_est - (true_kw - true_bat),
            "bat_err": bat_est - true_bat,
            "gross_plain_err": plain_est - (true_kw - true_bat),
            "h25_plain_err": _mean_delivered(bl.uk_dfs(h25, ev, cal, None)),
            "bat_charge_err": bat_c_est - true_bat,
            "bat_replay_err": bat_r - true_bat,
            "bat_replay_measured_err": bat_rm - true_bat,
            "bat_replay_mean_path_err": bat_r1 - true_bat,
            "bat_replay_spread_err": bat_rs - true_bat,
            "bat_charge_sites_err": bat_cs - true_bat,
            "uk_dfs_mgo battery=charge per site": gross_est + bat_cs - true_kw,
            "bat_charge_recent_sites_err": bat_cr - true_bat,
            "uk_dfs_mgo battery=charge recent trend per site": gross_est + bat_cr - true_kw,
            "bat_charge_curve_sites_err": bat_cc - true_bat,
            "uk_dfs_mgo battery=charge curve per site": gross_est + bat_cc - true_kw,
            "uk_dfs_mgo battery=replay": gross_est + bat_r - true_kw,
        }
        for name, fn in methods.items():
            row[name] = fn(agg, ev, cal) - true_kw  # the error [kW]
        rows.append(row)
    return rows


def table(frame: pd.DataFrame, methods: list[str]) -> str:
    """Bias, its two standard errors, the 95 % interval (over seasons) and RMSE, in %."""
    out = [
        "| mix | days | method | seasons | days | bias % | s.e. over days | s.e. over seasons "
        "| 95 % interval (seasons) | RMSE % |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for (mix, kind), g in frame.groupby(["mix", "kind"], sort=False):
        for m in methods:
            e = 100 * g[m] / g["scale_kw"]
            e = e[np.isfinite(e)]
            by = e.groupby(g.loc[e.index, "seed"]).mean()
            se_d = e.std(ddof=1) / np.sqrt(len(e))
            se_s = by.std(ddof=1) / np.sqrt(len(by)) if len(by) > 1 else float("nan")
            t = _t975(len(by) - 1)
            lo, hi = e.mean() - t * se_s, e.mean() + t * se_s
            out.append(
                f"| {mix} | {kind} | {m} | {len(by)} | {len(e)} | {e.mean():+.2f} | {se_d:.2f} "
                f"| {se_s:.2f} | {lo:+.2f} to {hi:+.2f} | {np.sqrt((e**2).mean()):.1f} |"
            )
    return "\n".join(out)


def explain(frame: pd.DataFrame, column: str = "gross_err") -> str:
    """OLS of a daily error [% of the delivery] on the day's weather and the season, per mix.

    Regressors: the temperature change from the adjustment window to the event window
    [K], the day's mean irradiance 10:00-19:00 [per 100 W/m2] and the day of the season
    [per 30 days], centred, so the intercept is the bias at the mean day. A slope that is
    several standard errors from zero names what the method misses.
    """
    out = [
        f"| mix | days | {column}: bias at the mean day % | per K warmer evening | "
        "per 100 W/m2 | per 30 days |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (mix, kind), g in frame.groupby(["mix", "kind"], sort=False):
        y = (100 * g[column] / g["scale_kw"]).to_numpy(float)
        x = np.column_stack(
            [
                np.ones(len(g)),
                (g.temp_win - g.temp_adj) - (g.temp_win - g.temp_adj).mean(),
                (g.ghi_day - g.ghi_day.mean()) / 100,
                (g.k - g.k.mean()) / 30,
            ]
        )
        ok = np.isfinite(y)
        coef, *_ = np.linalg.lstsq(x[ok], y[ok], rcond=None)
        resid = y[ok] - x[ok] @ coef
        cov = np.linalg.inv(x[ok].T @ x[ok]) * resid.var(ddof=x.shape[1])
        se = np.sqrt(np.diag(cov))
        out.append(
            f"| {mix} | {kind} | "
            + " | ".join(f"{c:+.2f} ± {e:.2f}" for c, e in zip(coef, se, strict=True))
            + " |"
        )
    return "\n".join(out)


def _t975(df: int) -> float:
    """Student's t 97.5 % quantile (scipy)."""
    from scipy.stats import t

    return float(t.ppf(0.975, max(df, 1)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["run", "table"])
    ap.add_argument("--mixes", default=",".join(acc.MIXES))
    ap.add_argument("--seeds", default="100-101")
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=140)
    ap.add_argument("--dir", default="/tmp/mvp")
    ap.add_argument("--every", type=int, default=0, help="event every N-th working day, 0: none")
    ap.add_argument("--csv", default="", help="write the per-day errors here")
    ap.add_argument(
        "--methods", default="", help="comma-separated names of METHODS to run (default: all)"
    )
    ap.add_argument(
        "--first-day",
        type=dt.date.fromisoformat,
        default=acc.FIRST_DAY,
        help="local start of each season (a Monday; default 2026-06-01)",
    )
    ap.add_argument(
        "--no-replay", action="store_true", help="table: leave out the per-site battery replay"
    )
    ap.add_argument(
        "--stagger",
        action="store_true",
        help="run: the first event on working day seed mod --every (own --dir)",
    )
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    if args.what == "run":
        for seed in _parse_seeds(args.seeds):
            for mix in args.mixes.split(","):
                t, c = time.perf_counter(), time.process_time()
                make_season(
                    mix,
                    args.homes,
                    args.days,
                    seed,
                    folder,
                    every=args.every,
                    first_day=args.first_day,
                    stagger=args.stagger,
                )
                print(
                    f"{mix} seed {seed}: {time.perf_counter() - t:.1f} s wall, "
                    f"{time.process_time() - c:.1f} s CPU",
                    flush=True,
                )
        return
    rows: list[dict[str, object]] = []
    chosen = {m: METHODS[m] for m in args.methods.split(",") if m} or METHODS
    c0 = time.process_time()
    for p in sorted(folder.glob("*.pkl")):
        rows += evaluate(p, chosen, not args.no_replay)
    print(f"evaluated in {time.process_time() - c0:.1f} s CPU", file=sys.stderr)
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    cols = [
        *chosen,
        "uk_dfs_mgo battery=replay",
        "uk_dfs_mgo battery=charge per site",
        "uk_dfs_mgo battery=charge recent trend per site",
        "uk_dfs_mgo battery=charge curve per site",
        "gross_err",
        "gross_plain_err",
        "h25_plain_err",
        "bat_err",
        "bat_charge_err",
        "bat_replay_err",
        "bat_replay_measured_err",
        "bat_replay_mean_path_err",
        "bat_replay_spread_err",
        "bat_charge_sites_err",
        "bat_charge_recent_sites_err",
        "bat_charge_curve_sites_err",
    ]
    print(table(frame, cols))
    print()
    print(explain(frame, "gross_err"))
    print()
    print(explain(frame, "gross_plain_err"))
    print()
    print(explain(frame, "bat_err"))
    print()
    print(explain(frame, "bat_charge_err"))
    if frame["bat_replay_err"].notna().any():
        print()
        print(explain(frame, "bat_replay_err"))


if __name__ == "__main__":
    main()
