"""One dispatcher cycle with several events at once over a large fleet.

    python benchmarks/bench_dispatcher.py [--devices 1000000] [--repeat 10]

What :meth:`Dispatcher.step` costs per control cycle: measuring every event on its own
devices, judging, flexibility for each event's remaining window, shared caps, claims and
allocation in priority order, pinned batteries and commands (renewals included), with 1
and 3 active events (one fleet-wide; or two up events of different priorities in one
region and a down event in another), plus the
admission figure (``available_kw``) for a new event. The devices obey: between steps the
state is set to the setpoints sent, so the steady state (few new commands) is measured.
"""

from __future__ import annotations

import numpy as np

from _common import build_live_fleet, measure, ms, parser, print_header, print_table
from gridflock.dispatch import Dispatcher, TrackerConfig
from gridflock.domain.events import Event, Scope


def _cycle(disp: Dispatcher, clock: list[float], sent: list[int]) -> None:
    """One step 2 s on; the devices take their setpoints at once (obedient fleet)."""
    clock[0] += 2.0
    state = disp.state
    for batch in disp.step(clock[0]):
        sent[0] += len(batch)
        idx = state.indices(batch.device_ids)
        ok = np.isfinite(batch.p_setpoint_kw)
        state.p_kw[idx[ok]] = batch.p_setpoint_kw[ok]


def main() -> None:
    p = parser(__doc__.splitlines()[0], devices=1_000_000, repeat=10)
    args = p.parse_args()
    print_header("bench_dispatcher: one cycle, several events")
    fleet = build_live_fleet(args.devices, args.seed)
    state, now = fleet.state, fleet.now
    regions = sorted(set(state.grid.site_region))
    rows = []
    for n_events in (1, 3):
        disp = Dispatcher(state, TrackerConfig(interval_s=2.0, command_ttl_s=30.0))
        up = disp.available_kw(Scope(), now, now + 3600, True, now)
        events = [Event("fleet-up", 0.3 * up, now, now + 3600, priority=50)]
        if n_events == 3:
            events.append(
                Event(
                    "region-up", 0.1 * up, now, now + 3600, Scope("region", regions[0]), priority=80
                )
            )
            other = Scope("region", regions[-1]) if len(regions) > 1 else Scope()
            down = disp.available_kw(other, now, now + 3600, False, now)
            events[0] = Event(
                "region-up-low", 0.2 * up, now, now + 3600, events[1].scope, priority=20
            )
            events.append(Event("region-down", 0.3 * down, now, now + 3600, other, priority=50))
        for ev in events:
            disp.add(ev)
        p0 = state.p_kw.copy()
        clock, sent = [now], [0]
        first = measure(lambda d=disp, c=clock, n=sent: _cycle(d, c, n), 1, warmup=0)
        sent[0] = 0
        t = measure(lambda d=disp, c=clock, n=sent: _cycle(d, c, n), args.repeat, warmup=2)
        held = int((disp.held_by >= 0).sum())
        rows.append(
            [
                f"{n_events} event(s): step",
                ms(t.median),
                ms(t.min),
                ms(t.p99),
                f"first {ms(first.median)}",
                f"{held:,} held, {sent[0] / (args.repeat + 2):,.0f} cmds/cycle",
            ]
        )
        a = measure(lambda d=disp: d.available_kw(Scope(), now, now + 3600, True, now), 3)
        rows.append([f"{n_events} event(s): available_kw", ms(a.median), ms(a.min), "-", "-", "-"])
        state.p_kw[:] = p0
    print_table(
        f"{state.n:,} devices, {state.grid.n_sites:,} sites, {args.repeat} repeats [ms]",
        ["what", "median", "min", "p99", "note", "held / commands"],
        rows,
    )


if __name__ == "__main__":
    main()
