"""Plans keep each site's grid code: export cap, generation cap (G98), power rate limit (AS/NZS).

The oracle is the profile's own numbers: every plan is re-checked step by step against
them, over random sites, each with a random profile: the shipped ones and variants of
them with the rules set to random values.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflock.domain.spec import build_spec
from gridflock.gridcode import Profile, profiles
from gridflock.optimize import SiteForecasts, Tariff, build_problem, solve

from .test_cases import BAT, START, forecasts, spec_of

TOL_KW = 1e-6


def _variant(base: Profile, code: str, gen: float | None, exp: float | None, ramp: float | None):
    return base.model_copy(
        update={
            "code": code,
            "export": base.export.model_copy(
                update={"max_site_generation_kw": gen, "max_site_export_kw": exp}
            ),
            "control": base.control.model_copy(update={"ramp_pu_per_s": ramp}),
        }
    )


def test_g98_generation_cap_binds_battery_discharge_not_the_sun() -> None:
    """A GB home under G98 (3.68 kW): PV at 2 kW leaves 1.68 kW for the battery to give."""
    pv = {"id": "pv", "site_id": "s0", "kind": "pv", "kwp": 12.0, "loss_fraction": 0.0}
    bat = BAT | {"soc_initial": 1.0}
    spec = spec_of([pv, bat], grid_code="GB-G98")
    fc = forecasts([0.0] * 4, pv=np.array([[2.0, 2.0, 5.0, 5.0]]))
    tariff = Tariff.flat(1, 4, 0.3, 0.3)  # export pays as much as import: discharge all
    plan = solve(build_problem(spec, START, fc, tariff, n_steps=4))
    b = list(plan.device_ids).index("b")
    p = list(plan.device_ids).index("pv")
    np.testing.assert_allclose(plan.p_kw[b], [1.68, 1.68, 0.0, 0.0], atol=1e-6)
    # the sun's 5 kW is not cut for the cap: the code caps what is asked, not the weather
    np.testing.assert_allclose(plan.p_kw[p], [2.0, 2.0, 5.0, 5.0], atol=1e-6)
    free = solve(build_problem(spec, START, fc, tariff, n_steps=4, grid_codes=False))
    assert free.p_kw[b][0] > 1.68 + 0.1  # without the code it gives more


def test_au_power_rate_limit_binds_at_minute_steps() -> None:
    """AS/NZS 4777.2: 16.67 %/min of rated; at 1-minute steps a 10 kW battery moves 1.67 kW."""
    spec = spec_of([BAT | {"soc_initial": 0.5}], grid_code="AU-A")
    n = 10
    prices = np.r_[np.full(5, 0.5), np.full(5, -0.5)]  # sell, then be paid to charge
    tariff = Tariff.dynamic(prices, prices, 1)
    fc = forecasts([0.0] * n)
    plan = solve(build_problem(spec, START, fc, tariff, n_steps=n, step_h=1 / 60))
    step = np.abs(np.diff(plan.p_kw[0]))
    assert step.max() <= 10.0 * 0.002778 * 60 + TOL_KW
    assert step.max() >= 10.0 * 0.002778 * 60 - 1e-3  # and it binds
    free = solve(build_problem(spec, START, fc, tariff, n_steps=n, step_h=1 / 60, grid_codes=False))
    assert np.abs(np.diff(free.p_kw[0])).max() > 10.0  # without the code: 10 kW to -10 kW


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_plans_never_break_their_sites_codes(seed: int) -> None:
    _check(seed)


def test_the_random_cases_have_codes_that_bind() -> None:
    """Without the codes, plans of these cases break them: the rules shape the plans."""
    assert sum(_check(seed) for seed in range(6)) >= 2


def _check(seed: int) -> bool:
    """Plan a random case; assert the codes hold; whether a plan without them breaks them."""
    rng = np.random.default_rng(seed)
    shipped = profiles()
    known = dict(shipped)
    names = list(shipped)
    for k in range(3):  # variants with every rule the LP can express set
        base = shipped[str(rng.choice(names))]
        known[f"X-{k}"] = _variant(
            base,
            f"X-{k}",
            float(rng.uniform(1.0, 6.0)),
            float(rng.choice([0.0, 1.0, 3.0])),
            float(rng.uniform(0.0005, 0.01)),
        )
    codes = list(known)
    n_sites, n_steps = 4, 6
    step_h = float(rng.choice([1 / 60, 0.25]))
    sites, devices = [], []
    for s in range(n_sites):
        sid = f"s{s}"
        sites.append(
            {
                "id": sid,
                "lat": 48.0,
                "lon": 11.0,
                "grid_node": "f",
                "import_limit_kw": 30.0,
                "export_limit_kw": 20.0,
                "grid_code": str(rng.choice(codes)),
            }
        )
        devices.append(
            {
                "id": f"{sid}-pv",
                "site_id": sid,
                "kind": "pv",
                "kwp": 8.0,
                "loss_fraction": 0.0,
            }
        )
        devices.append(
            BAT
            | {
                "id": f"{sid}-b",
                "site_id": sid,
                "soc_initial": float(rng.uniform(0.2, 1.0)),
                "p_charge_max_kw": float(rng.uniform(2, 8)),
                "p_discharge_max_kw": float(rng.uniform(2, 8)),
            }
        )
    nodes = [{"id": "f", "kind": "feeder", "limit_import_kw": 1e6, "limit_export_kw": 1e6}]
    spec = build_spec(nodes, sites, devices, source="test")
    pv = rng.uniform(0.0, 6.0, (n_sites, n_steps))
    load = rng.uniform(0.0, 2.0, (n_sites, n_steps))
    fc = SiteForecasts(load, pv, np.zeros_like(pv), np.full(n_steps, 10.0))
    prices = rng.uniform(0.05, 0.5, n_steps)
    tariff = Tariff.dynamic(prices, prices * rng.uniform(0.3, 1.0), n_sites)
    plans = [
        solve(build_problem(spec, START, fc, tariff, n_steps=n_steps, step_h=step_h, grid_codes=g))
        for g in (known, False)
    ]
    assert not _breaks(plans[0], known, sites, devices, pv, step_h)
    return _breaks(plans[1], known, sites, devices, pv, step_h)


def _breaks(plan, known, sites, devices, pv, step_h) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``plan`` breaks a rule of its sites' codes (the profiles' numbers)."""
    ids = list(plan.device_ids)
    bad = False
    for s in range(len(sites)):
        code = known[sites[s]["grid_code"]]
        b = plan.p_kw[ids.index(f"s{s}-b")]
        p = plan.p_kw[ids.index(f"s{s}-pv")]
        rated = max(devices[2 * s + 1]["p_charge_max_kw"], devices[2 * s + 1]["p_discharge_max_kw"])
        exp_cap = code.export.max_site_export_kw
        if exp_cap is not None:
            bad |= bool(np.any(plan.site_net_kw[s] > exp_cap + TOL_KW))
        gen_cap = code.export.max_site_generation_kw
        if gen_cap is not None:
            gen = p + np.maximum(b, 0.0)
            bad |= bool(np.any(gen > np.maximum(gen_cap, pv[s]) + TOL_KW))
        ramp = code.control.ramp_pu_per_s
        if ramp is not None:
            bad |= bool(np.any(np.abs(np.diff(b)) > ramp * rated * step_h * 3600 + TOL_KW))
    return bad
