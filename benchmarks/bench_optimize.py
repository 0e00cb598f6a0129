"""Day-ahead plans for 10,000 homes (battery, PV, EV, load, site limit, node caps), exact.

    python benchmarks/bench_optimize.py [--homes 10000] [--tight 0.1] [--threads 2]
        [--check 300]

Every home has a battery, PV, an EV charger (its typical evening session) and a base
load, behind a site import and export limit; feeders of 100 homes hang under
transformers of 4 feeders, a few homes straight on a transformer; a ``--tight`` share of
the feeders has a cap that binds at night. 96 steps of 15 minutes from noon, a
time-of-use tariff, battery wear 0.02 EUR/kWh. Target: < 10 s on 2 cores for 10,000
homes. ``--check N`` also plans the first N homes (with their own grid) both ways, by
sites with caps added where they bind and as one monolithic LP, and compares the
objectives (exactness of the decomposition; goal 1e-6 relative).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _optimize_common import N_STEPS, START_TS, forecasts, homes_fleet, tou_tariff
from gridflock.optimize import build_problem, solve, solve_monolithic

TARGET_S = 10.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--homes", type=int, default=10_000)
    p.add_argument("--tight", type=float, default=0.1, help="share of feeders with a binding cap")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk", type=int, default=16, help="sites per HiGHS model")
    p.add_argument("--check", type=int, default=0, help="homes for the monolithic check")
    args = p.parse_args()
    n = args.homes
    spec = homes_fleet(n, tight_share=args.tight)
    fc = forecasts(spec)
    t0 = time.perf_counter()
    c0 = time.process_time()
    pb = build_problem(spec, START_TS, fc, tou_tariff(n), wear_per_kwh=0.02)
    t1 = time.perf_counter()
    plan = solve(pb, chunk_sites=args.chunk, threads=args.threads)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    total = t2 - t0
    ok = "PASS" if total < TARGET_S else "MISS"
    print(
        f"homes {n}, steps {N_STEPS}, devices {pb.n_devices}, nodes {len(pb.grid)}, "
        f"tight feeders {args.tight:.0%}, threads {args.threads}, chunk {args.chunk}"
    )
    print(
        f"build_problem {t1 - t0:.2f} s, solve {t2 - t1:.2f} s, total {total:.2f} s "
        f"(CPU {cpu:.1f} s) -> {ok} (target < {TARGET_S:.0f} s)"
    )
    print(f"  {total / n * 1e3:.3f} ms/home wall, {cpu / n * 1e3:.3f} ms/home CPU")
    print(f"  status {plan.status}, stats {plan.stats}")
    print("  timings " + ", ".join(f"{k} {v:.2f}" for k, v in plan.timings_s.items()))
    o = plan.objective
    print(
        f"  objective {o.total:.4f} EUR: energy {o.energy_cost:.4f}, peak {o.peak_charge:.4f}, "
        f"wear {o.wear_cost:.4f}, curtailment {o.curtailment_cost:.4f}"
    )
    flow = -plan.node_flow_kw
    caps = pb.grid.import_cap_kw
    binding = int(((flow >= caps - 1e-6).any(axis=1)).sum())
    print(
        f"  node caps binding in the plan: {binding} of {len(pb.grid)}; "
        f"largest use {np.max(flow / caps):.4f} of a cap"
    )
    if args.check:
        m = args.check
        small = homes_fleet(m, tight_share=max(args.tight, 0.5), homes_per_feeder=25)
        spb = build_problem(small, START_TS, forecasts(small), tou_tariff(m), wear_per_kwh=0.02)
        t0 = time.perf_counter()
        dec = solve(spb, chunk_sites=args.chunk, threads=args.threads)
        t1 = time.perf_counter()
        mono = solve_monolithic(spb)
        t2 = time.perf_counter()
        rel = abs(dec.objective.total - mono.objective.total) / max(abs(mono.objective.total), 1)
        print(
            f"check on {m} homes (feeders of 25, half of them tight): decomposed "
            f"{dec.objective.total:.9f} EUR in {t1 - t0:.2f} s ({dec.stats}), monolithic "
            f"{mono.objective.total:.9f} EUR in {t2 - t1:.2f} s; relative difference {rel:.1e}"
        )


if __name__ == "__main__":
    main()
