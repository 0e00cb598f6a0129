"""The allocator's invariants, pinned with property-based tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gridflock.dispatch.allocate import allocate, limit_headroom
from gridflock.domain import build_spec
from gridflock.fleet.state import GridTopology

headrooms = arrays(
    np.float64, st.integers(1, 60), elements=st.floats(0, 50, allow_nan=False, allow_infinity=False)
)


@given(h=headrooms, target=st.floats(-5000, 5000, allow_nan=False))
def test_never_exceeds_headroom_and_meets_target_when_possible(h, target):
    alloc = allocate(h, target)
    delta = np.abs(alloc.delta_kw)
    assert np.all(delta <= h + 1e-9)
    assert np.all(np.sign(alloc.delta_kw) * np.sign(target) >= 0)
    if abs(target) <= h.sum():
        assert alloc.allocated_kw == pytest.approx(target, abs=1e-6)
        assert alloc.met
    else:
        assert abs(alloc.allocated_kw) == pytest.approx(h.sum(), abs=1e-6)
        assert alloc.shortfall_kw == pytest.approx(abs(target) - h.sum(), abs=1e-6)


@given(h=headrooms, target=st.floats(0.1, 500))
def test_equal_fraction_of_headroom(h, target):
    alloc = allocate(h, target)
    used = h > 1e-6
    if used.sum() >= 2:
        frac = alloc.delta_kw[used] / h[used]
        assert np.allclose(frac, frac[0])


@given(
    h=headrooms,
    target=st.floats(0.1, 500),
    cost_levels=st.lists(st.sampled_from([0.05, 0.1, 0.2]), min_size=60, max_size=60),
)
def test_merit_order_uses_cheaper_devices_first(h, target, cost_levels):
    cost = np.array(cost_levels[: len(h)])
    alloc = allocate(h, target, cost=cost)
    assert alloc.allocated_kw == pytest.approx(min(target, h.sum()), abs=1e-6)
    for cheap in np.unique(cost):
        dearer = cost > cheap
        if alloc.delta_kw[dearer].sum() > 1e-9:  # a dearer level is used only once cheap is full
            assert np.allclose(alloc.delta_kw[cost == cheap], h[cost == cheap])


def test_mask_limits_scope():
    h = np.array([1.0, 2.0, 3.0])
    alloc = allocate(h, 10, mask=np.array([True, False, True]))
    assert alloc.delta_kw[1] == 0
    assert alloc.allocated_kw == pytest.approx(4.0)
    assert alloc.shortfall_kw == pytest.approx(6.0)


def test_non_finite_target_is_refused():
    with pytest.raises(ValueError, match="finite"):
        allocate(np.ones(3), float("nan"))


def _grid(n_sites: int, feeder_of_site: list[int], limits: list[float]) -> GridTopology:
    nodes = [
        {
            "id": "tx",
            "kind": "transformer",
            "limit_import_kw": limits[0],
            "limit_export_kw": limits[0],
        }
    ]
    nodes += [
        {
            "id": f"f{j}",
            "kind": "feeder",
            "parent": "tx",
            "limit_import_kw": lim,
            "limit_export_kw": lim,
        }
        for j, lim in enumerate(limits[1:])
    ]
    sites = [
        {
            "id": f"s{i}",
            "lat": 0,
            "lon": 0,
            "grid_node": f"f{feeder_of_site[i]}",
            "import_limit_kw": 20,
            "export_limit_kw": 12,
        }
        for i in range(n_sites)
    ]
    return GridTopology.from_spec(build_spec(nodes, sites, [], "grid"))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_limits_are_never_exceeded(data):
    n_sites = data.draw(st.integers(1, 12))
    feeders = data.draw(st.integers(1, 3))
    feeder_of_site = data.draw(
        st.lists(st.integers(0, feeders - 1), min_size=n_sites, max_size=n_sites)
    )
    limits = data.draw(st.lists(st.floats(1, 80), min_size=feeders + 1, max_size=feeders + 1))
    grid = _grid(n_sites, feeder_of_site, limits)
    n_dev = data.draw(st.integers(1, 40))
    site_idx = np.array(
        data.draw(st.lists(st.integers(0, n_sites - 1), min_size=n_dev, max_size=n_dev))
    )
    h = np.array(data.draw(st.lists(st.floats(0, 15), min_size=n_dev, max_size=n_dev)))
    site_p = np.array(data.draw(st.lists(st.floats(-10, 10), min_size=n_sites, max_size=n_sites)))
    node_p = grid.node_flow_kw(site_p)
    up = data.draw(st.booleans())
    target = data.draw(st.floats(0.1, 400)) * (1 if up else -1)
    limited = limit_headroom(h, site_idx, grid, site_p, node_p, up)
    alloc = allocate(limited, target)
    new_site = site_p + np.bincount(site_idx, alloc.delta_kw, minlength=n_sites)
    new_node = grid.node_flow_kw(new_site)
    tol = 1e-6
    if up:
        assert np.all(new_site <= np.maximum(grid.site_export_limit_kw, site_p) + tol)
        assert np.all(new_node <= np.maximum(grid.limit_export_kw, node_p) + tol)
    else:
        assert np.all(new_site >= np.minimum(-grid.site_import_limit_kw, site_p) - tol)
        assert np.all(new_node >= np.minimum(-grid.limit_import_kw, node_p) - tol)
    assert np.all(np.abs(alloc.delta_kw) <= h + tol)


def test_binding_feeder_limit_shifts_effort_elsewhere():
    grid = _grid(2, [0, 1], [1000, 5, 1000])
    h = np.array([10.0, 10.0])
    site_p = np.zeros(2)
    limited = limit_headroom(h, np.array([0, 1]), grid, site_p, grid.node_flow_kw(site_p), True)
    assert limited.tolist() == pytest.approx([5.0, 10.0])
    alloc = allocate(limited, 15)
    assert alloc.met
    assert alloc.delta_kw.tolist() == pytest.approx([5.0, 10.0])
