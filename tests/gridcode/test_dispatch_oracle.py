"""Dispatch never asks a device for what its site's grid code forbids (oracle over fleets).

Random fleets with every site under a random profile; any target, up or down, fair rule
or merit order, through the same path the dispatcher takes (flexibility -> grid limits
-> allocate). The check is written independently of the code under test, from the rules
themselves: a G98 site's generators never give more than 3.68 kW together (or what they
gave already), and under grid-operator dimming a German heat pump or charger never draws
less than min(what it drew, 4.2 kW) unless its comfort band or session forces it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.dispatch.allocate import allocate, grid_caps
from gridflock.fleet import FleetState, flexibility

from ._fleets import NOW, random_coded_fleet, randomise

FLEET = random_coded_fleet(np.random.default_rng(0), 120)

GEN_KINDS = {"battery", "pv", "wind"}
TOL = 1e-6


def setpoints(state: FleetState, target_kw: float, merit: bool, operator: bool):
    f = flexibility(state, 1.0, NOW, grid_operator=operator)
    up = target_kw > 0
    site_p = state.site_power_kw()
    caps = grid_caps(state.grid, site_p, state.grid.node_flow_kw(site_p), up)
    cost = state.cost_per_kwh + np.arange(state.n) * 1e-6 if merit else None
    a = allocate(f.headroom(up), target_kw, groups=state.node_groups, caps=caps, cost=cost)
    return f.baseline_kw + a.delta_kw, f, a


def check_codes(state: FleetState, p: np.ndarray, operator: bool, band_floor: np.ndarray):
    codes = state.grid.site_grid_code[state.site_idx]
    kinds = np.empty(state.n, dtype=object)
    for k, s in state.kind_slices.items():
        kinds[s] = k.value
    base = state.p_baseline_kw
    gen = np.isin(kinds, list(GEN_KINDS)) & (codes == "GB-G98")
    total = np.bincount(state.site_idx[gen], np.fmax(p[gen], 0.0), state.grid.n_sites)
    before = np.bincount(state.site_idx[gen], np.fmax(base[gen], 0.0), state.grid.n_sites)
    assert (total <= np.maximum(3.68, before) + TOL).all(), "G98 generation cap broken"
    if operator:
        dimmed = np.isin(kinds, ["heat_pump", "ev_charger"]) & (codes == "DE-VDE4105")
        keep = np.minimum(-base, 4.2)  # kW the device keeps drawing
        ok = (-p >= keep - TOL) | (p <= band_floor + TOL) | (p <= base + TOL)
        assert ok[dimmed].all(), "§14a floor broken"


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    share=st.floats(0.05, 2.0),
    up=st.booleans(),
    merit=st.booleans(),
    operator=st.booleans(),
)
def test_no_setpoint_breaks_its_profile(seed, share, up, merit, operator):
    state = randomise(FLEET, np.random.default_rng(seed))
    f0 = flexibility(state, 1.0, NOW, grid_operator=operator)
    target = share * float(f0.headroom(up).sum()) * (1 if up else -1)
    if target == 0:
        return
    p, f, a = setpoints(state, target, merit, operator)
    assert np.isfinite(p).all()
    check_codes(state, p, operator, f.floor_kw)
    assert (a.delta_kw * np.sign(target) >= -TOL).all()  # every device moves the asked way


def test_the_rules_bind_where_they_should():
    """Without the codes the same fleets break them: the check above has teeth."""
    state = random_coded_fleet(np.random.default_rng(5), 200)
    p, f, _ = setpoints(state, 1e6, False, True)
    codes = state.grid.site_grid_code.copy()
    gb = codes == "GB-G98"
    assert gb.any()
    assert (codes == "DE-VDE4105").any()
    state.grid.site_grid_code[:] = ""  # same fleet, no codes
    state.grid.__dict__.pop("code_rules", None)
    p_free, _, _ = setpoints(state, 1e6, False, True)
    state.grid.site_grid_code[:] = codes
    state.grid.__dict__.pop("code_rules", None)
    gen = np.isin(state.site_idx, np.flatnonzero(gb))
    assert np.fmax(p_free, 0)[gen].sum() > np.fmax(p, 0)[gen].sum() + 1.0
    try:
        check_codes(state, p_free, True, np.full(state.n, -np.inf))
    except AssertionError:
        pass
    else:
        raise AssertionError("an uncoded dispatch should break some rule")
    check_codes(state, p, True, f.floor_kw)
