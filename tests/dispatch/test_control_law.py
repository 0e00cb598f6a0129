"""The tracker's control law: band-clipped setpoints, forced moves, bounded requests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gridflock.dispatch import Dispatcher, EventTracker, TrackerConfig
from gridflock.domain import Event
from gridflock.fleet.state import FleetState

T0 = 1_750_000_000.0
N = 12
kw = st.floats(-20, 20, allow_nan=False)
maybe_kw = st.one_of(kw, st.just(float("nan")))


def tracker(spec, target_kw: float) -> EventTracker:
    disp = Dispatcher(FleetState.from_spec(spec), TrackerConfig())
    return disp.add(Event("e", target_kw, T0, T0 + 3600))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    up=st.booleans(),
    setpoint=arrays(float, N, elements=kw),
    edge=arrays(float, N, elements=maybe_kw),
    base=arrays(float, N, elements=kw),
)
def test_setpoints_never_pass_the_band_edge_the_event_pushes_to(
    small_spec, up, setpoint, edge, base
):
    t = tracker(small_spec, 10.0 if up else -10.0)
    out = t.within_band(setpoint, edge)
    known = np.isfinite(edge)
    # never beyond the edge in the event's direction, never pushed further than asked
    assert np.all(t.sign * (out[known] - edge[known]) <= 1e-12)
    assert np.all(t.sign * (out - setpoint) <= 1e-12)
    assert np.array_equal(out[~known], setpoint[~known])
    # the other edge is left alone: a setpoint already inside is unchanged
    inside = known & (t.sign * (setpoint - edge) <= 0)
    assert np.array_equal(out[inside], setpoint[inside])
    # forced moves: only against the event, only where a held device's edge is past its base
    held = np.arange(N) % 2 == 0
    forced = t.forced_kw(edge, base, held)
    gap = np.where(held & known, t.sign * (edge - base), 0.0)
    assert forced <= 0
    assert forced == pytest.approx(float(np.minimum(gap, 0.0).sum()))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.floats(0.5, 1000) | st.floats(-1000, -0.5),
    forced=st.floats(-5000, 0),
    delivered=st.floats(-5000, 5000),
    slip=st.floats(-5000, 5000),
    released=st.floats(-5000, 5000),
    saturated=st.booleans(),
)
def test_the_request_is_bounded_and_does_not_wind_up(
    small_spec, target, forced, delivered, slip, released, saturated
):
    t = tracker(small_spec, target)
    cap = (2.0 + t.config.max_correction) * abs(target)
    for k in range(20):
        t.saturated = saturated
        before = t.correction_kw
        t.control(T0 + 60.0 * (k + 2), delivered, slip, released)
        want = t.want_kw(forced)
        assert 0.0 <= want <= cap
        assert abs(t.correction_kw) <= t.config.max_correction * abs(target) + 1e-9
        error = abs(target) - t.sign * delivered
        if saturated and error > 0:
            assert t.correction_kw == before  # anti-windup: frozen while saturated


def test_measured_slip_is_asked_of_the_fleet_at_once(small_spec):
    t = tracker(small_spec, 10.0)
    # held devices were asked for 10 kW and gave 7: 3 kW slip, asked again right away
    t.control(T0 + 10, delivered_kw=7.0, slip_kw=3.0, released_kw=0.0)
    assert t.want_kw() == pytest.approx(13.0)
    # a released device still delivering 1 kW is credited; a forced 2 kW against is covered
    t.control(T0 + 20, delivered_kw=10.0, slip_kw=3.0, released_kw=1.0)
    assert t.want_kw(forced_kw=-2.0) == pytest.approx(10.0 + 2.0 + 3.0 - 1.0)


@settings(max_examples=100, deadline=None)
@given(
    setpoint=arrays(float, N, elements=st.floats(-12, 3, allow_nan=False)),
    p_min=arrays(float, N, elements=st.sampled_from([0.0, 1.4, 4.1])),
)
def test_dead_zone_setpoints_become_runnable_with_their_total_kept(setpoint, p_min):
    out = EventTracker.quantise(setpoint, p_min)
    draw = -setpoint
    dead = (p_min > 0) & (draw > 1e-9) & (draw < p_min - 1e-9)
    assert np.array_equal(out[~dead], setpoint[~dead])  # runnable ones untouched
    assert np.all((out[dead] == 0.0) | (out[dead] == -p_min[dead]))
    # the group draws what it was asked for, to within half the largest minimum
    gap = abs(float(out[dead].sum() - setpoint[dead].sum()))
    assert gap <= 0.5 * float(p_min[dead].max(initial=0.0)) + 1e-9
