"""The one flexibility figure: total within limits, committed by events, and what remains."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import small_fleet_records

from gridflock.dispatch import limit_headroom
from gridflock.domain import Scope, build_spec
from gridflock.fleet import GROUP_BY, aggregate, flexibility
from gridflock.fleet.available import available_flexibility
from gridflock.fleet.state import FleetState

NOW = 1_750_000_000.0


@pytest.fixture
def state(small_spec) -> FleetState:
    """The small fleet online at baseline: batteries idle at 80 %, PV producing 6 kW."""
    s = FleetState.from_spec(small_spec)
    s.ts[:] = NOW
    s.online[:] = True
    s.p_baseline_kw[:] = 0.0
    s.p_baseline_kw[s.kind_slices["pv"]] = 6.0
    s.p_kw[:] = s.p_baseline_kw
    return s


def test_total_keeps_every_site_and_grid_limit(state):
    a = available_flexibility(state, 1.0, NOW)
    raw = flexibility(state, 1.0, NOW)
    ctl = state.controllable()
    # up is export: each site exports 6 kW of PV already against a 10 kW export limit
    site_up = state.node_groups.site.sum(a.up_kw)
    site_p = state.site_power_kw()
    assert (site_p + site_up <= state.grid.site_export_limit_kw + 1e-9).all()
    # feeder f-2 may export 8 kW and carries 18 kW of PV already: nothing more goes up there
    node_up = state.grid.node_flow_kw(site_up)
    f2 = list(state.grid.node_ids).index("f-2")
    assert node_up[f2] == pytest.approx(0.0, abs=1e-9)
    assert a.up_kw.sum() < (raw.up_kw * ctl).sum()
    assert (a.up_kw <= raw.up_kw + 1e-12).all()
    assert a.totals()["remaining_up_kw"] == pytest.approx(a.up_kw.sum())  # nothing held


@pytest.mark.parametrize("by", GROUP_BY)
def test_groups_sum_to_the_totals(state, by):
    a = available_flexibility(state, 2.0, NOW)
    rows = aggregate(state, by, a.columns())
    for name, total in a.totals().items():
        assert rows[name].sum() == pytest.approx(total)


def test_a_scope_gets_its_exact_figure(state):
    scope = state.scope_mask(Scope("program", "summer"))
    a = available_flexibility(state, 1.0, NOW, scope=scope)
    assert (a.up_kw[~scope] == 0).all()
    base = state.baseline_kw()
    site_p = state.site_power_kw(base)
    expected = limit_headroom(
        flexibility(state, 1.0, NOW).down_kw,
        state.node_groups,
        state.grid,
        site_p,
        state.grid.node_flow_kw(site_p),
        up=False,
        mask=scope & state.controllable(),
    )
    assert a.down_kw.sum() == pytest.approx(expected.sum())


def test_held_power_is_committed_and_leaves_the_rest_remaining(state):
    bat = state.indices(["s0-bat", "s1-bat"])
    held = np.zeros(state.n)
    held[bat] = [-2.0, -1.5]  # two batteries charging for a down event, within their 2.1 kW
    free = available_flexibility(state, 1.0, NOW)
    a = available_flexibility(state, 1.0, NOW, held_kw=held)
    assert a.totals()["committed_down_kw"] == pytest.approx(3.5)
    assert a.totals()["committed_up_kw"] == 0.0
    assert (a.remaining_down_kw[bat] == 0).all()  # a device serves one event at a time
    assert (a.remaining_up_kw[bat] == 0).all()
    assert a.remaining_down_kw.sum() + a.committed_down_kw.sum() <= free.down_kw.sum() + 1e-9
    assert a.up_kw.sum() == pytest.approx(free.up_kw.sum())  # the total is the fleet's


@settings(max_examples=40, deadline=None)
@given(
    held_share=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
    up=st.booleans(),
)
def test_remaining_on_top_of_held_power_never_crosses_a_limit(held_share, seed, up):
    s = FleetState.from_spec(build_spec(*small_fleet_records()))
    rng = np.random.default_rng(seed)
    s.ts[:] = NOW
    s.online[:] = rng.random(s.n) < 0.9
    s.p_baseline_kw[:] = 0.0
    s.p_baseline_kw[s.kind_slices["pv"]] = rng.uniform(0, 8, 6)
    s.soc[s.kind_slices["battery"]] = rng.uniform(0.2, 1.0, 6)
    free = available_flexibility(s, 1.0, NOW)
    pick = rng.random(s.n) < held_share
    sign = 1.0 if up else -1.0
    held = sign * np.where(pick, (free.up_kw if up else free.down_kw), 0.0)
    a = available_flexibility(s, 1.0, NOW, held_kw=held)
    extra = a.remaining_up_kw if up else -a.remaining_down_kw
    base = np.where(s.online, s.baseline_kw(), 0.0)
    site_p = s.site_power_kw(base + held + extra)
    node_p = s.grid.node_flow_kw(site_p)
    g = s.grid
    tol = 1e-6
    if up:
        assert (site_p <= np.maximum(g.site_export_limit_kw, s.site_power_kw(base)) + tol).all()
        assert (
            node_p <= np.maximum(g.limit_export_kw, g.node_flow_kw(s.site_power_kw(base))) + tol
        ).all()
    else:
        assert (-site_p <= np.maximum(g.site_import_limit_kw, -s.site_power_kw(base)) + tol).all()
        assert (
            -node_p <= np.maximum(g.limit_import_kw, -g.node_flow_kw(s.site_power_kw(base))) + tol
        ).all()
