"""Accuracy of the baseline methods against the twin's true counterfactual.

For each fleet mix the twin runs five weeks of summer under the dispatcher: three weeks
without events (history), then events on every other working day (19:00-21:00 local, the
evening peak) and placebo days (the other working days: no event, the true effect is
zero). A tenth of the sites, drawn within kind x size strata, is held out as the control
group. Every method estimates what each day delivered; the twin's shadow run says what
it truly delivered. Bias and RMSE are in % of the mean true delivery on event days of
the same run, so event and placebo rows read on one scale.

    PYTHONPATH=$PWD/src OPENBLAS_NUM_THREADS=1 /work/main/.venv/bin/python \
        benchmarks/bench_mv_accuracy.py [--homes 1000] [--mixes pv_heavy,...] [--big 10000]
        [--days 49] [--every 2] [--no-regression]

The long placebo study in docs/mv.md is ``--days 140 --every 4 --no-regression``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gridflock.domain.kinds import DeviceKind
from gridflock.fleet.generate import generate_fleet
from gridflock.mv import Calendar, EventWindow, Method, assign_control_group, compute_baseline
from gridflock.sim.meters import PlannedEvent, run_meters, site_info, subset_fleet

FIRST_DAY = dt.date(2026, 6, 1)  # a Monday
DAYS = 49
HISTORY_DAYS = 21
EVENT_HOUR, EVENT_HOURS = 19.0, 2.0
KW_PER_SITE = 0.3
CONTROL_SHARE = 0.1

MIXES: dict[str, tuple[DeviceKind, ...]] = {
    "pv_heavy": (DeviceKind.PV,),
    "pv_battery_heavy": (DeviceKind.PV, DeviceKind.BATTERY),
    "battery_heavy": (DeviceKind.BATTERY,),
    "ev_heavy": (DeviceKind.EV_CHARGER,),
    "heat_pump_heavy": (DeviceKind.HEAT_PUMP,),
}

SITE_METHODS = [
    Method.CAISO_10IN10,
    Method.CAISO_10IN10_UNADJUSTED,
    Method.CAISO_10IN10_ADDITIVE,
    Method.PJM_HIGH4OF5,
    Method.PJM_HIGH4OF5_WSA,
    Method.UK_DFS,
    Method.WEATHER_MATCHED,
    Method.CONTROL_GROUP,
    Method.BATTERY_DEVICE,
    Method.BATTERY_DEVICE_DAYS,
    Method.BATTERY_DEVICE_TREND,
    Method.CAISO_10IN10_MGO,
    Method.PJM_HIGH4OF5_MGO,
    Method.UK_DFS_MGO,
]


def mix_fleet(mix: str, homes: int, seed: int):
    """``homes`` sites, 80 % of them holding the mix's kinds, from a larger generated pool."""
    pool = generate_fleet(homes * 4, seed)
    info = site_info(pool)
    kinds = [set(k.split("+")) for k in info.kinds.tolist()]
    want = {k.value for k in MIXES[mix]}
    has = np.array([want <= k for k in kinds])
    rng = np.random.default_rng(seed)
    n_has = min(round(0.8 * homes), int(has.sum()))
    pick = np.concatenate(
        [
            rng.choice(np.flatnonzero(has), n_has, replace=False),
            rng.choice(np.flatnonzero(~has), homes - n_has, replace=False),
        ]
    )
    ids = pool.sites["id"].to_numpy(object)[np.sort(pick)]
    return subset_fleet(pool, ids.tolist())


def plan(
    tz: str, days: int = DAYS, every: int = 2, first_day: dt.date = FIRST_DAY, phase: int = 0
) -> tuple[list[PlannedEvent], list[dt.date]]:
    """Events on every ``every``-th working day after the history weeks; the rest are placebo.

    ``phase`` skips that many working days before the first event (0: the first one).
    """
    events, placebo = [], []
    working = [
        first_day + dt.timedelta(days=d)
        for d in range(HISTORY_DAYS, days)
        if (first_day + dt.timedelta(days=d)).weekday() < 5
    ]
    for i, day in enumerate(working):
        if i % every == phase % every:
            events.append(PlannedEvent(day, EVENT_HOUR, EVENT_HOURS, KW_PER_SITE))
        else:
            placebo.append(day)
    return events, placebo  # weekends are left out: their baselines learn from 4 days only


def window(day: dt.date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    s = pd.Timestamp(dt.datetime.combine(day, dt.time())).tz_localize(tz) + pd.Timedelta(
        hours=EVENT_HOUR
    )
    return s.tz_convert("UTC"), (s + pd.Timedelta(hours=EVENT_HOURS)).tz_convert("UTC")


def study(
    mix: str,
    homes: int,
    seed: int,
    regression: bool,
    days: int = DAYS,
    every: int = 2,
    only: list[str] | None = None,
    cache: str = "",
) -> tuple[list[dict], dict]:
    spec = mix_fleet(mix, homes, seed)
    info0 = site_info(spec)
    control = assign_control_group(info0.kinds, info0.size, CONTROL_SHARE, seed)
    tz = str(spec.sites["tz"].iloc[0])
    events, placebo = plan(tz, days, every)
    t0 = time.perf_counter()
    cached = Path(cache) / f"{mix}_{homes}_{days}_{every}_{seed}.pkl" if cache else None
    if cached is not None and cached.exists():
        with cached.open("rb") as f:
            run = pickle.load(f)[0]  # (run, placebo days, tz), as bench_mv_paired keeps it
    else:
        run = run_meters(spec, FIRST_DAY, days, events, control=control, seed=seed)
        if cached is not None:
            with cached.open("wb") as f:
                pickle.dump((run, placebo, tz), f)
    twin_s = time.perf_counter() - t0
    cal = Calendar.of(event_days=run.event_days)
    part = ~control
    rows: list[dict] = []
    timing: dict[str, float] = {"twin_s": twin_s}
    agg = run.actual.take(part).aggregate(np.full(int(part.sum()), "fleet"))
    days = [(d, "event") for d in run.event_days] + [(d, "placebo") for d in placebo]
    for day, kind in days:
        start, end = window(day, tz)
        ev = EventWindow(start, end, f"{mix}-{day}", part)
        cols = run.actual.times.get_indexer(
            pd.date_range(
                start, end, freq=pd.Timedelta(seconds=run.actual.step_s), inclusive="left"
            )
        )
        truth_rows = run.actual.net_kw[part][:, cols] - run.shadow.net_kw[part][:, cols]
        true_kw = float(truth_rows.sum(axis=0).mean())
        load_kw = float(-run.shadow.net_kw[part][:, cols].sum(axis=0).mean())
        methods = list(SITE_METHODS) + (
            [Method.REGRESSION, Method.REGRESSION_MGO] if regression else []
        )
        if only:
            methods = [m for m in methods if str(m) in only]
        for m in methods:
            t = time.perf_counter()
            if m in (Method.REGRESSION, Method.REGRESSION_MGO):
                b = compute_baseline(m, agg, EventWindow(start, end, ev.event_id), cal)
                mask = b.valid
            else:
                b = compute_baseline(m, run.actual, ev, cal, run.info)
                mask = b.valid & part
            timing[str(m)] = timing.get(str(m), 0.0) + time.perf_counter() - t
            est = float(np.nansum(b.delivered_kw[mask], axis=0).mean()) if mask.any() else np.nan
            rows.append(
                {
                    "mix": mix,
                    "homes": homes,
                    "seed": seed,
                    "day": str(day),
                    "kind": kind,
                    "method": str(m),
                    "est_kw": est,
                    "true_kw": true_kw,
                    "load_kw": load_kw,
                    "valid": int(mask.sum()),
                }
            )
    return rows, timing


def table(frame: pd.DataFrame) -> str:
    out = []
    for (mix, homes), g in frame.groupby(["mix", "homes"], sort=False):
        scale = g[g.kind == "event"].groupby(["seed", "day"]).true_kw.first().mean()
        load = g.groupby(["seed", "day"]).load_kw.first().mean()
        n_ev = g[g.kind == "event"].groupby(["seed", "day"]).ngroups
        n_pl = g[g.kind == "placebo"].groupby(["seed", "day"]).ngroups
        out.append(
            f"\n**{mix}, {homes} homes** (mean true delivery on event days {scale:.0f} kW; "
            f"mean counterfactual import over the window {load:.0f} kW; {n_ev} event days and "
            f"{n_pl} placebo days over {g.seed.nunique()} weather seeds)\n"
        )
        out.append(
            "| method | event bias % (± s.e.) | event RMSE % | placebo bias % (± s.e.) "
            "| placebo RMSE % |"
        )
        out.append("|---|---:|---:|---:|---:|")
        for m, gm in g.groupby("method", sort=False):
            cells = []
            for kind in ("event", "placebo"):
                e = (gm[gm.kind == kind].est_kw - gm[gm.kind == kind].true_kw).dropna()
                se = e.std(ddof=1) / np.sqrt(len(e)) if len(e) > 1 else np.nan
                cells += [
                    f"{100 * e.mean() / scale:+.1f} ± {100 * se / scale:.1f}",
                    f"{100 * np.sqrt((e**2).mean()) / scale:.1f}",
                ]
            out.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--mixes", default=",".join(MIXES))
    ap.add_argument("--big", type=int, default=0, help="also run pv_battery_heavy at this size")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--seeds", default="", help="pool several runs (weather seeds), e.g. 11,5")
    ap.add_argument("--cache", default="", help="keep twin runs here and reuse them")
    ap.add_argument("--no-regression", action="store_true")
    ap.add_argument("--json", default="/tmp/mv_accuracy.json")
    ap.add_argument("--days", type=int, default=DAYS, help="simulated days (21 of history)")
    ap.add_argument("--every", type=int, default=2, help="an event every N-th working day")
    ap.add_argument("--methods", default="", help="only these methods (comma-separated)")
    ap.add_argument("--only-big", action="store_true", help="run only the --big fleet")
    args = ap.parse_args()
    runs = [] if args.only_big else [(m, args.homes) for m in args.mixes.split(",")]
    if args.big:
        runs.append(("pv_battery_heavy", args.big))
    all_rows, timings = [], {}
    seeds = [int(x) for x in args.seeds.split(",") if x] or [args.seed]
    for mix, homes in runs:
        for seed in seeds:
            t = time.perf_counter()
            rows, timing = study(
                mix,
                homes,
                seed,
                not args.no_regression,
                args.days,
                args.every,
                [m for m in args.methods.split(",") if m],
                args.cache,
            )
            all_rows += rows
            timings[f"{mix}/{homes}/{seed}"] = timing
            print(
                f"{mix} {homes} homes seed {seed}: {time.perf_counter() - t:.1f} s "
                f"(twin {timing['twin_s']:.1f} s)",
                flush=True,
            )
    frame = pd.DataFrame(all_rows)
    with open(args.json, "w") as f:
        json.dump({"rows": all_rows, "timings": timings}, f)
    print(table(frame))
    print("\nruntime per method, summed over the run's days [s]:")
    for k, v in timings.items():
        print(k, {m: round(s, 2) for m, s in v.items()})


if __name__ == "__main__":
    main()
