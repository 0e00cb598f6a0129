"""Envelope hold: sites and nodes brought back inside their envelopes, checked against an LP.

The oracle is an exact LP (HiGHS) over the true constraints: each device moves within
its headroom, every site and node in breach needs its breach removed (a slack priced
far above any curtailment, so the LP removes all it can), and every site and node keeps
its limit on the other side. The hold's result must reach the LP's optimum: the same
breach left and the same rank-weighted curtailment.
"""

from __future__ import annotations

import highspy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.dispatch import Dispatcher
from gridflock.dispatch.envelope_hold import breach_kw, hold_arrays
from gridflock.domain.envelopes import Envelope, EnvelopeKind, TargetType
from gridflock.fleet.state import FleetState, GridTopology

from ._lp_oracle import random_fleet
from .test_dispatcher import T0, Obedient, grid_fleet

INF = highspy.kHighsInf
WEIGHT = np.array([1.0, 3.0, 9.0])  # rank 0 (storage) < 1 (loads) < 2 (curtailment)
SLACK = 1e5  # a kW of breach left costs more than any curtailment
_SEEN: list[bool] = []


def _lp(
    h: np.ndarray,
    rank: np.ndarray,
    members: list[np.ndarray],
    need: np.ndarray,
    room: np.ndarray,
) -> float:
    """Least ``SLACK * breach left + weighted moves`` over the true constraints."""
    n, m = len(h), len(members)
    hs = highspy.Highs()
    hs.setOptionValue("output_flag", False)
    hs.setOptionValue("primal_feasibility_tolerance", 1e-9)
    lp = highspy.HighsLp()
    lp.num_col_ = n + m
    lp.col_cost_ = np.r_[WEIGHT[rank], np.full(m, SLACK)].astype(np.float64)
    lp.col_lower_ = np.zeros(n + m)
    lp.col_upper_ = np.r_[h, np.full(m, INF)].astype(np.float64)
    lower, upper, start, index, value = [], [], [0], [], []
    for j, mem in enumerate(members):
        if need[j] > 0:  # moves below + slack >= breach
            lower.append(float(need[j]))
            upper.append(INF)
            index += [*map(int, mem), n + j]
            value += [1.0] * len(mem) + [1.0]
            start.append(len(index))
        if np.isfinite(room[j]):  # never past the limit on the other side
            lower.append(-INF)
            upper.append(float(max(room[j], 0.0)))
            index += list(map(int, mem))
            value += [1.0] * len(mem)
            start.append(len(index))
    lp.num_row_ = len(lower)
    lp.row_lower_ = np.array(lower, np.float64)
    lp.row_upper_ = np.array(upper, np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(start, np.int32)
    lp.a_matrix_.index_ = np.array(index, np.int32)
    lp.a_matrix_.value_ = np.array(value, np.float64)
    hs.passModel(lp)
    hs.run()
    assert hs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(hs.getInfo().objective_function_value)


def _case(seed: int, export: bool, other_side: bool) -> None:
    rng = np.random.default_rng(seed)
    fleet = random_fleet(rng)
    g = fleet.grid
    n = len(fleet.site_idx)
    lim_s = rng.choice([np.inf, 0.0, 1.5, 5.0, 12.0], g.n_sites)
    lim_n = rng.choice([np.inf, 0.0, 4.0, 15.0, 40.0], g.n_nodes)
    opp_s = rng.choice([np.inf, 2.0, 10.0], g.n_sites) if other_side else np.full(g.n_sites, np.inf)
    opp_n = rng.choice([np.inf, 5.0, 30.0], g.n_nodes) if other_side else np.full(g.n_nodes, np.inf)
    grid = GridTopology(
        **{
            **g.__dict__,
            "site_export_limit_kw": lim_s if export else opp_s,
            "site_import_limit_kw": opp_s if export else lim_s,
            "limit_export_kw": lim_n if export else opp_n,
            "limit_import_kw": opp_n if export else lim_n,
        }
    )
    # baselines: exporting (PV) for an export breach, drawing for an import one
    base = rng.uniform(0.0, 8.0, n) * (1.0 if export else -1.0)
    h = fleet.headroom
    rank = rng.integers(0, 3, n)
    free = fleet.mask
    zero = np.zeros(n)
    res = hold_arrays(
        grid,
        fleet.groups,
        fleet.site_idx,
        base,
        zero if export else h,
        h if export else zero,
        free,
        rank,
        rank,
    )
    d = res.delta_kw
    # only free devices move, within their headroom, in the direction that helps
    assert np.all(d[~free] == 0.0)
    moved = -d if export else d
    assert np.all(moved >= -1e-9)
    assert np.all(moved <= h + 1e-9)
    sites, nodes = fleet.members()
    site_p = fleet.groups.site.sum(base)
    after = fleet.groups.site.sum(base + d)
    sign = 1.0 if export else -1.0
    need = np.r_[
        np.maximum(sign * site_p - lim_s, 0.0),
        np.maximum(sign * g.node_flow_kw(site_p) - lim_n, 0.0),
    ]
    room = np.r_[opp_s + sign * site_p, opp_n + sign * g.node_flow_kw(site_p)]
    # nothing is pushed past its limit on the other side (nor further, if already past)
    flows_after = np.r_[sign * after, sign * g.node_flow_kw(after)]
    flows_before = np.r_[sign * site_p, sign * g.node_flow_kw(site_p)]
    opp = np.r_[opp_s, opp_n]
    assert np.all(-flows_after <= np.maximum(opp, -flows_before) + 1e-6)
    left = np.r_[np.abs(res.site_left_kw), np.abs(res.node_left_kw)]
    np.testing.assert_allclose(left, np.maximum(flows_after - np.r_[lim_s, lim_n], 0.0), atol=1e-6)
    if not other_side:  # the exact optimum: least breach left, then least curtailment
        got = SLACK * float(left.sum()) + float((WEIGHT[rank] * moved).sum())
        best = _lp(np.where(free, h, 0.0), rank, [*sites, *nodes], need, room)
        assert abs(got - best) <= 1e-5 * max(1.0, best), (got, best)
        _SEEN.append(float(moved.sum()) > 0)
    else:  # the breaches only shrink
        assert np.all(left <= need + 1e-9)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_hold_reaches_the_lp_optimum(seed: int, export: bool) -> None:
    _case(seed, export, other_side=False)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_hold_never_pushes_past_the_other_limit(seed: int, export: bool) -> None:
    _case(seed, export, other_side=True)


def test_breach_signs() -> None:
    g = random_fleet(np.random.default_rng(1)).grid
    s = GridTopology(
        **{
            **g.__dict__,
            "site_export_limit_kw": np.full(g.n_sites, 2.0),
            "site_import_limit_kw": np.full(g.n_sites, 3.0),
        }
    )
    p = np.linspace(-5.0, 5.0, g.n_sites)
    sb, _ = breach_kw(p, g.node_flow_kw(p), s)
    np.testing.assert_allclose(sb, np.where(p > 2, p - 2, np.where(p < -3, p + 3, 0.0)))


# ------------------------------------------------------------------ in the dispatcher
def _run(disp: Dispatcher, dev: Obedient, t0: float, t1: float, hook=None):  # type: ignore[no-untyped-def]
    trace = []
    t = t0
    while t < t1:
        if hook is not None:
            hook(t)
        dev.report(t)
        for batch in disp.step(t):
            dev.send(batch)
        trace.append((t, dev.p(t + 1e-3).copy()))
        t += 2.0
    return trace


def test_dispatcher_holds_a_site_without_any_event_and_lets_go() -> None:
    """PV at 1 kW against a 0.3 kW export envelope: the battery charges, PV is not cut."""
    state = FleetState.from_spec(grid_fleet())
    disp = Dispatcher(state)
    dev = Obedient(state)
    sites = list(state.grid.site_ids)
    s0 = sites.index("f0s0")
    ids = list(state.device_ids)
    bat, pv = ids.index("f0s0-bat"), ids.index("f0s0-pv")
    disp.set_envelopes([Envelope("z", TargetType.SITE, "f0s0", T0, T0 + 60, None, 0.3)])
    trace = _run(disp, dev, T0, T0 + 120)
    for t, p in trace:
        site_p = state.site_power_kw(p)
        if t < T0 + 60:
            assert site_p[s0] <= 0.3 + 1e-6, (t, site_p[s0])
            assert p[pv] == 1.0  # storage first: nothing curtailed
            assert abs(p[bat] + 0.7) < 1e-6
    assert disp.hold_commands > 0
    # the envelope ended: released (NaN), the battery back to idle, PV back to 1 kW
    assert not disp.env_held.any()
    assert trace[-1][1][bat] == 0.0
    assert state.site_power_kw(trace[-1][1])[s0] == 1.0
    # commands renewed before they lapse: held for the whole minute (checked above)


def test_node_envelope_and_events_on_top() -> None:
    """A feeder at 2 kW export: sites held; an up event cannot push it back over."""
    from gridflock.domain import Event, Scope

    state = FleetState.from_spec(grid_fleet())
    disp = Dispatcher(state)
    dev = Obedient(state)
    node = list(state.grid.node_ids).index("f0")
    disp.set_envelopes([Envelope("n", TargetType.NODE, "f0", T0, T0 + 300, None, 2.0)])
    ev = Event("up", 20.0, T0 + 20, T0 + 200, Scope.parse("grid_node:f0"))
    disp.add(ev)
    trace = _run(disp, dev, T0, T0 + 100)
    for _t, p in trace:
        flow = state.grid.node_flow_kw(state.site_power_kw(p))[node]
        assert flow <= 2.0 + 1e-6
    # six sites with 1 kW of PV each: 4 kW less, from batteries charging
    assert disp.hold_result is not None
    assert abs(disp.hold_result.node_breach_kw[node] - 4.0) < 1e-6


def test_para14a_dimming_keeps_the_floor() -> None:
    """§14a on a site whose battery draws 5 kW: dimmed to 4.2 kW, never lower."""
    state = FleetState.from_spec(grid_fleet())
    disp = Dispatcher(state)
    dev = Obedient(state)
    ids = list(state.device_ids)
    bat, pv = ids.index("f1s0-bat"), ids.index("f1s0-pv")
    dev.natural[bat] = -5.0  # charging at full power on its own
    dev.natural[pv] = 0.0
    disp.set_envelopes(
        [Envelope("d", TargetType.SITE, "f1s0", T0, T0 + 300, 0.0, None, EnvelopeKind.PARA14A)]
    )
    trace = _run(disp, dev, T0, T0 + 40)
    assert all(abs(p[bat] + 4.2) < 1e-6 for _, p in trace[1:])


def test_the_oracle_cases_move_devices() -> None:
    """The random cases are not all trivial: most move something (seeds fixed)."""
    _SEEN.clear()
    for seed in range(60):
        _case(seed, bool(seed % 2), other_side=False)
    assert sum(_SEEN) >= 20, sum(_SEEN)


def test_para14a_dimming_of_a_node_reaches_every_device_below_it() -> None:
    """§14a on feeder f1 (six batteries at 5 kW): limit 0 raised to 6 x 4.2 kW, each at 4.2."""
    state = FleetState.from_spec(grid_fleet())
    disp = Dispatcher(state)
    dev = Obedient(state)
    ids = [str(d) for d in state.device_ids]
    bats = [k for k, d in enumerate(ids) if d.startswith("f1") and d.endswith("-bat")]
    pvs = [k for k, d in enumerate(ids) if d.startswith("f1") and d.endswith("-pv")]
    dev.natural[bats] = -5.0
    dev.natural[pvs] = 0.0
    disp.set_envelopes(
        [Envelope("d", TargetType.NODE, "f1", T0, T0 + 300, 0.0, None, EnvelopeKind.PARA14A)]
    )
    node = list(state.grid.node_ids).index("f1")
    trace = _run(disp, dev, T0, T0 + 40)
    for _, p in trace[1:]:
        np.testing.assert_allclose(p[bats], -4.2, atol=1e-6)  # the floor, not below
        flow = state.grid.node_flow_kw(state.site_power_kw(p))[node]
        assert flow == pytest.approx(-6 * 4.2, abs=1e-6)
