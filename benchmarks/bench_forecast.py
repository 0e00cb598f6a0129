"""Forecasting benchmarks: accuracy on the twin, training and prediction speed, memory.

    PYTHONPATH=$PWD/src python benchmarks/bench_forecast.py accuracy [--homes 300 --days 70]
    PYTHONPATH=$PWD/src python benchmarks/bench_forecast.py train [--homes 1000 --days 365]
    PYTHONPATH=$PWD/src python benchmarks/bench_forecast.py predict [--sites 100000]

accuracy: the twin's seasonal history (>= 8 weeks), the final two weeks held out and forecast
by a rolling-origin backtest (day-ahead issued D-1 10:00 local, intraday every 3 h; retrained
weekly on what came before; weather from the twin's forecasts with lead-dependent errors).
Reports the issue's targets for fleet net import, the published anchors' units (OpenSTEF
relative MAE, FlexMeasures 1 - WAPE), and need-for-support windows (hit rate, false alarms,
Brier score against climatology). Each part prints JSON; peak memory is ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from gridflock.fleet.generate import generate_fleet
from gridflock.forecast import (
    BacktestConfig,
    Forecast,
    History,
    SiteAttributes,
    TrainConfig,
    backtest,
    exceedance_probability,
    predict,
    support_windows,
    train,
)
from gridflock.sim.forecast_weather import TwinWeatherSource
from gridflock.sim.history import twin_history

LAT, LON = 48.14, 11.58


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def support_scores(result, threshold_kw: float) -> dict[str, float]:
    """Windows where fleet import > threshold: hit rate, false alarms, Brier vs climatology."""
    qs = (0.1, 0.5, 0.9)
    fc = Forecast("net", ["fleet"], result.times, qs, result.p[None], result.times[0], "day_ahead")
    prob = exceedance_probability(fc, threshold_kw)[0]
    event = (-result.y > threshold_kw).astype(float)
    ok = ~np.isnan(result.y)
    return {"prob": prob[ok], "event": event[ok], "fc": fc}


def accuracy(args) -> dict:
    spec = generate_fleet(args.homes, args.seed)
    start = pd.Timestamp(args.start, tz="UTC")
    quantities = tuple(args.quantities.split(","))
    t = time.perf_counter()
    history, weather = twin_history(
        spec, start, args.days, args.seed, dropout_rate=0.01, quantities=(*quantities, "net")
    )
    sim_s = time.perf_counter() - t
    source = TwinWeatherSource(weather, args.seed, lat=LAT, lon=LON)
    cfg = BacktestConfig(
        test_days=args.test_days,
        retrain_every_days=7,
        groups=("fleet", "grid_node"),
        train=TrainConfig(
            quantities=quantities,
            level_quantities=("flex_up", "flex_down") if args.level else (),
        ),
    )
    t, c = time.perf_counter(), time.process_time()
    report = backtest(history, source, cfg)
    bt_s, bt_cpu = time.perf_counter() - t, time.process_time() - c
    table = report.table()
    out: dict = {
        "homes": args.homes,
        "days": args.days,
        "test_days": args.test_days,
        "start": args.start,
        "simulate_s": round(sim_s, 1),
        "backtest_s": round(bt_s, 1),
        "backtest_cpu_s": round(bt_cpu, 1),
        "trainings": len(report.bundles),
        "calibration": report.bundles[-1].meta["calibration"],
    }
    keep = [
        "mae", "nmae", "rmse", "crps", "coverage", "skill_seasonal_naive", "skill_persistence",
        "peak_time_error_min", "peak_within_30min", "peak_time_error_min_p50",
        "peak_within_30min_p50", "peak_days", "relative_mae_p1_p99", "one_minus_wape",
        "mae_seasonal_naive", "mae_persistence", "n_points",
    ]  # fmt: skip
    rows = {}
    for _, r in table.iterrows():
        if "@grid_node:" in r["series"]:
            continue
        rows[f"{r['series']} {r['horizon']}"] = {k: round(float(r[k]), 4) for k in keep if k in r}
    # grid nodes pooled: coverage and skill of each node's total
    nodes = table[table["series"].str.startswith("net@grid_node:")]
    for h in ("day_ahead", "intraday"):
        sel = nodes[nodes["horizon"] == h]
        if len(sel):
            rows[f"net@grid nodes (mean of {len(sel)}) {h}"] = {
                k: round(float(sel[k].mean()), 4) for k in keep if k in sel
            }
    out["series"] = rows

    # need for support: fleet import above its training-period P90, day-ahead
    fleet = next(r for r in report.results if r.series == "net@fleet" and r.horizon == "day_ahead")
    if args.dump:  # the fleet's day-ahead net: actuals and quantiles, to inspect peak misses
        np.savez(args.dump, t=fleet.times.asi8, y=fleet.y, p=fleet.p)
    n_train = len(history.times) - args.test_days * 96
    train_import = -np.nansum(history.series["net"][:, :n_train], axis=0)
    threshold = float(np.percentile(train_import, 90))
    s = support_scores(fleet, threshold)
    prob, event = s["prob"], s["event"]
    climatology = float(np.mean(train_import > threshold))
    brier = float(np.mean((prob - event) ** 2))
    brier_clim = float(np.mean((climatology - event) ** 2))
    windows = support_windows(s["fc"], threshold, min_probability=0.5)
    actual_runs = _runs(event > 0.5)
    hit = [any(_overlap(a, b, w, fleet.times) for w in windows) for a, b in actual_runs]
    false = [not any(_overlap(a, b, w, fleet.times) for a, b in actual_runs) for w in windows]
    out["support"] = {
        "threshold_kw": round(threshold, 1),
        "event_share": round(float(event.mean()), 4),
        "brier": round(brier, 4),
        "brier_climatology": round(brier_clim, 4),
        "brier_skill": round(1 - brier / brier_clim, 4) if brier_clim > 0 else None,
        "actual_windows": len(actual_runs),
        "forecast_windows": len(windows),
        "hit_rate": round(float(np.mean(hit)), 4) if hit else None,
        "false_alarm_ratio": round(float(np.mean(false)), 4) if false else None,
    }
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def _runs(mask):
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _overlap(a, b, w, times) -> bool:
    return w.start < times[b - 1] + pd.Timedelta("15min") and w.end > times[a]


def train_speed(args) -> dict:
    spec = generate_fleet(args.homes, args.seed)
    start = pd.Timestamp(args.start, tz="UTC")
    quantities = tuple(args.quantities.split(","))
    t = time.perf_counter()
    cache = Path(args.history_cache) if args.history_cache else None
    if cache is not None and cache.exists():
        with open(cache, "rb") as fh:
            history, weather = pickle.load(fh)
    else:
        history, weather = twin_history(spec, start, args.days, args.seed, quantities=quantities)
        if cache is not None:
            with open(cache, "wb") as fh:
                pickle.dump((history, weather), fh, protocol=pickle.HIGHEST_PROTOCOL)
    sim_s = time.perf_counter() - t
    rss_after_sim = peak_rss_mb()
    source = TwinWeatherSource(weather, args.seed, lat=LAT, lon=LON)
    parts = _time_parts() if args.profile else {}
    cfg = TrainConfig(quantities=quantities, num_threads=args.threads, workers=args.workers)
    if args.calibration_sites:
        cfg = replace(cfg, calibration_sites=args.calibration_sites)
    if args.max_bin:
        cfg = replace(cfg, max_bin=args.max_bin)
    if args.max_rows:
        cfg = replace(cfg, max_rows=args.max_rows)
    if args.calibration_intraday_every_h:
        cfg = replace(cfg, calibration_intraday_every_h=args.calibration_intraday_every_h)
    t, c = time.perf_counter(), time.process_time()
    bundle = train(history, source, cfg)
    train_s, train_cpu = time.perf_counter() - t, time.process_time() - c
    data = bundle.to_bytes()
    if args.save:
        with open(args.save, "wb") as fh:
            fh.write(data)
    return {
        "homes": args.homes,
        "days": args.days,
        "quantities": quantities,
        "steps": len(history.times),
        "simulate_s": round(sim_s, 1),
        "train_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu, 1),
        "rows_per_quantity": bundle.meta["rows"],
        "calibration_sites": cfg.calibration_sites,
        "workers": cfg.workers,
        "num_threads": cfg.num_threads,
        "parts_s": {k: round(v, 1) for k, v in parts.items()},
        "corr": bundle.meta["corr"],
        "bundle_kb": round(len(data) / 1024),
        "peak_rss_mb_after_history": round(rss_after_sim),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def _time_parts() -> dict[str, float]:
    """Wall time spent in the training's parts (features, LightGBM fits, calibration)."""
    import gridflock.forecast._model as model

    spent: dict[str, float] = {}

    def timed(name, fn):
        def run(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

        return run

    model.build_features = timed("features", model.build_features)
    model._fit = timed("lightgbm_fits", model._fit)
    model._calibrate = timed("calibration_forecasts", model._calibrate)
    return spent


def predict_speed(args) -> dict:
    """Day-ahead for --sites sites: a small twin fleet's history tiled with noise."""
    base_n = 500
    spec = generate_fleet(base_n, args.seed)
    start = pd.Timestamp(args.start, tz="UTC")
    history, weather = twin_history(spec, start, 35, args.seed, quantities=("net",))
    source = TwinWeatherSource(weather, args.seed, lat=LAT, lon=LON)
    bundle = train(history, source, TrainConfig(quantities=("net",)))
    reps = int(np.ceil(args.sites / base_n))
    days = 15  # enough for every lag (two weeks) and the scale window
    y = history.series["net"][:, -days * 96 :]
    rng = np.random.default_rng(0)
    big = np.tile(y, (reps, 1))[: args.sites]
    big *= rng.lognormal(0, 0.1, (args.sites, 1))
    rows = np.tile(np.arange(base_n), reps)[: args.sites]
    base = history.sites
    cols = {f: getattr(base, f)[rows] for f in base.__dataclass_fields__ if f != "ids"}
    sites = SiteAttributes(ids=np.array([f"s{i}" for i in range(args.sites)], dtype=object), **cols)
    big_hist = History(history.times[-days * 96 :], {"net": big}, sites)
    issued = big_hist.times[-1] + pd.Timedelta("15min")
    issued = issued.tz_convert("Europe/Berlin").normalize() + pd.Timedelta(hours=10)
    issued = issued.tz_convert("UTC")
    rss0 = peak_rss_mb()
    t, c = time.perf_counter(), time.process_time()
    fc = predict(bundle, big_hist, source, issued, "day_ahead", num_threads=args.threads)["net"]
    pred_s, pred_cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "sites": args.sites,
        "steps": len(fc.times),
        "quantiles": list(fc.quantiles),
        "predict_s": round(pred_s, 1),
        "predict_cpu_s": round(pred_cpu, 1),
        "threads": args.threads,
        "history_mb": round(big.nbytes / 2**20),
        "peak_rss_mb_before_predict": round(rss0),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["accuracy", "train", "predict"])
    ap.add_argument("--homes", type=int, default=None)
    ap.add_argument("--days", type=float, default=None)
    ap.add_argument("--test-days", type=int, default=14)
    ap.add_argument("--sites", type=int, default=100_000)
    ap.add_argument("--start", default="2026-01-05")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quantities", default=None)
    ap.add_argument("--save", default=None)
    ap.add_argument("--profile", action="store_true", help="train: time spent per part")
    ap.add_argument("--calibration-sites", type=int, default=None)
    ap.add_argument("--calibration-intraday-every-h", type=float, default=None)
    ap.add_argument("--level", action="store_true", help="accuracy: flex with a level term")
    ap.add_argument("--max-bin", type=int, default=None, help="train: LightGBM bins")
    ap.add_argument("--max-rows", type=int, default=None, help="train: rows per quantity")
    ap.add_argument("--dump", default=None, help="accuracy: .npz of the fleet's day-ahead net")
    ap.add_argument("--threads", type=int, default=2, help="LightGBM threads (train, predict)")
    ap.add_argument("--workers", type=int, default=1, help="train: quantities side by side")
    ap.add_argument(
        "--history-cache", default=None, help="train: pickle of the twin's history (made once)"
    )
    args = ap.parse_args()
    if args.part == "accuracy":
        args.homes = args.homes or 300
        args.days = args.days or 70
        args.quantities = args.quantities or "net,load,pv,heat_pump,ev"
        res = accuracy(args)
    elif args.part == "train":
        args.homes = args.homes or 1000
        args.days = args.days or 365
        args.quantities = args.quantities or "net"
        res = train_speed(args)
    else:
        res = predict_speed(args)
    print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
