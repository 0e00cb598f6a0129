"""Operating envelopes in dispatch: hard limits checked against an exact LP and a live loop.

The oracle's caps come from a brute-force reading of the overlap rule (newest per
source, then the tightest, then the static limit), independent of ``domain.envelopes``.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.dispatch import Dispatcher, TrackerConfig
from gridflock.dispatch.allocate import allocate, grid_caps
from gridflock.domain import Event, EventStatus, Scope
from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.fleet.envelopes import effective_grid
from gridflock.fleet.groups import MeritPlan
from gridflock.fleet.state import FleetState, GridTopology

from ._lp_oracle import RandomFleet, lp_optimum, random_fleet
from .test_dispatcher import STEP, T0, Obedient, grid_fleet

TOL_KW = 1e-6
NOW = 1000.0


def _random_envelopes(rng: np.random.Generator, grid: GridTopology) -> list[Envelope]:
    out = []
    for k in range(int(rng.integers(0, 10))):
        on_site = rng.random() < 0.5 or grid.n_nodes == 0
        ids = grid.site_ids if on_site else grid.node_ids
        start = float(rng.choice([0.0, 500.0, 999.0, 1000.0, 1001.0]))
        imp = None if rng.random() < 0.3 else float(rng.choice([0.0, 2.0, 7.0, 20.0]))
        exp = None if rng.random() < 0.3 else float(rng.choice([0.0, 1.5, 6.0, 40.0]))
        if imp is None and exp is None:
            exp = 3.0
        out.append(
            Envelope(
                f"e{k}",
                TargetType.SITE if on_site else TargetType.NODE,
                str(rng.choice(ids)),
                start,
                start + float(rng.choice([1.0, 500.0, 5000.0])),
                imp,
                exp,
                EnvelopeKind.DOE,
                EnvelopeSource(str(rng.choice(["api", "csip", "file"]))),
                float(rng.integers(0, 3)),
            )
        )
    return out


def _brute_limit(
    envs: list[Envelope], ttype: TargetType, tid: str, static: float, up: bool
) -> float:
    """The limit of one target at NOW, from the rule as written in docs/envelopes.md."""
    active: dict[EnvelopeSource, list[tuple[float, float]]] = {}
    for e in envs:
        lim = e.export_limit_kw if up else e.import_limit_kw
        if (
            e.target_type is ttype
            and e.target_id == tid
            and e.start <= NOW < e.end
            and lim is not None
        ):
            active.setdefault(e.source, []).append((e.issued_at, lim))
    out = static
    for rows in active.values():
        newest = max(i for i, _ in rows)
        out = min([out] + [lim for i, lim in rows if i == newest])
    return out


def _check(fleet: RandomFleet, envs: list[Envelope], share: float, merit: bool) -> None:
    g = fleet.grid
    eff = effective_grid(g, envs, NOW)
    up = fleet.up
    site_lim = np.array(
        [
            _brute_limit(
                envs,
                TargetType.SITE,
                sid,
                float(g.site_export_limit_kw[i] if up else g.site_import_limit_kw[i]),
                up,
            )
            for i, sid in enumerate(g.site_ids)
        ]
    )
    node_lim = np.array(
        [
            _brute_limit(
                envs,
                TargetType.NODE,
                nid,
                float(g.limit_export_kw[j] if up else g.limit_import_kw[j]),
                up,
            )
            for j, nid in enumerate(g.node_ids)
        ]
    )
    node_p = g.node_flow_kw(fleet.site_p)
    sign = 1.0 if up else -1.0
    site_cap = np.maximum(site_lim - sign * fleet.site_p, 0.0)
    node_cap = np.maximum(node_lim - sign * node_p, 0.0)
    caps = grid_caps(eff, fleet.site_p, node_p, up)
    np.testing.assert_allclose(caps.site_kw, site_cap)
    np.testing.assert_allclose(caps.node_kw, node_cap)
    sites, nodes = fleet.members()
    h = np.where(fleet.mask, fleet.headroom, 0.0)
    most, _ = lp_optimum(h, sites, site_cap, nodes, node_cap, fleet.cost, 1e9)
    target = share * most if share <= 1 else most + 5.0
    groups = fleet.groups
    alloc = allocate(
        fleet.headroom,
        sign * target,
        mask=fleet.mask,
        cost=fleet.cost if merit else None,
        groups=groups,
        caps=caps,
        plan=MeritPlan.build(groups, fleet.cost) if merit else None,
    )
    x = sign * alloc.delta_kw
    assert np.all(x >= -TOL_KW)
    assert np.all(x <= h + TOL_KW)
    for members, cap in zip(sites, site_cap, strict=True):  # no envelope exceeded
        assert x[members].sum() <= cap + TOL_KW
    for members, cap in zip(nodes, node_cap, strict=True):
        assert x[members].sum() <= cap + TOL_KW
    best, least = lp_optimum(h, sites, site_cap, nodes, node_cap, fleet.cost, target)
    assert x.sum() == pytest.approx(best, rel=1e-6, abs=TOL_KW)  # and optimal
    if merit:
        assert float(fleet.cost @ x) == pytest.approx(least, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("merit", [False, True], ids=["fair", "merit"])
def test_allocation_within_envelopes_matches_the_exact_lp(merit: bool) -> None:
    rng = np.random.default_rng(1313 + merit)
    for _ in range(60):
        fleet = random_fleet(rng)
        envs = _random_envelopes(rng, fleet.grid)
        _check(fleet, envs, float(rng.choice([0.3, 1.0, 2.0])), merit)


# ---------------------------------------------------------------------- the live loop


def _run(
    disp: Dispatcher, dev: Obedient, start: float, end: float, hook=None
) -> list[tuple[float, np.ndarray]]:
    trace = []
    now = start
    while now < end:
        if hook:
            hook(now)
        dev.report(now)
        for batch in disp.step(now):
            dev.send(batch)
        trace.append((now, dev.p(now + 1e-3)))
        now += STEP
    return trace


def _env(
    eid: str, ttype: TargetType, tid: str, exp: float, start: float, issued: float
) -> Envelope:
    return Envelope(eid, ttype, tid, start, start + 3600.0, None, exp, issued_at=issued)


def test_an_envelope_arriving_mid_event_tightens_it_within_one_cycle() -> None:
    state = FleetState.from_spec(grid_fleet())
    disp = Dispatcher(state, TrackerConfig(interval_s=STEP))
    dev = Obedient(state)
    ev = Event("e1", 100.0, T0, T0 + 600.0, Scope.parse("grid_node:f0"))
    disp.add(ev)
    arrive = T0 + 60.0
    # a node envelope on f0 (its six homes export 6 kW of PV at baseline) and a site
    # envelope below it: the event may add 4 kW through the feeder, 0.5 kW at f0s0
    envs = [
        _env("node", TargetType.NODE, "f0", 10.0, arrive, arrive),
        _env("site", TargetType.SITE, "f0s0", 1.5, arrive, arrive),
    ]

    def hook(now: float) -> None:
        if now >= arrive and not disp.envelopes:
            disp.set_envelopes(envs)

    trace = _run(disp, dev, T0, T0 + 120.0, hook)
    assert ev.status is EventStatus.ACTIVE
    site_pos = list(state.grid.site_ids)
    node_f0 = list(state.grid.node_ids).index("f0")
    for now, p in trace:
        site_p = state.site_power_kw(p)
        node_p = state.grid.node_flow_kw(site_p)
        if now < arrive:
            continue
        # from the first cycle at or after the envelope's arrival: both limits hold
        assert node_p[node_f0] <= 10.0 + 1e-6, (now, node_p[node_f0])
        assert site_p[site_pos.index("f0s0")] <= 1.5 + 1e-6
    before = [
        state.grid.node_flow_kw(state.site_power_kw(p))[node_f0] for t, p in trace if t < arrive
    ]
    assert max(before) > 10.0  # the event was exporting more before the envelope
    # and it kept running, using what the feeder's envelope leaves
    last = state.grid.node_flow_kw(state.site_power_kw(trace[-1][1]))[node_f0]
    assert last == pytest.approx(10.0, abs=0.05)


def test_two_envelopes_at_once_and_para14a_floor() -> None:
    state = FleetState.from_spec(grid_fleet())
    disp = Dispatcher(state)
    t = T0
    disp.set_envelopes(
        [
            # §14a: dimming to 0 kW is raised to 4.2 kW for the one battery at f1s0
            Envelope("d", TargetType.SITE, "f1s0", t, t + 900, 0.0, None, EnvelopeKind.PARA14A),
            Envelope("x", TargetType.SITE, "f1s1", t, t + 900, 1.0, None),
        ]
    )
    g = disp.grid_at(t)
    sites = list(g.site_ids)
    assert g.site_import_limit_kw[sites.index("f1s0")] == pytest.approx(4.2)
    assert g.site_import_limit_kw[sites.index("f1s1")] == 1.0
    assert g.site_import_limit_kw[sites.index("f1s2")] == 12.0  # static
    assert disp.grid_at(t + 900).site_import_limit_kw[sites.index("f1s1")] == 12.0
    # a charge (down) event on the two sites gets no more than the envelopes allow
    ev = Event("c", -30.0, t, t + 300, Scope.parse("grid_node:f1"))
    disp.add(ev)
    trace = _run(disp, Obedient(state), t, t + 40)
    charged = 0.0
    for _, p in trace:
        site_p = state.site_power_kw(p)
        assert -site_p[sites.index("f1s0")] <= 4.2 + 1e-6  # import within the envelope
        assert -site_p[sites.index("f1s1")] <= 1.0 + 1e-6
        charged = max(charged, -site_p[sites.index("f1s0")])
    # dimmed to "0 kW", yet the battery still charges all it can (5 kW less 1 kW of PV):
    # never below the 4.2 kW floor
    assert charged == pytest.approx(4.0, abs=0.05)
    # the window's strictest limit: an envelope starting later in it counts
    later = [Envelope("l", TargetType.NODE, "f1", t + 200, t + 900, 0.0, None)]
    disp.set_envelopes(later)
    assert disp.available_kw(Scope.parse("grid_node:f1"), t + 100, t + 300, False, t) == 0.0


def test_limits_cached_between_envelope_boundaries_match_fresh_ones() -> None:
    """The dispatcher reuses limits while no envelope begins or ends; never stale ones."""
    state = FleetState.from_spec(grid_fleet(sites_per_feeder=2))
    rng = np.random.default_rng(7)
    envs = [
        Envelope(
            f"e{k}",
            TargetType.SITE if k % 2 else TargetType.NODE,
            str(rng.choice(state.grid.site_ids if k % 2 else state.grid.node_ids)),
            T0 + 60.0 * float(rng.integers(0, 30)),
            T0 + 60.0 * float(rng.integers(31, 60)),
            None,
            float(rng.uniform(0, 5)),
            issued_at=float(rng.integers(0, 3)),
        )
        for k in range(30)
    ]
    cached, fresh = Dispatcher(state), Dispatcher(state)
    cached.set_envelopes(envs)
    for t in T0 + np.arange(0, 3700, 40.0):  # control cycles and 15-minute holds
        fresh.set_envelopes(envs)  # a new batch: nothing cached
        for end in (None, t + 900.0):
            a, b = cached.grid_at(t, end), fresh.grid_at(t, end)
            np.testing.assert_array_equal(a.site_export_limit_kw, b.site_export_limit_kw)
            np.testing.assert_array_equal(a.limit_export_kw, b.limit_export_kw)
