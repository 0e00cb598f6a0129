"""The tracking loop against a minimal in-test device model (obedient or deaf batteries)."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.dispatch import Dispatcher, TrackerConfig
from gridflock.domain import DeviceKind, Event, EventStatus, Scope, TelemetryBatch
from gridflock.domain.events import IllegalTransitionError
from gridflock.fleet.state import FleetState

T0 = 1_750_000_000.0


class Batteries:
    """Batteries that hold their setpoint exactly, except those told to ignore commands."""

    def __init__(self, state: FleetState, deaf: set[str]) -> None:
        self.state = state
        s = state.kind_slices[DeviceKind.BATTERY]
        self.ids = state.device_ids[s]
        self.p = np.zeros(len(self.ids))
        self.until = np.full(len(self.ids), np.inf)
        self.deaf = np.isin(self.ids, list(deaf))

    def send(self, cmd) -> None:
        pos = {d: k for k, d in enumerate(self.ids)}
        for d, sp, until in zip(cmd.device_ids, cmd.p_setpoint_kw, cmd.valid_until, strict=True):
            k = pos[d]
            if not self.deaf[k]:
                self.p[k] = 0.0 if np.isnan(sp) else sp
                self.until[k] = until

    def report(self, now: float) -> None:
        self.p[now >= self.until] = 0.0  # expired: back to own control (idle)
        n = len(self.ids)
        self.state.apply(
            TelemetryBatch(self.ids, np.full(n, now), self.p.copy(), np.full(n, 0.8), np.zeros(n))
        )


def run(state, event, fleet, steps, config=None):
    disp = Dispatcher(state, config or TrackerConfig(interval_s=10, grace_s=20))
    tracker = disp.add(event)
    delivered = []
    for k in range(steps):
        now = T0 + 10 * k
        fleet.report(now)
        delivered.append(tracker.delivered_kw())
        for cmd in disp.step(now):
            fleet.send(cmd)
    return tracker, delivered


def test_meets_target_and_completes(small_spec):
    st = FleetState.from_spec(small_spec)
    fleet = Batteries(st, deaf=set())
    ev = Event("e1", 12.0, T0, T0 + 300)
    tracker, delivered = run(st, ev, fleet, 35)
    assert delivered[5] == pytest.approx(12.0, rel=0.02)
    assert ev.status is EventStatus.COMPLETED
    assert tracker.non_responders == 0
    assert fleet.p.sum() > 0  # devices are handed back at random times after the end...
    fleet.report(T0 + 300 + TrackerConfig().release_spread_s)
    assert np.all(fleet.p == 0)  # ...all of them within the spread
    perf = tracker.performance()
    assert perf.delivered_pct == pytest.approx(100, abs=12)  # the first sample is a ramp


def test_non_responders_are_dropped_and_their_share_reallocated(small_spec):
    st = FleetState.from_spec(small_spec)
    fleet = Batteries(st, deaf={"s0-bat", "s1-bat"})
    ev = Event("e2", 12.0, T0, T0 + 600)
    tracker, delivered = run(st, ev, fleet, 65)
    assert tracker.non_responders == 2
    assert delivered[20] == pytest.approx(12.0, rel=0.03)
    fleet.report(T0 + 600 + TrackerConfig().release_spread_s)
    assert fleet.p[~fleet.deaf].sum() == pytest.approx(0.0)  # released


def test_shortfall_reported_when_the_fleet_cannot(small_spec):
    st = FleetState.from_spec(small_spec)
    fleet = Batteries(st, deaf=set())
    ev = Event("e3", 500.0, T0, T0 + 300)
    tracker, delivered = run(st, ev, fleet, 5)
    assert tracker.shortfall_kw > 400
    assert max(delivered) < 60  # 6 batteries of 5 kW, feeder limits


def test_down_event_charges_batteries(small_spec):
    st = FleetState.from_spec(small_spec)
    fleet = Batteries(st, deaf=set())
    ev = Event("e4", -6.0, T0, T0 + 300, scope=Scope("program", "summer"))
    _, delivered = run(st, ev, fleet, 10)
    assert delivered[5] == pytest.approx(-6.0, rel=0.03)
    charging = fleet.p < 0
    sites = set(st.grid.site_ids[st.site_idx[st.kind_slices[DeviceKind.BATTERY]][charging]])
    assert sites <= {"s1", "s3", "s5"}


def test_cancel_releases_devices(small_spec):
    st = FleetState.from_spec(small_spec)
    fleet = Batteries(st, deaf=set())
    ev = Event("e5", 6.0, T0, T0 + 3000)
    disp = Dispatcher(st, TrackerConfig())
    tracker = disp.add(ev)
    fleet.report(T0)
    for cmd in disp.step(T0):
        fleet.send(cmd)
    assert fleet.p.sum() == pytest.approx(6.0)
    fleet.send(tracker.cancel(T0 + 10))
    assert ev.status is EventStatus.CANCELLED
    assert fleet.p.sum() == 0
    assert disp.trackers == {}  # a finished event leaves the dispatcher
    with pytest.raises(IllegalTransitionError):
        ev.transition(EventStatus.ACTIVE)


def test_commands_expire_and_are_renewed_while_held(small_spec):
    st = FleetState.from_spec(small_spec)
    fleet = Batteries(st, deaf=set())
    ev = Event("e6", 6.0, T0, T0 + 3000)
    disp = Dispatcher(st, TrackerConfig(interval_s=10, command_ttl_s=120))
    disp.add(ev)
    fleet.report(T0)
    (cmd,) = disp.step(T0)
    fleet.send(cmd)
    assert np.all(cmd.valid_until == T0 + 120)
    assert len(set(cmd.command_ids)) == len(cmd)
    fleet.report(T0 + 10)
    assert disp.step(T0 + 10) == []  # nothing moved, nothing expiring
    fleet.report(T0 + 90)
    (again,) = disp.step(T0 + 90)  # less than a third of the lifetime left: renewed
    assert set(again.device_ids) == set(cmd.device_ids)
    assert np.all(again.valid_until == T0 + 90 + 120)
    assert np.all(again.seq > cmd.seq[0])
