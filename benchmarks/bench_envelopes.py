"""Operating envelopes at fleet scale: resolution, a control step's limits, a plan's limits.

    python benchmarks/bench_envelopes.py [--devices 100000] [--per-day 24] [--repeat 10]

The fleet is the generated live fleet; every site gets ``--per-day`` envelopes over the
day (import and export), every grid node one per hour, plus a second, newer issue of a
tenth of them (so the overlap rule has work). Measured: the day's limits for a plan
(96 steps, every site and node), the dispatcher's limits at one instant, resolved (as
when an envelope begins or ends, or a batch arrives) and reused (every other control
cycle), ``available_flexibility`` with and without envelopes, and the envelope hold: a
dispatcher step with no event running, first (every site in breach held: commands to
all) and in steady state (the holds worked out again, only renewals and moves sent),
with the day's envelopes and with a zero import and export envelope on every site (worst case).
Target: what a control cycle adds < 25 ms (one control step's budget); the hold's
steady-state step < 250 ms (an eighth of the default 2 s control interval).
"""

from __future__ import annotations

import numpy as np

from _common import build_live_fleet, measure, ms, parser, print_header, print_table, verdict
from gridflock.dispatch import Dispatcher
from gridflock.domain.envelopes import Envelope, EnvelopeArrays, EnvelopeSource, TargetType
from gridflock.fleet.available import available_flexibility
from gridflock.fleet.envelopes import controllable_per_site, grid_limits, prepare

TARGET_CYCLE_S = 0.025
TARGET_HOLD_S = 0.25


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=100_000, repeat=10)
    p.add_argument("--per-day", type=int, default=24, help="envelopes per site and day")
    args = p.parse_args()
    per_day = args.per_day
    width = 86400.0 / per_day
    print_header("bench_envelopes: operating envelopes at fleet scale")
    fleet = build_live_fleet(args.devices, args.seed)
    state, now = fleet.state, fleet.now
    grid = state.grid
    rng = np.random.default_rng(args.seed)
    day0 = float(np.floor(now / 86400.0) * 86400.0)
    envs: list[Envelope] = []
    for i, sid in enumerate(grid.site_ids):
        exp = rng.uniform(0.0, 10.0, per_day)
        imp = rng.uniform(3.0, 15.0, per_day)
        for k in range(per_day):
            t = day0 + width * k
            envs.append(
                Envelope(
                    f"s{i}-{k}",
                    TargetType.SITE,
                    str(sid),
                    t,
                    t + width,
                    float(imp[k]),
                    float(exp[k]),
                    issued_at=day0 - 3600.0,
                )
            )
    for j, nid in enumerate(grid.node_ids):
        for h in range(24):
            t = day0 + 3600.0 * h
            envs.append(
                Envelope(
                    f"n{j}-{h}",
                    TargetType.NODE,
                    str(nid),
                    t,
                    t + 3600.0,
                    None,
                    float(rng.uniform(50, 500)),
                    source=EnvelopeSource.CSIP,
                    issued_at=day0,
                )
            )
    for e in rng.choice(len(envs), len(envs) // 10, replace=False):
        old = envs[int(e)]
        envs.append(
            Envelope(
                old.id + "-r",
                old.target_type,
                old.target_id,
                old.start,
                old.end,
                old.import_limit_kw,
                None if old.export_limit_kw is None else old.export_limit_kw * 0.5,
                old.kind,
                old.source,
                old.issued_at + 60.0,
            )
        )
    print(f"{len(envs):,} envelopes on {grid.n_sites:,} sites and {grid.n_nodes:,} nodes")
    ctrl = controllable_per_site(state)
    edges = day0 + 900.0 * np.arange(97)
    disp = Dispatcher(state)
    take_t = measure(lambda: prepare(grid, EnvelopeArrays.of(envs), ctrl), 1, warmup=0)
    prep = prepare(grid, EnvelopeArrays.of(envs), ctrl)
    plan_t = measure(lambda: grid_limits(grid, prep, edges), max(1, args.repeat // 5))
    disp.set_envelopes(envs)
    disp.grid_at(now)  # prepared for the fleet once per batch

    def fresh() -> None:
        disp._grid_cache.clear()  # as at an envelope boundary: resolved again
        disp.grid_at(now)

    cycle_t = measure(fresh, args.repeat)
    cached_t = measure(lambda: disp.grid_at(now + 1.0), args.repeat)
    eff = disp.grid_at(now, now + 3600.0)
    flex0 = measure(lambda: available_flexibility(state, 1.0, now), args.repeat)
    flex1 = measure(
        lambda: available_flexibility(state, 1.0, now, grid=disp.grid_at(now, now + 3600.0)),
        args.repeat,
    )
    tighter = int((eff.site_export_limit_kw < grid.site_export_limit_kw).sum())
    hold_rows = []
    zero = [
        Envelope(
            f"z{i}", TargetType.SITE, str(sid), now - 60.0, now + 3600.0, 0.0, 0.0, issued_at=now
        )
        for i, sid in enumerate(grid.site_ids)
    ]
    for name, batch in (
        ("the day's envelopes", envs),
        ("zero import and export on every site", envs + zero),
    ):
        hd = Dispatcher(state)
        hd.set_envelopes(batch)
        hd.grid_at(now)
        first = measure(lambda hd=hd: hd.step(now), 1, warmup=0)
        n_cmd = hd.hold_commands
        res = hd.hold_result
        breach = int((res.site_breach_kw != 0).sum()) if res is not None else 0
        steady = measure(lambda hd=hd: hd.step(now + 1.0), args.repeat)
        hold_rows.append(
            (
                f"hold, {name}: first step ({breach:,} sites in breach, "
                f"{int(hd.env_held.sum()):,} devices held, {n_cmd:,} commands)",
                ms(first.median),
                "",
                "",
                "",
            )
        )
        hold_rows.append(
            (
                f"hold, {name}: steady-state step",
                ms(steady.median),
                ms(steady.p99),
                ms(TARGET_HOLD_S),
                verdict(steady.median, TARGET_HOLD_S),
            )
        )
    print_table(
        "results",
        ["what", "median", "p99", "target", "verdict"],
        [
            ("a batch taken up (columns, targets, floors)", ms(take_t.median), "", "", ""),
            (
                "a day's limits, 96 steps x every site and node",
                ms(plan_t.median),
                ms(plan_t.p99),
                "",
                "",
            ),
            (
                "limits at one instant, resolved (at an envelope boundary)",
                ms(cycle_t.median),
                ms(cycle_t.p99),
                ms(TARGET_CYCLE_S),
                verdict(cycle_t.median, TARGET_CYCLE_S),
            ),
            (
                "limits at one instant, between boundaries (cached)",
                ms(cached_t.median),
                ms(cached_t.p99),
                ms(TARGET_CYCLE_S),
                verdict(cached_t.median, TARGET_CYCLE_S),
            ),
            ("available_flexibility, no envelopes", ms(flex0.median), ms(flex0.p99), "", ""),
            (
                "available_flexibility, envelopes of the hour",
                ms(flex1.median),
                ms(flex1.p99),
                "",
                "",
            ),
            *hold_rows,
        ],
    )
    print(f"sites whose export limit an envelope tightens now: {tighter:,} of {grid.n_sites:,}")


if __name__ == "__main__":
    main()
