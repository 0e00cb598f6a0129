"""Dashboard aggregates (SoC histogram, site map) and dashboard sessions, without a server."""

from __future__ import annotations

import numpy as np

from gridflock.api.auth import SessionStore
from gridflock.api.routes.aggregates import site_map, soc_histogram
from gridflock.domain.auth import Principal, Role
from gridflock.domain.kinds import DeviceKind
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState


def _state(homes: int) -> FleetState:
    st = FleetState.from_spec(generate_fleet(homes, 3))
    st.online[:] = True
    st.p_kw[:] = np.random.default_rng(1).uniform(-2, 2, st.n)
    return st


def test_soc_histogram_counts_every_online_battery_once():
    st = _state(120)
    sl = st.kind_slices[DeviceKind.BATTERY]
    st.online[sl.start] = False
    h = soc_histogram(st, 10)
    assert len(h["bins"]) == 10
    assert sum(b["devices"] for b in h["bins"]) == h["online"] == h["batteries"] - 1
    assert 0 <= h["mean_soc"] <= 1
    assert 0 <= h["e_stored_kwh"] <= h["e_capacity_kwh"]


def test_site_map_lists_sites_or_bins_them_keeping_totals():
    st = _state(400)
    p_total = float(np.where(st.online, st.p_kw, 0).sum())
    every = site_map(st, 1000)
    assert not every["binned"]
    assert len(every["id"]) == len(every["lat"]) == 400
    binned = site_map(st, 50)
    assert binned["binned"]
    assert binned["id"] is None
    assert len(binned["lat"]) <= 60
    assert sum(binned["count"]) == 400
    assert np.isclose(sum(binned["p_kw"]), p_total)
    assert np.isclose(sum(every["p_kw"]), p_total)


def test_sessions_map_an_opaque_id_to_the_principal_until_ended_or_expired():
    who = Principal("k1", "ops", Role.OPERATOR)
    store = SessionStore(ttl_s=60)
    sid = store.create(who)
    assert len(sid) >= 40
    assert store.get(sid) == who
    assert store.get("forged") is None
    store.end(sid)
    assert store.get(sid) is None
    expired = SessionStore(ttl_s=-1)
    assert expired.get(expired.create(who)) is None
