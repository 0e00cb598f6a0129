"""Plans under operating envelopes: time-varying site and node limits in the LP.

Each plan's setpoints are re-checked against the envelopes as issued (a brute-force
reading of the overlap rule at every 5 minutes of every step), and its cost against the
independent reference LP given the same per-step limits.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.optimize import SiteForecasts, Tariff, build_problem, solve

from ._reference import reference_optimum, small_fleet
from .test_cases import BAT, START, forecasts, spec_of

TOL_KW = 1e-5


def test_zero_export_envelope_curtails_exactly_in_its_steps() -> None:
    pv = {"id": "pv", "site_id": "s0", "kind": "pv", "kwp": 12.0, "loss_fraction": 0.0}
    spec = spec_of([pv, BAT | {"p_charge_max_kw": 2.0}], export_limit_kw=3.0)
    envs = [Envelope("z", TargetType.SITE, "s0", START + 900, START + 2700, None, 0.0)]
    pb = build_problem(
        spec,
        START,
        forecasts([1.0] * 4, pv=10.0),
        Tariff.flat(1, 4, 0.3, 0.1),
        n_steps=4,
        envelopes=envs,
    )
    plan = solve(pb)
    pv_row = list(plan.device_ids).index("pv")
    # 10 kW PV - 1 kW load - 2 kW into the battery - export (3 kW static, 0 under the DOE)
    np.testing.assert_allclose(plan.curtailed_kw[pv_row], [4.0, 7.0, 7.0, 4.0], atol=1e-9)
    np.testing.assert_allclose(plan.site_net_kw[0], [3.0, 0.0, 0.0, 3.0], atol=1e-9)


def _brute(
    envs: list[Envelope], ttype: TargetType, tid: str, t0: float, t1: float, up: bool
) -> float:
    out = np.inf
    for t in np.arange(t0, t1, 300.0):
        per_src: dict[EnvelopeSource, list[tuple[float, float]]] = {}
        for e in envs:
            lim = e.export_limit_kw if up else e.import_limit_kw
            if (
                e.target_type is ttype
                and e.target_id == tid
                and e.start <= t < e.end
                and lim is not None
            ):
                per_src.setdefault(e.source, []).append((e.issued_at, lim))
        for rows in per_src.values():
            newest = max(i for i, _ in rows)
            out = min([out] + [lim for i, lim in rows if i == newest])
    return float(out)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_plans_keep_every_envelope_and_match_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_steps = 8
    spec = small_fleet(rng, 4, kinds=("battery", "pv", "load"), caps=False)
    ns = len(spec.sites)
    pv = spec.devices["pv"]
    # PV only where a curtailable system can follow a zero-export envelope
    has_pv = spec.sites["id"].isin(pv["site_id"][pv["curtailable"].astype(bool)]).to_numpy()
    fc = SiteForecasts(
        load_kw=rng.uniform(0.5, 3.0, (ns, n_steps)),
        pv_kw=rng.uniform(0.0, 6.0, (ns, n_steps)) * has_pv[:, None],
        wind_kw=np.zeros((ns, n_steps)),
        t_out_c=np.full(n_steps, 10.0),
    )
    tariff = Tariff.dynamic(rng.uniform(0.1, 0.4, n_steps), np.full(n_steps, 0.05), ns)
    envs = []
    for k in range(12):
        on_site = rng.random() < 0.6
        start = START + 300.0 * float(rng.integers(0, 3 * n_steps))
        envs.append(
            Envelope(
                f"e{k}",
                TargetType.SITE if on_site else TargetType.NODE,
                str(rng.choice(spec.sites["id"] if on_site else ["tr", "fa"])),
                start,
                start + 300.0 * float(rng.integers(1, 8)),
                None
                if rng.random() < 0.4
                else float(rng.uniform(4.0, 20.0)) * (1 if on_site else ns),
                None
                if rng.random() < 0.3
                else float(rng.choice([0.0, 0.5, 2.0])) * (1 if on_site else ns),
                EnvelopeKind.DOE,
                EnvelopeSource(str(rng.choice(["api", "csip"]))),
                float(rng.integers(0, 3)),
            )
        )
    pb = build_problem(spec, START, fc, tariff, n_steps=n_steps, envelopes=envs)
    plan = solve(pb)
    ref, _ = reference_optimum(pb)
    assert abs(plan.objective.total - ref) <= 1e-6 * max(1.0, abs(ref))
    free = solve(build_problem(spec, START, fc, tariff, n_steps=n_steps))
    assert free.objective.total <= plan.objective.total + 1e-9  # envelopes only restrict
    binding = 0
    static = {str(r.id): r for r in spec.sites.itertuples()}
    nodes = {str(r.id): r for r in spec.grid_nodes.itertuples()}
    for t in range(n_steps):
        t0, t1 = START + 900.0 * t, START + 900.0 * (t + 1)
        for s, sid in enumerate(plan.site_ids):
            net = plan.site_net_kw[s, t]
            exp = min(_brute(envs, TargetType.SITE, sid, t0, t1, True), static[sid].export_limit_kw)
            imp = min(
                _brute(envs, TargetType.SITE, sid, t0, t1, False), static[sid].import_limit_kw
            )
            assert net <= exp + TOL_KW, (sid, t, net, exp)
            binding += exp < static[sid].export_limit_kw and abs(net - exp) < 1e-6
            assert -net <= imp + TOL_KW, (sid, t, net, imp)
        for j, nid in enumerate(plan.node_ids):
            flow = plan.node_flow_kw[j, t]
            exp = min(_brute(envs, TargetType.NODE, nid, t0, t1, True), nodes[nid].limit_export_kw)
            imp = min(_brute(envs, TargetType.NODE, nid, t0, t1, False), nodes[nid].limit_import_kw)
            assert flow <= exp + TOL_KW, (nid, t, flow, exp)
            assert -flow <= imp + TOL_KW, (nid, t, flow, imp)
    assert binding > 0  # the envelopes shaped the plan


def test_para14a_dimming_keeps_the_floor_per_controllable_device() -> None:
    """A "dim to 0 kW" on a home with one battery and 3 kW of load plans to 4.2 kW import."""
    spec = spec_of([BAT])
    envs = [
        Envelope("dim", TargetType.SITE, "s0", START, START + 1800, 0.0, None, EnvelopeKind.PARA14A)
    ]
    cheap_then_dear = Tariff.dynamic(np.array([0.05, 0.05, 0.5, 0.5]), np.zeros(4), 1)
    pb = build_problem(
        spec, START, forecasts([3.0] * 4), cheap_then_dear, n_steps=4, envelopes=envs
    )
    np.testing.assert_allclose(pb.sites.import_limit_kw[0], [4.2, 4.2, 25.0, 25.0])
    plan = solve(pb)
    bat = list(plan.device_ids).index("b")
    # the battery charges in the cheap, dimmed steps only what the floor leaves: 4.2 - 3
    np.testing.assert_allclose(plan.p_kw[bat, :2], -1.2, atol=1e-9)
    np.testing.assert_allclose(-plan.site_net_kw[0, :2], 4.2, atol=1e-9)
