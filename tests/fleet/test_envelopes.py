"""Envelopes applied to a fleet: effective limits, §14a floors, flexibility figures."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.fleet.available import available_flexibility
from gridflock.fleet.envelopes import (
    controllable_per_site,
    effective_grid,
    grid_limits,
    unknown_targets,
)
from gridflock.fleet.state import FleetState

from ..dispatch.test_dispatcher import T0, Obedient, grid_fleet


@pytest.fixture
def state() -> FleetState:
    st = FleetState.from_spec(grid_fleet(sites_per_feeder=3))
    Obedient(st).report(T0)  # PV at 1 kW, batteries idle at half charge
    return st


def test_limits_per_step_are_the_static_ones_tightened(state: FleetState) -> None:
    envs = [
        Envelope("a", TargetType.SITE, "f0s0", T0 + 900, T0 + 1800, 3.0, 0.0),
        Envelope("b", TargetType.NODE, "tx", T0, T0 + 3600, None, 100.0),  # looser than 60
        Envelope("c", TargetType.NODE, "f2", T0 + 1000, T0 + 1100, None, 2.0),
        Envelope("z", TargetType.SITE, "nowhere", T0, T0 + 900, 1.0, None),
    ]
    edges = T0 + 900.0 * np.arange(5)
    lim = grid_limits(state.grid, envs, edges)
    s = list(state.grid.site_ids).index("f0s0")
    n = {nid: j for j, nid in enumerate(state.grid.node_ids)}
    np.testing.assert_array_equal(lim.site_import_kw[s], [12.0, 3.0, 12.0, 12.0])
    np.testing.assert_array_equal(lim.site_export_kw[s], [8.0, 0.0, 8.0, 8.0])
    np.testing.assert_array_equal(lim.node_export_kw[n["tx"]], [60.0] * 4)
    # an envelope covering part of a step holds for the whole step
    np.testing.assert_array_equal(lim.node_export_kw[n["f2"]], [35.0, 2.0, 35.0, 35.0])
    assert [e.id for e in unknown_targets(state.grid, envs)] == ["z"]


def test_para14a_floor_on_a_site_and_on_a_node(state: FleetState) -> None:
    ctrl = controllable_per_site(state)
    assert (ctrl == 1).all()  # one battery per home
    envs = [
        Envelope("s", TargetType.SITE, "f0s0", T0, T0 + 900, 1.0, None, EnvelopeKind.PARA14A),
        Envelope("n", TargetType.NODE, "f1", T0, T0 + 900, 0.0, None, EnvelopeKind.PARA14A),
        Envelope("t", TargetType.NODE, "tx", T0, T0 + 900, 0.0, None, EnvelopeKind.PARA14A),
        Envelope("d", TargetType.SITE, "f0s1", T0, T0 + 900, 1.0, None, EnvelopeKind.DOE),
    ]
    g = effective_grid(state.grid, envs, T0, None, ctrl)
    sites, nodes = list(g.site_ids), list(g.node_ids)
    assert g.site_import_limit_kw[sites.index("f0s0")] == pytest.approx(4.2)
    assert g.site_import_limit_kw[sites.index("f0s1")] == 1.0  # a DOE has no floor
    assert g.limit_import_kw[nodes.index("f1")] == pytest.approx(3 * 4.2)
    assert g.limit_import_kw[nodes.index("tx")] == pytest.approx(9 * 4.2)
    assert effective_grid(state.grid, [], T0) is state.grid


def test_flexibility_reflects_the_envelopes(state: FleetState) -> None:
    loose = available_flexibility(state, 1.0, T0)
    envs = [
        Envelope("x", TargetType.NODE, "f0", T0, T0 + 7200, 0.0, 0.0, source=EnvelopeSource.CSIP)
    ]
    tight = available_flexibility(
        state, 1.0, T0, grid=effective_grid(state.grid, envs, T0, T0 + 3600)
    )
    on_f0 = state.grid.site_node[state.site_idx] == list(state.grid.node_ids).index("f0")
    # zero import and zero export through f0: nothing there can move the feeder's flow
    # beyond its baseline flow, which already passes 0 (PV exports)
    assert tight.up_kw[on_f0].sum() == pytest.approx(0.0, abs=1e-9)
    assert tight.down_kw[on_f0].sum() <= loose.down_kw[on_f0].sum() + 1e-9
    np.testing.assert_allclose(tight.up_kw[~on_f0], loose.up_kw[~on_f0])
    assert tight.totals()["flex_up_kw"] < loose.totals()["flex_up_kw"]
    # an envelope beginning later in the hold counts; one after the hold does not
    later = [Envelope("l", TargetType.NODE, "f0", T0 + 1800, T0 + 7200, None, 0.0)]
    in_hold = available_flexibility(
        state, 1.0, T0, grid=effective_grid(state.grid, later, T0, T0 + 3600)
    )
    after = available_flexibility(
        state, 0.25, T0, grid=effective_grid(state.grid, later, T0, T0 + 900)
    )
    assert in_hold.up_kw[on_f0].sum() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(after.up_kw, available_flexibility(state, 0.25, T0).up_kw)
