"""Paired accuracy of the recommended MGO baseline's variants against the twin's truth.

For each fleet mix and weather seed the twin runs a season (``--days`` days, an event every
``--every``-th working day after three weeks of history, the other working days placebo
days; 10 % of the homes held out as the control group), or reuses the run cached in
``--cache``. On every event and placebo day each variant estimates the participants'
delivered kW; the shadow run gives the truth. The variants share the gross-load baseline,
so their differences are the battery part (``trend``: ``battery_held_trend``; ``days``:
the plain 10-in-10) and the DFS in-day window (``(4, 1)`` now, ``(3, 1)`` before) alone.

    PYTHONPATH=$PWD/src OPENBLAS_NUM_THREADS=1 /work/main/.venv/bin/python \\
        benchmarks/bench_mv_paired.py --mixes battery_heavy --seeds 11,5 --cache /tmp/mv

Prints one Markdown table per mix: bias ± standard error and RMSE, in % of the mean true
delivery on event days, on event days and placebo days.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import bench_mv_accuracy as acc
from gridflock.mv import Calendar, EventWindow, MeterData, Method, assign_control_group
from gridflock.mv import baselines as bl
from gridflock.sim.meters import run_meters, site_info

Fn = Callable[..., bl.Baseline]


def _old_window(meter: MeterData, ev: EventWindow, cal: Calendar, info: object) -> bl.Baseline:
    """``uk_dfs_mgo`` as it was: battery 10-in-10, DFS window [start-3h, start-1h)."""
    orig = bl.METHODS["uk_dfs"]
    bl.METHODS["uk_dfs"] = partial(bl.uk_dfs, adjust_hours=(3.0, 1.0))
    try:
        return bl.metered_generation(meter, ev, cal, None, method=Method.UK_DFS_MGO, battery="days")
    finally:
        bl.METHODS["uk_dfs"] = orig


def _temperature(meter: MeterData, ev: EventWindow, cal: Calendar, info: object) -> bl.Baseline:
    """``uk_dfs_mgo`` with the DFS option ``temperature=True`` on the gross load."""
    orig = bl.METHODS["uk_dfs"]
    bl.METHODS["uk_dfs"] = partial(bl.uk_dfs, temperature=True)
    try:
        return bl.metered_generation(meter, ev, cal, None, method=Method.UK_DFS_MGO)
    finally:
        bl.METHODS["uk_dfs"] = orig


VARIANTS: dict[str, Fn] = {
    "`uk_dfs_mgo` (now: battery trend, DFS window 4-1 h)": partial(
        bl.metered_generation, method=Method.UK_DFS_MGO, battery="trend"
    ),
    "`uk_dfs_mgo`, battery 10-in-10 (window 4-1 h)": partial(
        bl.metered_generation, method=Method.UK_DFS_MGO, battery="days"
    ),
    "`uk_dfs_mgo` before (battery 10-in-10, window 3-1 h)": _old_window,
    "`uk_dfs_mgo` (now) + DFS `temperature=True`": _temperature,
    "`battery_device_trend`": bl.METHODS["battery_device_trend"],
    "`battery_device_days`": bl.METHODS["battery_device_days"],
    "`control_group` (10 % held out)": bl.METHODS["control_group"],
}


def season(mix: str, homes: int, days: int, every: int, seed: int, cache: str):  # type: ignore[no-untyped-def]
    path = Path(cache) / f"{mix}_{homes}_{days}_{every}_{seed}.pkl" if cache else None
    if path is not None and path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    spec = acc.mix_fleet(mix, homes, seed)
    info = site_info(spec)
    control = assign_control_group(info.kinds, info.size, acc.CONTROL_SHARE, seed)
    tz = str(spec.sites["tz"].iloc[0])
    events, placebo = acc.plan(tz, days, every)
    run = run_meters(spec, acc.FIRST_DAY, days, events, control=control, seed=seed)
    if path is not None:
        with path.open("wb") as f:
            pickle.dump((run, placebo, tz), f)
    return run, placebo, tz


def errors(run, placebo, tz: str, label: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """Each variant's error (estimated - true delivered kW) on every event and placebo day."""
    cal = Calendar.of(event_days=run.event_days)
    a, part, out = run.actual, ~run.control, []
    days = [(d, "event") for d in run.event_days] + [(d, "placebo") for d in placebo]
    for day, kind in days:
        s, e = acc.window(day, tz)
        # the 50 days before the event are all any variant reads: slice, not copy, the rest
        lo = max(int(a.times.get_indexer([s - pd.Timedelta(days=50)])[0]), 0)
        sl = slice(lo, int(a.times.get_indexer([e])[0]) + 4)
        assert a.temp_c is not None
        assert a.ghi_w_m2 is not None
        assert a.battery_kw is not None
        assert a.gen_kw is not None
        m = MeterData(
            a.site_ids,
            a.times[sl],
            a.net_kw[:, sl],
            tz,
            a.temp_c[sl],
            a.ghi_w_m2[sl],
            a.battery_kw[:, sl],
            a.gen_kw[:, sl],
        )
        ev = EventWindow(s, e, str(day), part)
        cols = a.times.get_indexer(pd.date_range(s, e, freq="15min", inclusive="left"))
        truth = float((a.net_kw[part][:, cols] - run.shadow.net_kw[part][:, cols]).sum(0).mean())
        for name, fn in VARIANTS.items():
            b = fn(m, ev, cal, run.info)
            mask = b.valid & part
            est = float(np.nansum(b.delivered_kw[mask], axis=0).mean())
            out.append(
                {
                    "run": label,
                    "kind": kind,
                    "day": str(day),
                    "m": name,
                    "err": est - truth,
                    "truth": truth,
                }
            )
    return out


def table(f: pd.DataFrame, mix: str) -> str:
    scale = f[f.kind == "event"].groupby(["run", "day"]).truth.first().mean()
    n_ev = f[f.kind == "event"].groupby(["run", "day"]).ngroups
    n_pl = f[f.kind == "placebo"].groupby(["run", "day"]).ngroups
    lines = [
        f"\n**{mix}, {f.run.str.split('/').str[1].iloc[0]} homes**, weather seeds "
        f"{', '.join(sorted(f.run.str.split('/').str[2].unique()))}: {n_ev} event days, "
        f"{n_pl} placebo days (mean true delivery {scale:.0f} kW)\n",
        "| method | event bias % ± s.e. | event RMSE % | placebo bias % ± s.e. | placebo RMSE % |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in VARIANTS:
        cells = []
        for kind in ("event", "placebo"):
            e = f[(f.m == m) & (f.kind == kind)].err
            se = e.std(ddof=1) / np.sqrt(len(e))
            cells += [
                f"{100 * e.mean() / scale:+.1f} ± {100 * se / scale:.1f}",
                f"{100 * np.sqrt((e**2).mean()) / scale:.1f}",
            ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixes", default=",".join(acc.MIXES))
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=140)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--seeds", default="11")
    ap.add_argument("--cache", default="")
    args = ap.parse_args()
    for mix in args.mixes.split(","):
        rows: list[dict] = []
        for seed in (int(x) for x in args.seeds.split(",")):
            t = time.perf_counter()
            run, placebo, tz = season(mix, args.homes, args.days, args.every, seed, args.cache)
            rows += errors(run, placebo, tz, f"{mix}/{args.homes}/{seed}")
            print(
                f"{mix} seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True
            )
        print(table(pd.DataFrame(rows), mix), flush=True)


if __name__ == "__main__":
    main()
