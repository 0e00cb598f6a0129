"""Plans to devices as schedules, at fleet scale: apply, re-plan, acks, encode, per cycle.

    python benchmarks/bench_schedules.py [--homes 25000] [--repeat 5]

A day-ahead plan (96 slots of 15 minutes, random setpoints within each device's range) for
every controllable device of a synthetic fleet goes through the plan executor: the first
apply (every schedule checked, numbered and sent), every gateway's acknowledgement, the same
plan applied again (nothing sent), a re-plan where 5 % of the devices changed (only those
sent), the MQTT encoding of all schedules (grouped by gateway), and what the control loop
pays every cycle (each device's planned power now). Targets: the whole plan applied and
encoded within 5 s at 100,000 devices, a re-plan within 1 s, under 10 ms per cycle.
"""

from __future__ import annotations

import time

import numpy as np

from _common import measure, ms, parser, peak_rss_mb, print_header, print_table, verdict
from gridflock.domain.ports import CommandAck
from gridflock.domain.schedules import PlanSeries, ScheduleBatch
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState
from gridflock.gateways.mqtt import encode_schedules
from gridflock.service.links import MemoryLink
from gridflock.service.plans import PlanExecutor

T0 = 1_784_095_200.0
TARGET_APPLY_S = 5.0
TARGET_REPLAN_S = 1.0
TARGET_CYCLE_S = 0.010


def main() -> None:
    args = parser(__doc__.splitlines()[0], homes=25_000, repeat=5).parse_args()
    print_header("bench_schedules: plans to devices as schedules")
    spec = generate_fleet(args.homes, 7)
    state = FleetState.from_spec(spec)
    ctrl = np.flatnonzero(state.controllable())
    ids = state.device_ids[ctrl]
    rng = np.random.default_rng(1)
    lo, hi = -state.p_load_max_kw[ctrl], state.p_gen_max_kw[ctrl]
    p = lo[:, None] + (hi - lo)[:, None] * rng.random((len(ctrl), 96))
    plan = PlanSeries("day-1", ids, p.round(3), T0, 900.0)
    changed = p.copy()
    moved = rng.random(len(ctrl)) < 0.05
    changed[moved, 60:] = np.clip(changed[moved, 60:] * 0.5, lo[moved, None], hi[moved, None])
    replan = PlanSeries("day-1b", ids, changed.round(3), T0, 900.0)
    devices = spec.all_devices()
    gw_of = dict(zip(devices["id"], devices["gateway_id"], strict=True))

    link = MemoryLink(spec)
    ex = PlanExecutor(state, link, lambda: T0)
    t = time.perf_counter()
    first = ex.apply(plan)
    apply_s = time.perf_counter() - t
    batch: ScheduleBatch = link.schedules[-1]
    t = time.perf_counter()
    payloads = encode_schedules(batch, gw_of)
    encode_s = time.perf_counter() - t
    n_bytes = sum(len(x) for v in payloads.values() for x in v)
    acks = [
        CommandAck(gw_of[str(d)], str(sid), str(d), "accepted")
        for sid, d in zip(batch.schedule_ids, batch.device_ids, strict=True)
    ]
    t = time.perf_counter()
    left = ex.take_acks(acks, T0 + 1)
    acks_s = time.perf_counter() - t
    assert not left
    assert ex.pending() == 0
    same = ex.apply(plan, T0 + 2)
    same_t = measure(lambda: ex.apply(plan, T0 + 2), args.repeat)
    t = time.perf_counter()
    re = ex.apply(replan, T0 + 3)
    replan_s = time.perf_counter() - t
    cycle = measure(lambda: ex.planned_kw(T0 + 1000.0), args.repeat * 20)
    rows: list[tuple[str, str, str, str]] = [
        ("devices in the plan", f"{len(ids):,}", "", ""),
        ("first apply (checked, numbered, sent)", ms(apply_s), f"{first.sent:,} sent", ""),
        ("MQTT encoding, all gateways", ms(encode_s), f"{len(payloads):,} gateways",
         f"{n_bytes / 1e6:.1f} MB"),
        ("apply + encode", ms(apply_s + encode_s), "",
         verdict(apply_s + encode_s, TARGET_APPLY_S * len(ids) / 100_000)),
        ("acks taken", ms(acks_s), f"{len(acks):,} acks", ""),
        ("same plan again (median)", ms(same_t.median),
         f"{same.sent} sent, {same.unchanged:,} unchanged", ""),
        ("re-plan, 5 % changed", ms(replan_s), f"{re.sent:,} sent",
         verdict(replan_s, TARGET_REPLAN_S * len(ids) / 100_000)),
        ("per cycle: planned power now", ms(cycle.median), f"p99 {ms(cycle.p99)}",
         verdict(cycle.median, TARGET_CYCLE_S * len(ids) / 100_000)),
        ("peak RSS", f"{peak_rss_mb():.0f} MB", "", ""),
    ]  # fmt: skip
    print_table("schedules", ["step", "time", "detail", "target (scaled to the fleet)"], rows)


if __name__ == "__main__":
    main()
