"""Flexibility computed and aggregated by group over a million devices (target < 30 ms).

    python benchmarks/bench_fleet.py [--devices 1000000] [--repeat 50] [--profile]

The fleet is generated (``generate_fleet``, ~346,000 homes) and its live state set by
the digital twin at 18:00 local on a hot July evening (see ``_common.build_live_fleet``).
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
from gridflock.fleet.aggregate import aggregate
from gridflock.fleet.available import available_flexibility
from gridflock.fleet.flexibility import flexibility

TARGET_S = 0.030
DURATION_H = 2.0


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=1_000_000, repeat=50)
    p.add_argument("--profile", action="store_true", help="cProfile the combined pass")
    args = p.parse_args()
    print_header("bench_fleet: flexibility + aggregation")
    fleet = build_live_fleet(args.devices, args.seed)
    state, now = fleet.state, fleet.now

    def flex_only() -> None:
        flexibility(state, DURATION_H, now)

    def flex_and_aggregate() -> None:
        f = flexibility(state, DURATION_H, now)
        values = {"up_kw": f.up_kw, "down_kw": f.down_kw, "baseline_kw": f.baseline_kw}
        aggregate(state, "grid_node", values)
        aggregate(state, "kind", values)

    def aggregate_only() -> None:
        values = {"up_kw": f.up_kw, "down_kw": f.down_kw, "baseline_kw": f.baseline_kw}
        aggregate(state, "grid_node", values)
        aggregate(state, "kind", values)

    def available() -> None:
        available_flexibility(state, DURATION_H, now)

    f = flexibility(state, DURATION_H, now)
    available()  # plans the node groups once, as the service does for a fleet
    runs = [
        ("flexibility(state, 2 h, now)", measure(flex_only, args.repeat), None),
        ("aggregate by grid_node + by kind (3 values)", measure(aggregate_only, args.repeat), None),
        (
            "flexibility + aggregate grid_node + kind",
            measure(flex_and_aggregate, args.repeat),
            TARGET_S,
        ),
        (
            "available_flexibility: within every limit (the API's figure)",
            measure(available, args.repeat),
            None,
        ),
    ]
    rows = []
    for name, t, target in runs:
        rows.append(
            [
                name,
                ms(t.median),
                ms(t.min),
                ms(t.p99),
                f"< {target * 1e3:.0f}" if target else "-",
                verdict(t.median, target) if target else "-",
            ]
        )
    print_table(
        f"{state.n:,} devices, {args.repeat} repeats after 1 warm-up [ms]",
        ["what", "median", "min", "p99", "target", "verdict"],
        rows,
    )

    by_kind = aggregate(state, "kind", {"up_kw": f.up_kw, "down_kw": f.down_kw})
    print_table(
        "sanity: flexibility by kind at 18:05 local [kW]",
        ["kind", "devices", "online", "up_kw", "down_kw"],
        [
            [r.kind, f"{r.devices:,}", f"{r.online:,}", f"{r.up_kw:,.0f}", f"{r.down_kw:,.0f}"]
            for r in by_kind.itertuples()
        ],
    )
    print(f"peak RSS {peak_rss_mb():,.0f} MiB")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(20):
            flex_and_aggregate()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
