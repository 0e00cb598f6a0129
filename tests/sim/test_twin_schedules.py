"""The twin follows plans: a schedule slot by slot, commands over it, then its own control."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridflock.domain import CommandBatch, DeviceKind
from gridflock.domain.schedules import ScheduleBatch
from gridflock.fleet.generate import generate_fleet
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.twin import Twin

K = DeviceKind
START = pd.Timestamp("2026-07-15 00:00", tz="Europe/Berlin").tz_convert("UTC")
STEP_S = 300.0
SLOT_S = 900.0


def _plan() -> np.ndarray:
    """One battery's day: idle, charge late morning, own control, discharge in the evening."""
    p = np.zeros(96)
    p[40:56] = -1.5  # 10:00-14:00 charge
    p[56:72] = np.nan  # 14:00-18:00 own control
    p[72:88] = 1.5  # 18:00-22:00 discharge
    return p


def _schedules(ids: np.ndarray, p: np.ndarray, t0: float, until: float, seq: int, issued: float):
    n = len(ids)
    return ScheduleBatch(
        np.array([f"day:{seq}:{d}" for d in ids], dtype=object),
        ids,
        np.full(n, seq, np.int64),
        np.tile(p, (n, 1)),
        t0,
        SLOT_S,
        until,
        issued,
        "day",
    )


def test_batteries_follow_a_24h_schedule_then_their_own_control() -> None:
    spec = generate_fleet(20, 5)
    twin = Twin(spec, START, 288, STEP_S, 3, Imperfections.ideal())
    s = twin.cap.kind_slices[K.BATTERY]
    ids = twin.cap.device_ids[s]
    t0 = twin.now
    until = t0 + 23 * 3600.0  # the plan ends an hour before its last slots
    verdicts = twin.send_schedules(_schedules(ids, _plan(), t0, until, 1, t0))
    assert (verdicts == 0).all()
    c = twin.col[K.BATTERY]
    site = twin.cap.site_idx
    followed = at_limit = own_ok = own_n = 0
    for _ in range(288):
        t = twin.now
        soc_before = twin.real.soc.copy()
        twin.step()
        p = twin.p_kw[s]
        slot = int((t - t0) // SLOT_S)
        want = _plan()[slot] if t < until else np.nan
        full = soc_before >= c["soc_max"] - 1e-3
        empty = soc_before <= twin.bat_floor + 1e-3
        if np.isfinite(want):
            exact = np.isclose(p, want, atol=1e-6)
            soc = twin.real.soc  # full or empty before or within the step: it holds less
            filled = full | (soc >= c["soc_max"] - 1e-6)
            emptied = empty | (soc <= twin.bat_floor + 1e-6)
            limited = ((want < 0) & filled | (want > 0) & emptied) & (np.abs(p) < abs(want))
            assert (exact | limited).all(), f"slot {slot}: {p} instead of {want}"
            followed += int(exact.sum())
            at_limit += int((~exact).sum())
        else:  # own control: the battery balances its home unless it cannot
            assert np.isnan(twin.planned[s]).all()
            net = np.bincount(site, weights=twin.p_kw, minlength=twin.cap.grid.n_sites)[site[s]]
            soc = twin.real.soc  # a battery that filled or emptied within the step is pinned too
            pinned = (
                full
                | empty
                | (soc >= c["soc_max"] - 1e-6)
                | (soc <= twin.bat_floor + 1e-6)
                | np.isclose(p, -c["p_charge_max_kw"])
                | np.isclose(p, c["p_discharge_max_kw"])
            )
            own_ok += int((np.abs(net) < 1e-6).sum() + (pinned & (np.abs(net) >= 1e-6)).sum())
            own_n += len(p)
    assert followed >= 0.8 * (followed + at_limit)  # the plan was held, not merely allowed
    assert own_ok == own_n


def test_a_command_overrides_the_schedule_and_the_device_goes_back_to_it() -> None:
    spec = generate_fleet(10, 2)
    start = pd.Timestamp("2026-07-15 18:00", tz="Europe/Berlin").tz_convert("UTC")
    twin = Twin(spec, start, 24, STEP_S, 3, Imperfections.ideal())
    s = twin.cap.kind_slices[K.BATTERY]
    ids = twin.cap.device_ids[s]
    t0 = twin.now
    twin.send_schedules(_schedules(ids, np.full(8, 1.0), t0, t0 + 2 * 3600.0, 1, t0))
    twin.step()
    assert np.allclose(twin.p_kw[s], 1.0)
    n = len(ids)
    twin.send(  # an event takes the batteries for 15 minutes
        CommandBatch(
            np.array([f"ev:{i}" for i in range(n)], dtype=object), ids, np.full(n, -0.5),
            np.full(n, twin.now + 900.0), np.full(n, 7, np.int64), twin.now, "ev",
        )
    )  # fmt: skip
    for _ in range(3):
        twin.step()
        assert np.allclose(twin.p_kw[s], -0.5)
    twin.step()  # the command lapsed: back on the plan
    assert np.allclose(twin.p_kw[s], 1.0)
    twin.send(  # an event releasing a device early hands it back to its plan as well
        CommandBatch(
            np.array([f"ev2:{i}" for i in range(n)], dtype=object), ids, np.full(n, np.nan),
            np.full(n, twin.now + 900.0), np.full(n, 8, np.int64), twin.now, "ev2",
        )
    )  # fmt: skip
    twin.step()
    assert np.allclose(twin.p_kw[s], 1.0)


def test_replayed_and_expired_schedules_are_refused_and_the_plan_kept() -> None:
    spec = generate_fleet(5, 2)
    twin = Twin(spec, START, 10, STEP_S, 3, Imperfections.ideal())
    s = twin.cap.kind_slices[K.BATTERY]
    ids = twin.cap.device_ids[s]
    t0 = twin.now
    n = len(ids)
    assert (twin.send_schedules(_schedules(ids, np.full(4, 0.5), t0, t0 + 3600, 5, t0)) == 0).all()
    replay = twin.send_schedules(_schedules(ids, np.full(4, -2.0), t0, t0 + 3600, 5, t0))
    old = twin.send_schedules(_schedules(ids, np.full(4, -2.0), t0, t0 + 3600, 4, t0))
    late = twin.send_schedules(_schedules(ids, np.full(4, -2.0), t0 - 3600, t0, 6, t0))
    assert (replay == 1).all()
    assert (old == 1).all()
    assert (late == 2).all()
    acks = twin.schedule_acks
    assert (acks.accepted, acks.replayed, acks.expired) == (n, 2 * n, n)
    twin.step()
    assert np.allclose(twin.p_kw[s], 0.5)  # still the accepted plan


def test_limits_keep_the_own_control_within_them_where_no_setpoint_is_given() -> None:
    spec = generate_fleet(30, 2)
    start = pd.Timestamp("2026-07-15 19:00", tz="Europe/Berlin").tz_convert("UTC")
    free = Twin(spec, start, 4, STEP_S, 3, Imperfections.ideal())
    capped = Twin(spec, start, 4, STEP_S, 3, Imperfections.ideal())
    s = capped.cap.kind_slices[K.BATTERY]
    ids = capped.cap.device_ids[s]
    n, t0 = len(ids), capped.now
    hi = np.full((n, 4), 0.2)  # discharge at most 0.2 kW, otherwise their own control
    b = _schedules(ids, np.full(4, np.nan), t0, t0 + 4 * SLOT_S, 1, t0)
    capped.send_schedules(
        ScheduleBatch(
            b.schedule_ids, b.device_ids, b.seq, b.p_kw, b.start, b.step_s, b.valid_until,
            b.issued_at, b.plan_id, None, hi,
        )
    )  # fmt: skip
    free.step()
    capped.step()
    own, got = free.p_kw[s], capped.p_kw[s]
    assert (own > 0.2 + 1e-6).sum() >= 3  # in the evening most would give more
    np.testing.assert_allclose(got, np.minimum(own, 0.2), atol=1e-9)


def test_the_realtime_twin_keeps_its_devices_plans_when_its_day_starts_again() -> None:
    from gridflock.sim.realtime import RealtimeTwin

    clock = [1_784_116_800.0]
    spec = generate_fleet(5, 2)
    rt = RealtimeTwin(
        spec, step_s=10.0, hours=0.05, imperfections=Imperfections.ideal(), clock=lambda: clock[0]
    )
    s = rt.twin.cap.kind_slices[K.BATTERY]
    ids = rt.twin.cap.device_ids[s]
    now = clock[0]
    rt.send_schedules(_schedules(ids, np.array([0.4, -0.4]), now, now + 2 * SLOT_S, 1, now))
    first = rt.twin
    clock[0] += 300.0  # past the twin's 3-minute window: it starts its day again
    rt.receive()
    assert rt.twin is not first
    np.testing.assert_allclose(rt.twin.planned[s], 0.4)
    np.testing.assert_allclose(rt.twin.p_kw[s], 0.4)
