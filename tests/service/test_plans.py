"""The plan executor in the service: schedules sent, re-sent only when changed, refused with a
reason, acknowledged and stored; the planned power as the dispatcher's baseline; an event over
a plan; re-sending what no gateway acknowledged; resuming after a restart.

The Runtime runs over real parts (a SQLite store, the twin in process) on a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain import DeviceKind
from gridflock.domain.auth import Principal, Role
from gridflock.domain.events import EventStatus, Scope
from gridflock.domain.ports import CommandAck
from gridflock.domain.schedules import PlanSeries
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.service.links import MemoryLink
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_784_095_200.0  # 2026-07-15T06:00:00Z
STEP_S = 2.0
SLOT_S = 900.0
ADMIN = Principal("key-admin", "root", Role.ADMIN)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _rig(tmp_path: Path, spec: FleetSpec, link: object = None) -> tuple[Runtime, FakeClock, Store]:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(url)
    store.upgrade()
    store.save_fleet(spec)
    clock = FakeClock(T0)
    if link is None:
        link = RealtimeTwin(
            spec, seed=3, step_s=STEP_S, hours=3.0, imperfections=Imperfections.ideal(), clock=clock
        )
    cfg = Settings(database_url=url, control_interval_s=STEP_S)
    return Runtime(cfg, store, spec, link, clock=clock), clock, store  # type: ignore[arg-type]


def _cycles(rt: Runtime, clock: FakeClock, seconds: float) -> None:
    for _ in range(round(seconds / STEP_S)):
        clock.t += STEP_S
        rt.control_cycle()


def _batteries(rt: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """Rows and ids of the batteries that may be controlled (not at an opted-out site)."""
    s = rt.state.kind_slices[DeviceKind.BATTERY]
    rows = np.arange(s.start, s.stop)[rt.state.controllable()[s]]
    return rows, rt.state.device_ids[rows]


def _plan(ids: np.ndarray, values: np.ndarray, start: float, pid: str = "day-1") -> PlanSeries:
    return PlanSeries(pid, ids, np.asarray(values, dtype=float), start, SLOT_S)


def test_a_plan_is_sent_once_and_a_replan_sends_only_the_changed_devices(tmp_path: Path) -> None:
    rt, clock, store = _rig(tmp_path, generate_fleet(12, 4))
    plans = rt.loop.plans
    assert plans is not None
    _cycles(rt, clock, 10)
    s, ids = _batteries(rt)
    values = np.tile([0.5, 0.5, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0], (len(ids), 1))
    res = plans.apply(_plan(ids, values, clock.t))
    assert (res.sent, res.unchanged, res.refused) == (len(ids), 0, {})
    assert res.valid_until == clock.t + 8 * SLOT_S
    _cycles(rt, clock, 4)
    assert plans.pending() == 0  # every gateway acknowledged
    np.testing.assert_allclose(plans.planned_kw(clock.t)[s], 0.5)
    np.testing.assert_allclose(rt.dispatcher.planned_kw[s], 0.5)
    np.testing.assert_allclose(rt.state.p_kw[s], 0.5)  # the batteries hold their plan

    again = plans.apply(_plan(ids, values, clock.t - 4.0))  # the same plan, re-applied
    assert (again.sent, again.unchanged) == (0, len(ids))
    changed = values.copy()
    changed[1, 3] = -2.0  # one device, one slot
    replan = plans.apply(_plan(ids, changed, clock.t - 4.0, "day-2"))
    assert (replan.sent, replan.unchanged) == (1, len(ids) - 1)
    _cycles(rt, clock, 4)
    rt.writer.flush()
    first = store.schedules_for_plan("day-1")
    assert len(first) == len(ids)
    assert set(first["status"]) == {"accepted"}
    assert first["p_kw"].iloc[0] == [0.5, 0.5, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0]
    second = store.schedules_for_plan("day-2")
    assert second["device_id"].tolist() == [ids[1]]
    assert second["seq"].iloc[0] > first["seq"].iloc[1]


def test_bad_schedules_are_refused_with_a_reason_stored_and_the_rest_sent(tmp_path: Path) -> None:
    rt, clock, store = _rig(tmp_path, generate_fleet(6, 4))
    plans = rt.loop.plans
    assert plans is not None
    _cycles(rt, clock, 4)
    s, ids = _batteries(rt)
    limit = float(rt.state.p_gen_max_kw[s][0])
    values = np.zeros((len(ids) + 1, 4))
    values[0, 2] = limit + 1.0  # more than the battery can give
    res = plans.apply(_plan(np.append(ids, "no-such-device").astype(object), values, clock.t))
    assert res.refused == {"unknown_device": 1, "out_of_range": 1}
    assert res.refused_devices["out_of_range"] == [ids[0]]
    assert res.sent == len(ids) - 1
    old = plans.apply(_plan(ids, np.zeros((len(ids), 4)), clock.t - 4 * SLOT_S, "old"))
    assert (old.sent, old.refused) == (0, {"expired": len(ids)})
    with pytest.raises(ValueError, match="printable"):
        plans.apply(_plan(ids, values[:-1], clock.t, "x" * 49))
    rt.writer.flush()
    refused = store.schedules_for_plan("old")
    assert set(refused["status"]) == {"refused"}
    assert set(refused["reason"]) == {"expired"}
    day = store.schedules_for_plan("day-1")
    assert (day["status"] == "refused").sum() == 1
    assert day.loc[day["status"] == "refused", "reason"].tolist() == ["out_of_range"]


def test_an_event_moves_batteries_off_their_plan_is_measured_against_it_and_hands_back(
    tmp_path: Path,
) -> None:
    rt, clock, _ = _rig(tmp_path, generate_fleet(20, 4))
    plans = rt.loop.plans
    assert plans is not None
    rt.dispatcher.config = dataclasses.replace(rt.dispatcher.config, release_spread_s=0.0)
    _cycles(rt, clock, 10)
    s, ids = _batteries(rt)
    plans.apply(_plan(ids, np.full((len(ids), 12), -1.0), clock.t))  # charge 1 kW for 3 h
    _cycles(rt, clock, 6)
    np.testing.assert_allclose(rt.state.p_kw[s], -1.0)
    np.testing.assert_allclose(rt.dispatcher.baseline()[s], -1.0)  # the plan is the baseline
    event = asyncio.run(rt.create_event(3.0, None, 300, Scope(), ADMIN))
    _cycles(rt, clock, 120)
    view = rt.event(event.id)
    assert view.event.status is EventStatus.ACTIVE
    assert view.delivered_kw is not None
    assert abs(view.delivered_kw - 3.0) < 0.5
    held = s[rt.dispatcher.held_by[s] >= 0]
    assert len(held)  # the event took batteries off their plan ...
    assert not np.allclose(rt.state.p_kw[held], -1.0)
    np.testing.assert_allclose(rt.dispatcher.baseline()[held], -1.0)  # ... measured from it
    response = rt.dispatcher.response_kw()[held]
    np.testing.assert_allclose(response, rt.state.p_kw[held] + 1.0)
    _cycles(rt, clock, 200)  # the event ended: the batteries are handed back to the plan
    assert rt.event(event.id).event.status is EventStatus.COMPLETED
    assert (rt.dispatcher.held_by[s] < 0).all()
    np.testing.assert_allclose(rt.state.p_kw[s], -1.0)


def test_unacknowledged_schedules_are_sent_again_with_a_new_seq(tmp_path: Path) -> None:
    spec = generate_fleet(4, 4)
    link = MemoryLink(spec)
    rt, clock, _ = _rig(tmp_path, spec, link)
    plans = rt.loop.plans
    assert plans is not None
    _, ids = _batteries(rt)
    plans.apply(_plan(ids, np.ones((len(ids), 4)), clock.t))
    first = link.schedules[-1]
    _cycles(rt, clock, 30)
    assert len(link.schedules) == 1  # within resend_after_s: nothing again
    _cycles(rt, clock, 40)
    again = link.schedules[-1]
    assert len(link.schedules) == 2
    assert (again.seq > first.seq).all()
    np.testing.assert_array_equal(again.p_kw, first.p_kw)
    for sid, dev in zip(again.schedule_ids, again.device_ids, strict=True):
        link.ack(CommandAck("gw", str(sid), str(dev), "accepted"))
    # a late answer to the superseded schedule: not the executor's any more (a command's path)
    late = CommandAck("gw", str(first.schedule_ids[0]), str(first.device_ids[0]), "accepted")
    assert plans.take_acks([late], clock.t) == [late]
    _cycles(rt, clock, 4)
    assert plans.pending() == 0
    np.testing.assert_allclose(plans.planned_kw(clock.t)[rt.state.indices(ids)], 1.0)
    _cycles(rt, clock, 120)
    assert len(link.schedules) == 2  # acknowledged: never again


def test_a_restarted_service_takes_up_the_schedules_devices_follow(tmp_path: Path) -> None:
    spec = generate_fleet(6, 4)
    rt, clock, store = _rig(tmp_path, spec)
    plans = rt.loop.plans
    assert plans is not None
    s, ids = _batteries(rt)
    plans.apply(_plan(ids, np.tile([0.7, -0.3, 0.2, 0.0], (len(ids), 1)), clock.t))
    _cycles(rt, clock, 4)
    rt.writer.flush()
    t = clock.t + SLOT_S  # later, in the second slot
    store.close()

    rt2, clock2, _ = _rig(tmp_path / ".." / tmp_path.name, spec, MemoryLink(spec))
    clock2.t = t
    rt2.loop.resume()
    plans2 = rt2.loop.plans
    assert plans2 is not None
    np.testing.assert_allclose(plans2.planned_kw(t)[s], -0.3)
    res = plans2.apply(_plan(ids, np.tile([0.7, -0.3, 0.2, 0.0], (len(ids), 1)), T0))
    assert (res.sent, res.unchanged) == (0, len(ids))  # nothing sent again after a restart


def test_an_optimiser_plan_sends_the_controllable_devices_setpoints_only() -> None:
    from gridflock.fleet.state import FleetState
    from gridflock.optimize import Objective, Plan
    from gridflock.service.plans import PlanExecutor

    spec = generate_fleet(3, 4)
    state = FleetState.from_spec(spec)
    link = MemoryLink(spec)
    executor = PlanExecutor(state, link, lambda: T0)
    n, steps = state.n, 8
    frac = np.linspace(0.0, 1.0, steps)  # from taking half its most to giving half its most
    p = 0.5 * (-state.p_load_max_kw[:, None] * (1 - frac) + state.p_gen_max_kw[:, None] * frac)
    load = state.kind_slices[DeviceKind.LOAD]
    bat = state.kind_slices[DeviceKind.BATTERY]
    p[load] = -0.4  # a forecast, not a setpoint
    p[bat.start] = np.nan  # a site the optimiser found infeasible
    kinds = np.empty(n, dtype=object)
    for k, sl in state.kind_slices.items():
        kinds[sl] = k.value
    plan = Plan(
        T0, 0.25, state.device_ids, kinds,
        np.zeros(0, dtype=object), np.zeros(0, dtype=object), p, np.zeros_like(p),
        np.zeros(0, np.int64), np.zeros((0, steps + 1)), np.zeros(0, np.int64),
        np.zeros((0, steps + 1)), np.zeros(0, np.int64), np.zeros((0, steps + 1)),
        np.zeros((0, steps)), np.zeros((0, steps)), np.zeros((0, steps)),
        Objective(0.0, 0.0, 0.0, 0.0, 0.0), "optimal",
    )  # fmt: skip
    res = executor.apply(plan)
    assert res.plan_id == "plan-20260715T0600Z-1"
    assert res.refused == {}
    sent = link.schedules[-1]
    want = state.controllable() & np.isfinite(p).any(axis=1)
    want[load] = False
    assert sorted(sent.device_ids.tolist()) == sorted(state.device_ids[want].tolist())
    assert sent.step_s == 900.0
    assert sent.valid_until == T0 + steps * 900.0


def test_the_executors_slot_lookup_agrees_with_the_domains() -> None:
    from gridflock.domain.schedules import slot_values
    from gridflock.service.plans import _Grid

    rng = np.random.default_rng(5)
    g = _Grid(50)
    for _ in range(6):  # schedules of different grids and lengths over random rows
        rows = rng.choice(50, 12, replace=False)
        width = int(rng.integers(1, 10))
        start = float(rng.uniform(0, 3000))
        step = float(rng.choice([60.0, 900.0]))
        p = rng.normal(0, 3, (12, width))
        p[rng.random(p.shape) < 0.2] = np.nan
        until = start + float(rng.integers(1, width + 1)) * step
        g.put(rows, start, step, until, p, np.arange(12))
    for t in rng.uniform(-100, 12_000, 200):
        want = slot_values(g.start, g.step, g.until, g.p.astype(np.float64), float(t))
        np.testing.assert_array_equal(g.at(float(t)), want)
    for start, step, steps in ((0.0, 900.0, 9), (450.0, 900.0, 4), (1800.0, 60.0, 30)):
        got = g.over(np.arange(50), start, step, steps)  # same grid, shifted, another grid
        for k in range(steps):
            mid = start + (k + 0.5) * step
            want = slot_values(g.start, g.step, g.until, g.p.astype(np.float64), mid)
            np.testing.assert_array_equal(got[:, k], want.astype(np.float32))


def test_limits_are_sent_compared_on_replan_and_stored(tmp_path: Path) -> None:
    spec = generate_fleet(4, 4)
    link = MemoryLink(spec)
    rt, clock, store = _rig(tmp_path, spec, link)
    plans = rt.loop.plans
    assert plans is not None
    _, ids = _batteries(rt)
    n = len(ids)
    p = np.full((n, 4), np.nan)  # own control throughout ...
    hi = np.full((n, 4), 1.0)  # ... giving at most 1 kW
    res = plans.apply(PlanSeries("cap", ids, p, clock.t, SLOT_S, None, hi))
    assert res.sent == n
    np.testing.assert_array_equal(link.schedules[-1].p_max_kw, hi)
    assert link.schedules[-1].p_min_kw is None
    same = plans.apply(PlanSeries("cap", ids, p, clock.t, SLOT_S, None, hi))
    assert same.sent == 0
    hi2 = hi.copy()
    hi2[0, 2] = 0.5
    assert plans.apply(PlanSeries("cap2", ids, p, clock.t, SLOT_S, None, hi2)).sent == 1
    crossed = plans.apply(PlanSeries("bad", ids, p, clock.t, SLOT_S, hi + 1.0, hi))
    assert crossed.refused == {"bad_schedule": n}
    rt.writer.flush()
    stored = store.schedules_for_plan("cap2")
    assert stored["p_max_kw"].iloc[0] == [1.0, 1.0, 0.5, 1.0]
    assert stored["p_min_kw"].iloc[0] is None
    assert stored["p_kw"].iloc[0] == [None, None, None, None]


def test_a_solved_plan_reaches_the_devices_as_the_optimiser_set_it() -> None:
    from gridflock.fleet.state import FleetState
    from gridflock.optimize import SiteForecasts, Tariff, build_problem, solve
    from gridflock.service.plans import PlanExecutor

    spec = generate_fleet(4, 4)
    state = FleetState.from_spec(spec)
    steps, n_sites = 8, len(spec.sites)
    load = np.ones((n_sites, steps))
    fc = SiteForecasts(load, np.zeros_like(load), np.zeros_like(load), np.full(steps, 5.0))
    tariff = Tariff.time_of_use(n_sites, np.arange(steps) * 0.25, [(1.0, 2.0, 0.5)], 0.1, 0.05)
    plan = solve(build_problem(spec, T0, fc, tariff, n_steps=steps))
    link = MemoryLink(spec)
    res = PlanExecutor(state, link, lambda: T0).apply(plan, plan_id="tou-1")
    assert res.refused == {}
    sent = link.schedules[-1]
    assert (sent.start, sent.step_s, sent.valid_until) == (T0, 900.0, T0 + steps * 900.0)
    row = {str(d): i for i, d in enumerate(plan.device_ids)}
    for dev, slots in zip(sent.device_ids, sent.p_kw, strict=True):
        np.testing.assert_array_equal(slots, plan.p_kw[row[str(dev)]])
    bat = state.device_ids[state.kind_slices[DeviceKind.BATTERY]]
    assert set(bat[state.controllable()[state.kind_slices[DeviceKind.BATTERY]]]) <= set(
        sent.device_ids
    )
