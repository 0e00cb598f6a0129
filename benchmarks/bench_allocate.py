"""Allocate a target over a million devices with site and grid-node caps (target < 25 ms).

    python benchmarks/bench_allocate.py [--devices 1000000] [--repeat 50] [--profile]

The flexibility (2 h, up) and the present site and node flows are computed once, untimed,
from the twin-driven live state at 18:05 local; the target is 60 % of what the capped
fleet can deliver, so every cap is in play and the request is met.
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
from gridflock.dispatch.allocate import allocate, limit_headroom
from gridflock.fleet.flexibility import flexibility

TARGET_S = 0.025
SHARE = 0.6


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=1_000_000, repeat=50)
    p.add_argument("--profile", action="store_true", help="cProfile limit_headroom + allocate")
    args = p.parse_args()
    print_header("bench_allocate: limit_headroom + allocate")
    fleet = build_live_fleet(args.devices, args.seed)
    state, now = fleet.state, fleet.now
    grid, site_idx = state.grid, state.node_groups

    flex = flexibility(state, 2.0, now)
    base = state.baseline_kw()
    site_p = state.site_power_kw(base)
    node_p = grid.node_flow_kw(site_p)
    mask = state.controllable() & state.online
    head = limit_headroom(flex.up_kw, site_idx, grid, site_p, node_p, up=True)
    available = float(head[mask].sum())
    target = SHARE * available
    cost = state.cost_per_kwh

    def limits_and_allocate() -> None:
        h = limit_headroom(flex.up_kw, site_idx, grid, site_p, node_p, up=True)
        allocate(h, target, mask=mask)

    def flows_limits_and_allocate() -> None:
        sp = state.site_power_kw(base)
        npw = grid.node_flow_kw(sp)
        h = limit_headroom(flex.up_kw, site_idx, grid, sp, npw, up=True)
        allocate(h, target, mask=mask)

    def limits_only() -> None:
        limit_headroom(flex.up_kw, site_idx, grid, site_p, node_p, up=True)

    def allocate_only() -> None:
        allocate(head, target, mask=mask)

    def merit_order() -> None:
        allocate(head, target, mask=mask, cost=cost)

    def limits_and_merit_order() -> None:
        h = limit_headroom(flex.up_kw, site_idx, grid, site_p, node_p, up=True)
        allocate(h, target, mask=mask, cost=cost)

    runs = [
        ("limit_headroom + allocate (site + node caps)", limits_and_allocate, TARGET_S),
        ("  ... + site/node flows (as the tracker does)", flows_limits_and_allocate, None),
        ("limit_headroom alone", limits_only, None),
        ("allocate alone (equal fractions, masked)", allocate_only, None),
        ("allocate merit order (cost=) alone", merit_order, None),
        ("limit_headroom + allocate merit order", limits_and_merit_order, None),
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
    print_table(
        f"{state.n:,} devices, {grid.n_sites:,} sites, {grid.n_nodes:,} nodes "
        f"(depth {grid.depth}), {args.repeat} repeats after 1 warm-up [ms]",
        ["what", "median", "min", "p99", "target", "verdict"],
        rows,
    )

    a = allocate(head, target, mask=mask)
    m = allocate(head, target, mask=mask, cost=cost)
    print(
        f"uncapped up flexibility {flex.up_kw[mask].sum():,.0f} kW; after caps "
        f"{available:,.0f} kW; target {target:,.0f} kW -> allocated {a.allocated_kw:,.0f} kW "
        f"(met={a.met}); merit order allocated {m.allocated_kw:,.0f} kW over "
        f"{int((m.delta_kw > 0).sum()):,} devices vs {int((a.delta_kw > 0).sum()):,}"
    )
    print(f"peak RSS {peak_rss_mb():,.0f} MiB")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20):
            limits_and_allocate()
            merit_order()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
