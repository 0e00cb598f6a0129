"""One control step over a million devices: flexibility, flows, caps, exact allocation.

    python benchmarks/bench_allocate.py [--devices 1000000] [--repeat 50] [--profile]

Targets: the whole step < 25 ms with the fair rule, < 60 ms in merit order. The fleet is
the twin-driven live state at 18:05 local; the step computes 2 h up flexibility, site and
node flows at baseline, each site's and node's remaining capacity, and allocates 60 % of
what the capped scope can deliver, so caps bind at every level. The merit order's cost
plan depends only on the fleet layout and costs and is built once per fleet (timed apart).
"""

from __future__ import annotations

import cProfile
import pstats

from _common import (
    build_live_fleet,
    measure,
    ms,
    parser,
    peak_rss_mb,
    print_header,
    print_table,
    verdict,
)
from gridflock.dispatch.allocate import allocate, grid_caps
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.groups import MeritPlan

TARGET_S = 0.025
TARGET_MERIT_S = 0.060
SHARE = 0.6


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=1_000_000, repeat=50)
    p.add_argument("--profile", action="store_true", help="cProfile the two control steps")
    args = p.parse_args()
    print_header("bench_allocate: control step with exact allocation")
    fleet = build_live_fleet(args.devices, args.seed)
    state, now = fleet.state, fleet.now
    grid, groups = state.grid, state.node_groups
    cost = state.cost_per_kwh

    flex = flexibility(state, 2.0, now)
    base = state.baseline_kw()
    site_p = state.site_power_kw(base)
    node_p = grid.node_flow_kw(site_p)
    caps = grid_caps(grid, site_p, node_p, up=True)
    mask = state.controllable() & state.online
    probe = allocate(flex.up_kw, 1e12, mask=mask, groups=groups, caps=caps)
    target = SHARE * probe.available_kw
    plan_t = measure(lambda: MeritPlan.build(groups, cost), 3)
    plan = MeritPlan.build(groups, cost)

    def step(merit: bool) -> None:
        f = flexibility(state, 2.0, now)
        sp = state.site_power_kw(f.baseline_kw)  # the baseline flexibility was computed from
        c = grid_caps(grid, sp, grid.node_flow_kw(sp), up=True)
        allocate(
            f.up_kw,
            target,
            mask=mask,
            groups=groups,
            caps=c,
            cost=cost if merit else None,
            plan=plan if merit else None,
        )

    runs = [
        ("control step, fair rule (flex + flows + caps + allocate)", lambda: step(False), TARGET_S),
        ("control step, merit order", lambda: step(True), TARGET_MERIT_S),
        ("flexibility alone", lambda: flexibility(state, 2.0, now), None),
        (
            "allocate alone, fair, caps",
            lambda: allocate(flex.up_kw, target, mask=mask, groups=groups, caps=caps),
            None,
        ),
        (
            "allocate alone, merit order, caps",
            lambda: allocate(
                flex.up_kw, target, mask=mask, groups=groups, caps=caps, cost=cost, plan=plan
            ),
            None,
        ),
    ]
    rows = []
    for name, fn, tgt in runs:
        t = measure(fn, args.repeat)
        rows.append(
            [
                name,
                ms(t.median),
                ms(t.min),
                ms(t.p99),
                f"< {tgt * 1e3:.0f}" if tgt else "-",
                verdict(t.median, tgt) if tgt else "-",
            ]
        )
    rows.append(
        ["merit plan, built once per fleet", ms(plan_t.median), ms(plan_t.min), "-", "-", "-"]
    )
    print_table(
        f"{state.n:,} devices, {grid.n_sites:,} sites, {grid.n_nodes:,} nodes "
        f"(depth {grid.depth}), {args.repeat} repeats after 1 warm-up [ms]",
        ["what", "median", "min", "p99", "target", "verdict"],
        rows,
    )

    a = allocate(flex.up_kw, target, mask=mask, groups=groups, caps=caps)
    m = allocate(flex.up_kw, target, mask=mask, groups=groups, caps=caps, cost=cost, plan=plan)
    print(
        f"uncapped up flexibility {flex.up_kw[mask].sum():,.0f} kW; within every cap "
        f"{probe.available_kw:,.0f} kW; target {target:,.0f} kW -> fair {a.allocated_kw:,.0f} kW "
        f"(met={a.met}); merit order {m.allocated_kw:,.0f} kW over "
        f"{int((m.delta_kw > 0).sum()):,} devices vs {int((a.delta_kw > 0).sum()):,}; "
        f"cost {float(cost @ m.delta_kw):,.1f}/h vs {float(cost @ a.delta_kw):,.1f}/h"
    )
    print(f"peak RSS {peak_rss_mb():,.0f} MiB")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20):
            step(False)
            step(True)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
