"""Gridflock's planner against FlexMeasures' device_scheduler on identical batteries.

    python benchmarks/bench_optimize_vs_flexmeasures.py [--homes 100] [--fm-python PATH]
        [--fm-solver appsi_highs|highspy]

Each home: one battery, PV and load (their net as a fixed flow) behind a site import and
export limit, 96 steps of 15 minutes, a time-of-use import price and a flat export
price; no wear cost, PV not curtailable (FlexMeasures' inflexible device cannot be), the
final state of charge free. FlexMeasures (installed apart: ``python3 -m venv
/work/venv-fm && /work/venv-fm/bin/pip install flexmeasures``; not a project dependency)
schedules one battery per ``device_scheduler`` call, as its StorageScheduler does;
Gridflock plans all homes in one ``solve``. Both objectives are the energy cost of the
site over the day [EUR]; they must agree within 1e-6 relative. Goal: at least 30x
faster per home (anchor: 63.6 ms median per battery for FlexMeasures on this kind of
machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gridflock.domain.spec import build_spec
from gridflock.optimize import SiteForecasts, Tariff, build_problem, solve

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _optimize_common import N_STEPS, START_TS, forecasts  # noqa: E402

ANCHOR_FM_MS = 63.6


def battery_homes(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    ids = np.array([f"h{i}" for i in range(n)], dtype=object)
    e = rng.choice([5.0, 7.5, 10.0, 13.5], n)
    sites = pd.DataFrame(
        {
            "id": ids,
            "lat": 48.1,
            "lon": 11.6,
            "tz": "Europe/Berlin",
            "grid_node": "f",
            "import_limit_kw": rng.choice([10.0, 17.0, 25.0], n),
            "export_limit_kw": rng.choice([10.0, 15.0, 25.0], n),
        }
    )
    dev = pd.concat(
        [
            pd.DataFrame(
                {
                    "id": ids + "-bat",
                    "site_id": ids,
                    "kind": "battery",
                    "e_kwh": e,
                    "p_charge_max_kw": np.round(e / 2, 1),
                    "p_discharge_max_kw": np.round(e / 2, 1),
                    "eta_charge": rng.uniform(0.9, 0.97, n),
                    "eta_discharge": rng.uniform(0.9, 0.97, n),
                    "soc_min": 0.05,
                    "soc_reserve": rng.uniform(0.05, 0.3, n),
                    "soc_initial": rng.uniform(0.3, 0.8, n),
                }
            ),
            pd.DataFrame(
                {
                    "id": ids + "-pv",
                    "site_id": ids,
                    "kind": "pv",
                    "kwp": rng.uniform(4, 10, n),
                    "curtailable": False,
                }
            ),
            pd.DataFrame({"id": ids + "-load", "site_id": ids, "kind": "load"}),
        ],
        ignore_index=True,
    )
    nodes = [{"id": "f", "kind": "feeder", "limit_import_kw": 1e9, "limit_export_kw": 1e9}]
    spec = build_spec(nodes, sites, dev, source="bench")
    local_h = (12.0 + np.arange(N_STEPS) * 0.25) % 24
    tariff = Tariff.time_of_use(n, local_h, [(17, 21, 0.42), (0, 6, 0.15)], 0.22, 0.08)
    fc = forecasts(spec, seed)
    return spec, SiteForecasts(fc.load_kw, fc.pv_kw, fc.wind_kw, fc.t_out_c), tariff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--homes", type=int, default=100)
    p.add_argument("--fm-python", default="/work/venv-fm/bin/python")
    p.add_argument("--fm-solver", default="appsi_highs", help="FLEXMEASURES_LP_SOLVER")
    p.add_argument("--repeat", type=int, default=5, help="Gridflock runs (median taken)")
    args = p.parse_args()
    n = args.homes
    spec, fc, tariff = battery_homes(n)
    pb = build_problem(spec, START_TS, fc, tariff, n_steps=N_STEPS)
    bt = pb.batteries
    net_load = pb.sites.load_kw - _site_avail(pb)  # [kW], > 0 consumed
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src,
            net_load=net_load[bt.site],
            e_kwh=bt.e_kwh,
            soc0=bt.soc0,
            soc_floor=bt.soc_floor,
            soc_max=bt.soc_max,
            p_ch=bt.p_charge_max_kw,
            p_dis=bt.p_discharge_max_kw,
            eta_c=bt.eta_charge,
            eta_d=bt.eta_discharge,
            imp_lim=pb.sites.import_limit_kw[bt.site],
            exp_lim=pb.sites.export_limit_kw[bt.site],
            pi=tariff.import_price[0],
            pe=tariff.export_price[0],
            dt=pb.step_h,
        )
        t0 = time.perf_counter()
        subprocess.run(
            [args.fm_python, str(HERE / "_fm_runner.py"), str(src), str(dst), args.fm_solver],
            check=True,
        )
        fm_wall = time.perf_counter() - t0
        fm = np.load(dst)
        fm_powers, fm_costs, fm_times = fm["powers"], fm["costs"], fm["times"]
    walls, cpus = [], []
    plan = None
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        plan = solve(pb, threads=2)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    assert plan is not None
    gf_s = float(np.median(walls))
    # both schedules priced by one evaluator: the site's energy cost over the day
    dt = pb.step_h

    def energy_cost(net_import: np.ndarray) -> np.ndarray:
        imp = np.maximum(net_import, 0)
        exp = np.maximum(-net_import, 0)
        return ((tariff.import_price[bt.site] * imp - tariff.export_price[bt.site] * exp) * dt).sum(
            1
        )

    fm_eval = energy_cost(net_load[bt.site] + fm_powers)
    gf_eval = energy_cost(-plan.site_net_kw[bt.site])
    rel = np.abs(gf_eval - fm_eval) / np.maximum(np.abs(fm_eval), 1.0)
    rel_planned = np.abs(gf_eval - fm_costs) / np.maximum(np.abs(fm_costs), 1.0)
    fm_med_ms = float(np.median(fm_times) * 1e3)
    gf_ms = gf_s / n * 1e3
    print(f"homes: {n}, steps: {N_STEPS}, FlexMeasures solver: {args.fm_solver}")
    print(
        f"FlexMeasures device_scheduler: median {fm_med_ms:.1f} ms/battery, "
        f"mean {np.mean(fm_times) * 1e3:.1f} ms, total {fm_times.sum():.2f} s "
        f"(process {fm_wall:.1f} s with imports)"
    )
    print(
        f"Gridflock solve: {gf_s:.3f} s for {n} homes = {gf_ms:.2f} ms/home "
        f"(median of {args.repeat}); {plan.stats}"
    )
    print(
        f"speed-up per home: {fm_med_ms / gf_ms:.0f}x against the measured median, "
        f"{ANCHOR_FM_MS / gf_ms:.0f}x against the 63.6 ms anchor (goal >= 30x)"
    )
    print(
        f"objective (EUR/day, all homes): Gridflock {gf_eval.sum():.6f}, "
        f"FlexMeasures {fm_eval.sum():.6f}; largest relative difference per home "
        f"{rel.max():.2e} (schedules priced alike), {rel_planned.max():.2e} "
        "(against FlexMeasures' own planned costs); goal <= 1e-6"
    )


def _site_avail(pb) -> np.ndarray:
    avail = np.zeros((pb.n_sites, pb.n_steps))
    np.add.at(avail, pb.renewables.site, pb.renewables.avail_kw)
    return avail


if __name__ == "__main__":
    main()
