"""The allocator against an exact LP (HiGHS) on thousands of generated fleets.

Each fleet has sites at mixed depths of a grid tree, busy and out-of-scope devices,
devices with no range, caps at zero and caps already passed, both directions, targets
beyond reach, and costs with ties. The allocator must keep every cap (to 1e-6 kW),
deliver the LP's optimum (to 1e-6 relative) and, in merit order, at the LP's least cost.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridflock.dispatch.allocate import allocate, grid_caps, limit_headroom
from gridflock.domain import build_spec
from gridflock.fleet.groups import MeritPlan, NodeGroups
from gridflock.fleet.state import GridTopology

from ._lp_oracle import RandomFleet, lp_optimum, random_fleet

TOL_KW = 1e-6
REL = 1e-6


def _check(fleet: RandomFleet, share: float, merit: bool) -> None:
    g = fleet.grid
    node_p = g.node_flow_kw(fleet.site_p)
    caps = grid_caps(g, fleet.site_p, node_p, fleet.up)
    groups = fleet.groups
    sites, nodes = fleet.members()
    h = np.where(fleet.mask, fleet.headroom, 0.0)
    most, _ = lp_optimum(h, sites, caps.site_kw, nodes, caps.node_kw, fleet.cost, 1e9)
    target = share * most if share <= 1 else most + 5.0 + share
    sign = 1.0 if fleet.up else -1.0
    cost = fleet.cost if merit else None
    plan = MeritPlan.build(groups, fleet.cost) if merit else None
    alloc = allocate(
        fleet.headroom,
        sign * target,
        mask=fleet.mask,
        cost=cost,
        groups=groups,
        caps=caps,
        plan=plan,
    )
    x = sign * alloc.delta_kw
    # every device within its headroom and the scope
    assert np.all(x >= -TOL_KW)
    assert np.all(x <= h + TOL_KW)
    # every site and node cap, at whatever depth
    for members, cap in zip(sites, caps.site_kw, strict=True):
        assert x[members].sum() <= cap + TOL_KW
    for members, cap in zip(nodes, caps.node_kw, strict=True):
        assert x[members].sum() <= cap + TOL_KW
    # the largest feasible amount up to the target
    best, least = lp_optimum(h, sites, caps.site_kw, nodes, caps.node_kw, fleet.cost, target)
    assert x.sum() == pytest.approx(best, rel=REL, abs=TOL_KW)
    assert abs(alloc.available_kw) == pytest.approx(most, rel=REL, abs=TOL_KW)
    if merit:
        assert float(fleet.cost @ x) == pytest.approx(least, rel=REL, abs=1e-7)


@pytest.mark.parametrize("merit", [False, True], ids=["fair", "merit"])
def test_matches_the_exact_lp_on_two_thousand_random_fleets(merit):
    rng = np.random.default_rng(20261201 + merit)
    for _ in range(2000):
        fleet = random_fleet(rng)
        share = float(rng.choice([0.0, 0.3, 0.7, 1.0, 2.0]))
        _check(fleet, share, merit)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), share=st.sampled_from([0.1, 0.5, 0.99, 1.0, 3.0]))
def test_matches_the_exact_lp_property(seed, share):
    fleet = random_fleet(np.random.default_rng(seed))
    _check(fleet, share, merit=False)
    _check(fleet, share, merit=True)


def _tree(nodes, sites) -> GridTopology:
    return GridTopology.from_spec(build_spec(nodes, sites, [], "grid"))


def _node(nid, cap, parent=None, kind="feeder"):
    return {
        "id": nid,
        "kind": kind,
        "parent": parent,
        "limit_import_kw": cap,
        "limit_export_kw": cap,
    }


def _site(sid, node):
    return {
        "id": sid,
        "lat": 0,
        "lon": 0,
        "grid_node": node,
        "import_limit_kw": 100,
        "export_limit_kw": 100,
    }


def test_a_transformer_cap_holds_for_sites_at_two_depths():
    """T (10 kW) with feeder F below it; s0 on F, s1 on T directly: 10 kW, not 20."""
    grid = _tree(
        [_node("T", 10, kind="transformer"), _node("F", 1000, "T")],
        [_site("s0", "F"), _site("s1", "T")],
    )
    site_idx = np.array([0, 1])
    groups = NodeGroups.build(site_idx, grid.site_node, grid.ancestors, 2, 2)
    zero = np.zeros(2)
    h = np.array([10.0, 10.0])
    limited = limit_headroom(h, groups, grid, zero, grid.node_flow_kw(zero), up=True)
    assert limited.sum() == pytest.approx(10.0)
    caps = grid_caps(grid, zero, grid.node_flow_kw(zero), up=True)
    alloc = allocate(h, 20.0, groups=groups, caps=caps)
    assert alloc.allocated_kw == pytest.approx(10.0)
    assert not alloc.met


def test_devices_outside_the_scope_take_no_share_of_a_cap():
    """Two sites on a 10 kW feeder, one in scope: the scope can give the whole 10 kW."""
    grid = _tree([_node("F", 10)], [_site("s0", "F"), _site("s1", "F")])
    site_idx = np.array([0, 1])
    groups = NodeGroups.build(site_idx, grid.site_node, grid.ancestors, 2, 1)
    zero = np.zeros(2)
    caps = grid_caps(grid, zero, grid.node_flow_kw(zero), up=True)
    alloc = allocate(
        np.array([10.0, 10.0]), 10.0, mask=np.array([True, False]), groups=groups, caps=caps
    )
    assert alloc.delta_kw.tolist() == pytest.approx([10.0, 0.0])
    assert alloc.met


def test_merit_order_runs_the_cheap_device_under_a_binding_cap():
    """Feeder cap 10 kW, A at 0.1 and B at 0.3 per kWh, 10 kW wanted: [10, 0], 1.0 per h."""
    grid = _tree([_node("F", 10)], [_site("s0", "F"), _site("s1", "F")])
    site_idx = np.array([0, 1])
    groups = NodeGroups.build(site_idx, grid.site_node, grid.ancestors, 2, 1)
    zero = np.zeros(2)
    caps = grid_caps(grid, zero, grid.node_flow_kw(zero), up=True)
    cost = np.array([0.1, 0.3])
    alloc = allocate(np.array([10.0, 10.0]), 10.0, cost=cost, groups=groups, caps=caps)
    assert alloc.delta_kw.tolist() == pytest.approx([10.0, 0.0])
    assert float(cost @ alloc.delta_kw) == pytest.approx(1.0)


def test_an_empty_fleet_allocates_nothing():
    grid = _tree([_node("F", 10)], [_site("s0", "F")])
    site_idx = np.zeros(0, np.int64)
    groups = NodeGroups.build(site_idx, grid.site_node, grid.ancestors, 1, 1)
    caps = grid_caps(grid, np.zeros(1), np.zeros(1), up=False)
    for cost in (None, np.zeros(0)):
        alloc = allocate(np.zeros(0), -5.0, cost=cost, groups=groups, caps=caps)
        assert alloc.allocated_kw == 0.0
        assert alloc.shortfall_kw == pytest.approx(5.0)
