"""Fleet state: layout, vectorised telemetry application, scopes."""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.domain import DeviceKind, Scope, TelemetryBatch, UnknownDeviceError
from gridflock.fleet.state import FleetState


def batch(ids, ts, p, soc=None, base=None, rows=None, **extras):
    n = len(ids)
    nan = np.full(n, np.nan)
    return TelemetryBatch(
        np.array(ids, dtype=object),
        np.full(n, float(ts)),
        np.asarray(p, float),
        nan if soc is None else np.asarray(soc, float),
        nan if base is None else np.asarray(base, float),
        {k: np.asarray(v, float) for k, v in extras.items()},
        rows,
    )


def test_layout_groups_devices_by_kind(small_spec):
    st = FleetState.from_spec(small_spec)
    assert st.n == small_spec.n_devices
    for kind, sl in st.kind_slices.items():
        ids = set(st.device_ids[sl])
        assert ids == set(small_spec.devices[kind]["id"])
    assert st.p_gen_max_kw[st.kind_slices[DeviceKind.BATTERY]].tolist() == [5.0] * 6
    assert st.soc[st.kind_slices[DeviceKind.BATTERY]].tolist() == [0.8] * 6


def test_apply_updates_in_one_pass_and_counts_unknown_and_stale(small_spec):
    st = FleetState.from_spec(small_spec)
    r = st.apply(
        batch(["s0-bat", "s1-bat", "ghost"], 100, [1.0, -2.0, 3.0], soc=[0.5, np.nan, 0.1])
    )
    assert (r.applied, r.unknown, r.stale) == (2, 1, 0)
    assert r.unknown_ids == ("ghost",)
    i0, i1 = st.indices(["s0-bat", "s1-bat"])
    assert st.p_kw[i0] == 1.0
    assert st.p_kw[i1] == -2.0
    assert st.soc[i0] == 0.5
    assert st.soc[i1] == 0.8  # NaN keeps the held value
    assert st.online[i0]
    r = st.apply(batch(["s0-bat"], 50, [9.0]))  # older than what we hold
    assert (r.applied, r.stale) == (0, 1)
    assert st.p_kw[i0] == 1.0


def test_wrong_row_hint_is_not_trusted(small_spec):
    st = FleetState.from_spec(small_spec)
    wrong = np.array([0, 1])
    st.apply(batch(["s2-bat", "s3-bat"], 10, [4.0, 5.0], rows=wrong))
    assert st.p_kw[st.indices(["s2-bat", "s3-bat"])].tolist() == [4.0, 5.0]


def test_row_hints_from_another_layout_are_ignored(small_spec):
    st = FleetState.from_spec(small_spec)
    s = st.kind_slices[DeviceKind.BATTERY]
    ids = st.device_ids[s]
    rows = np.arange(s.start, s.stop)
    same = TelemetryBatch(
        ids,
        np.full(len(ids), 5.0),
        np.arange(len(ids), dtype=float),
        np.full(len(ids), np.nan),
        np.full(len(ids), np.nan),
        {},
        rows,
        st.layout,
    )
    assert st._contiguous(same) == s  # the fast path, for the layout it was made for
    # the same rows stamped by a fleet without s1's battery: a different layout
    spec2 = small_spec
    spec2.devices[DeviceKind.BATTERY] = spec2.devices[DeviceKind.BATTERY].iloc[1:]
    other = FleetState.from_spec(spec2)
    assert other.layout != st.layout
    shifted = TelemetryBatch(
        ids[1:],
        np.full(len(ids) - 1, 6.0),
        np.full(len(ids) - 1, 9.0),
        np.full(len(ids) - 1, np.nan),
        np.full(len(ids) - 1, np.nan),
        {},
        rows[:-1],
        other.layout,
    )
    assert st._contiguous(shifted) is None
    st.apply(shifted)
    assert st.p_kw[st.indices(ids[1:])].tolist() == [9.0] * (len(ids) - 1)  # by id, right rows


def test_unknown_device_lookup_names_it(small_spec):
    st = FleetState.from_spec(small_spec)
    with pytest.raises(UnknownDeviceError, match="nope"):
        st.indices(["s0-bat", "nope"])


def test_stale_devices_go_offline(small_spec):
    st = FleetState.from_spec(small_spec)
    st.apply(batch(["s0-bat"], 100, [0.0]))
    st.apply(batch(["s1-bat"], 1000, [0.0]))
    st.mark_stale(1100, 300)
    i0, i1 = st.indices(["s0-bat", "s1-bat"])
    assert not st.online[i0]
    assert st.online[i1]


def test_scopes(small_spec):
    st = FleetState.from_spec(small_spec)
    assert st.scope_mask(Scope()).all()
    assert st.scope_mask(Scope("grid_node", "tx-1")).all()
    f2 = st.scope_mask(Scope("grid_node", "f-2"))
    sites = set(st.grid.site_ids[st.site_idx[f2]])
    assert sites == {"s3", "s4", "s5"}
    summer = st.scope_mask(Scope("program", "summer"))
    assert set(st.grid.site_ids[st.site_idx[summer]]) == {"s1", "s3", "s5"}
    with pytest.raises(ValueError, match="unknown grid node"):
        st.scope_mask(Scope("grid_node", "f-9"))
    with pytest.raises(ValueError, match="invalid scope"):
        Scope.parse("feeder=f-1")


def test_node_flow_sums_up_the_tree(small_spec):
    st = FleetState.from_spec(small_spec)
    site_p = np.array([1.0, 2, 3, 4, 5, 6])
    flow = st.grid.node_flow_kw(site_p)
    assert dict(zip(st.grid.node_ids, flow, strict=True)) == {"tx-1": 21, "f-1": 6, "f-2": 15}


def test_memory_per_device_is_small(small_spec):
    st = FleetState.from_spec(small_spec)
    assert st.nbytes() / st.n < 2048
