"""Plans with known answers (tariffs, peak charge, EV, curtailment) and clear refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridflock.domain.errors import ValidationError
from gridflock.domain.spec import build_spec
from gridflock.optimize import (
    InitialState,
    PlanInfeasibleError,
    SiteForecasts,
    Tariff,
    build_problem,
    pick_quantile,
    solve,
)

START = 1_780_000_000.0


def spec_of(devices: list[dict], n_sites: int = 1, node_cap: float = 1e6, **site: float | str):
    nodes = [{"id": "f", "kind": "feeder", "limit_import_kw": node_cap, "limit_export_kw": 1e6}]
    sites = [
        {
            "id": f"s{i}",
            "lat": 48,
            "lon": 11,
            "grid_node": "f",
            "import_limit_kw": 25.0,
            "export_limit_kw": 25.0,
        }
        | site
        for i in range(n_sites)
    ]
    return build_spec(nodes, sites, devices, source="test")


def forecasts(load: list[float] | np.ndarray, pv: float | np.ndarray = 0.0, n_sites: int = 1):
    load = np.broadcast_to(np.asarray(load, float), (n_sites, len(load)))
    z = np.zeros_like(load)
    return SiteForecasts(load, z + pv, z, np.full(load.shape[1], 5.0))


BAT = {
    "id": "b",
    "site_id": "s0",
    "kind": "battery",
    "e_kwh": 10.0,
    "p_charge_max_kw": 10.0,
    "p_discharge_max_kw": 10.0,
    "eta_charge": 1.0,
    "eta_discharge": 1.0,
    "soc_min": 0.0,
    "soc_reserve": 0.0,
    "soc_initial": 0.0,
}


def test_time_of_use_arbitrage_has_the_known_value() -> None:
    """Charge 10 kWh at 0.10, use them at 0.50: 6.00 EUR without the battery, 2.00 with."""
    spec = spec_of([BAT])
    hours = np.arange(8) * 0.25
    tariff = Tariff.time_of_use(1, hours, [(1.0, 2.0, 0.5)], 0.1, 0.1)
    assert tariff.import_price[0].tolist() == [0.1] * 4 + [0.5] * 4
    pb = build_problem(spec, START, forecasts([10.0] * 8), tariff, n_steps=8)
    plan = solve(pb)
    assert plan.objective.total == pytest.approx(2.0, abs=1e-9)
    assert plan.objective.energy_cost == pytest.approx(2.0, abs=1e-9)
    np.testing.assert_allclose(plan.p_kw[0], [-10] * 4 + [10] * 4, atol=1e-9)
    np.testing.assert_allclose(plan.soc[0, [0, 4, 8]], [0.0, 1.0, 0.0], atol=1e-9)


def test_backup_reserve_is_never_used() -> None:
    spec = spec_of([BAT | {"soc_reserve": 0.4, "soc_initial": 0.9}])
    tariff = Tariff.flat(1, 8, 0.3, 0.3)
    plan = solve(build_problem(spec, START, forecasts([10.0] * 8), tariff, n_steps=8))
    assert plan.soc.min() == pytest.approx(0.4, abs=1e-9)  # 5 kWh out, 4 kept
    assert plan.objective.energy_cost == pytest.approx(0.3 * (20 - 5), abs=1e-9)


def test_peak_charge_has_the_known_value() -> None:
    """Load 2, 2, 6, 2 kW, empty battery: the least peak is 10/3 kW (charge before, shave)."""
    spec = spec_of([BAT | {"p_charge_max_kw": 4.0, "p_discharge_max_kw": 4.0}])
    tariff = Tariff.flat(1, 4, 0.0, 0.0, peak_price_per_kw=1.0)
    plan = solve(build_problem(spec, START, forecasts([2.0, 2.0, 6.0, 2.0]), tariff, n_steps=4))
    assert plan.objective.peak_charge == pytest.approx(10 / 3, abs=1e-9)
    assert (-plan.site_net_kw).max() == pytest.approx(10 / 3, abs=1e-9)


def test_ev_charges_in_the_cheapest_steps_and_leaves_full() -> None:
    ev = {"id": "ev", "site_id": "s0", "kind": "ev_charger", "p_max_kw": 10.0, "eta": 1.0}
    spec = spec_of([ev])
    tariff = Tariff.dynamic(np.array([0.3, 0.1, 0.2, 0.4, 0.05]), np.zeros(5), 1)
    state = InitialState(
        np.array(["ev"], dtype=object),
        np.array([np.nan]),
        np.array([5.0]),
        np.array([START]),
        np.array([START + 4 * 900]),
        np.array([np.nan]),
    )
    plan = solve(build_problem(spec, START, forecasts([0.0] * 5), tariff, n_steps=5, state=state))
    np.testing.assert_allclose(plan.p_kw[0], [0, -10, -10, 0, 0], atol=1e-9)  # gone at step 4
    assert plan.ev_kwh[0, -1] == pytest.approx(5.0)
    assert plan.objective.energy_cost == pytest.approx(0.75, abs=1e-9)


def test_curtailment_only_where_the_export_limit_forces_it() -> None:
    pv = {"id": "pv", "site_id": "s0", "kind": "pv", "kwp": 12.0, "loss_fraction": 0.0}
    spec = spec_of([pv, BAT | {"p_charge_max_kw": 2.0}], export_limit_kw=3.0)
    tariff = Tariff.flat(1, 4, 0.3, 0.1)
    plan = solve(build_problem(spec, START, forecasts([1.0] * 4, pv=10.0), tariff, n_steps=4))
    pv_row = list(plan.device_ids).index("pv")
    # 10 kW PV - 1 kW load - 2 kW into the battery - 3 kW export = 4 kW curtailed
    np.testing.assert_allclose(plan.curtailed_kw[pv_row], 4.0, atol=1e-9)
    np.testing.assert_allclose(plan.site_net_kw[0], 3.0, atol=1e-9)


def test_infeasible_inputs_name_the_device_site_node_and_rule() -> None:
    ev = {"id": "car", "site_id": "s0", "kind": "ev_charger", "p_max_kw": 7.4}
    spec = spec_of([ev], n_sites=2)
    state = InitialState(
        np.array(["car"], dtype=object),
        np.array([np.nan]),
        np.array([50.0]),
        np.array([START]),
        np.array([START + 4 * 900]),
        np.array([np.nan]),
    )
    tariff = Tariff.flat(2, 4, 0.3)
    pb = build_problem(spec, START, forecasts([1.0] * 4, n_sites=2), tariff, n_steps=4, state=state)
    with pytest.raises(PlanInfeasibleError) as err:
        solve(pb)
    assert "ev_charger car" in str(err.value)
    assert "e_need_kwh" in str(err.value)
    # the other site is still planned when asked to skip what cannot be planned
    plan = solve(pb, skip_infeasible=True)
    assert plan.status == "partial"
    assert len(plan.infeasible) == 1
    assert np.isnan(plan.site_net_kw[0]).all()
    assert np.isfinite(plan.site_net_kw[1]).all()

    spec = spec_of([], n_sites=2, import_limit_kw=5.0)
    pb = build_problem(
        spec, START, forecasts([1.0, 8.0], n_sites=2), Tariff.flat(2, 2, 0.3), n_steps=2
    )
    with pytest.raises(PlanInfeasibleError, match=r"site s0: import_limit_kw"):
        solve(pb)

    spec = spec_of([], n_sites=3, node_cap=5.0)
    pb = build_problem(
        spec, START, forecasts([2.0, 2.0], n_sites=3), Tariff.flat(3, 2, 0.3), n_steps=2
    )
    with pytest.raises(PlanInfeasibleError, match=r"grid node f: limit_import_kw"):
        solve(pb)

    hp = {
        "id": "hp",
        "site_id": "s0",
        "kind": "heat_pump",
        "p_elec_max_kw": 0.1,
        "ua_kw_per_k": 0.3,
        "c_kwh_per_k": 2.0,
    }
    spec = spec_of([hp])
    fc = dataclasses.replace(forecasts([0.0] * 8), t_out_c=np.full(8, -15.0))
    with pytest.raises(PlanInfeasibleError, match=r"heat_pump hp: t_min_c/t_max_c"):
        solve(build_problem(spec, START, fc, Tariff.flat(1, 8, 0.3), n_steps=8))


def test_bad_inputs_are_refused_with_what_to_do() -> None:
    spec = spec_of([BAT])
    load = np.array([1.0, np.nan, 1.0])
    with pytest.raises(ValidationError, match=r"load_kw.*NaN"):
        build_problem(spec, START, forecasts(load), Tariff.flat(1, 3, 0.3), n_steps=3)
    with pytest.raises(ValidationError, match=r"export_price.*above the import price"):
        build_problem(spec, START, forecasts([1.0] * 3), Tariff.flat(1, 3, 0.1, 0.2), n_steps=3)
    with pytest.raises(ValidationError, match="shape"):
        build_problem(spec, START, forecasts([1.0] * 3), Tariff.flat(1, 4, 0.3), n_steps=3)


def test_empty_fleet_and_pick_quantile() -> None:
    spec = spec_of([], n_sites=1)
    plan = solve(
        build_problem(spec, START, forecasts([1.0, 2.0]), Tariff.flat(1, 2, 0.5), n_steps=2)
    )
    assert plan.p_kw.shape == (0, 2)
    assert plan.objective.energy_cost == pytest.approx(0.5 * 3 * 0.25)
    levels = np.array([0.1, 0.5, 0.9])
    values = np.array([[1.0], [2.0], [4.0]])
    assert pick_quantile(levels, values, 0.7)[0] == pytest.approx(3.0)
    assert pick_quantile(levels, values, 0.99)[0] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="quantile"):
        pick_quantile(levels, values, 1.5)


def test_typical_ev_sessions_follow_the_local_clock_on_a_dst_day() -> None:
    """Berlin springs forward on 2026-03-29: 18:00 and 07:30 stay on the wall clock."""
    ev = {
        "id": "ev",
        "site_id": "s0",
        "kind": "ev_charger",
        "p_max_kw": 11.0,
        "arrival_hour": 18.0,
        "departure_hour": 7.5,
        "session_kwh": 10.0,
    }
    spec = spec_of([ev], tz="Europe/Berlin")
    start = 1_774_735_200.0  # 2026-03-28 22:00 UTC = 23:00 CET, the night of the change
    pb = build_problem(spec, start, forecasts([0.0] * 160), Tariff.flat(1, 160, 0.3), n_steps=160)
    steps = np.flatnonzero(pb.evs.plugged[0])
    # arrival 2026-03-29 18:00 CEST = 16:00 UTC, departure 03-30 07:30 CEST = 05:30 UTC
    assert start + steps[0] * 900 == 1_774_800_000.0
    assert start + (steps[-1] + 1) * 900 == 1_774_800_000.0 + 13.5 * 3600
    assert len(steps) == 54
    assert pb.evs.e_min_kwh[0] == pytest.approx(10.0)


def test_initial_state_from_the_live_fleet_state() -> None:
    from gridflock.fleet.state import FleetState

    ev = {"id": "ev", "site_id": "s0", "kind": "ev_charger", "p_max_kw": 11.0, "eta": 1.0}
    hp = {"id": "hp", "site_id": "s0", "kind": "heat_pump", "p_elec_max_kw": 3.0}
    spec = spec_of([BAT, ev, hp])
    fs = FleetState.from_spec(spec)
    rows = fs.indices(["b", "ev", "hp"])
    fs.soc[rows[0]] = 0.7
    fs.extras["e_need_kwh"][rows[1]] = 4.0
    fs.extras["departure_ts"][rows[1]] = START + 2 * 3600
    fs.extras["t_in_c"][rows[2]] = 21.5
    state = InitialState.from_fleet_state(fs)
    pb = build_problem(
        spec, START, forecasts([1.0] * 8), Tariff.flat(1, 8, 0.3), n_steps=8, state=state
    )
    assert pb.batteries.soc0[0] == pytest.approx(0.7)
    assert pb.evs.e_need_kwh[0] == pytest.approx(4.0)
    assert pb.evs.plugged[0].sum() == 8  # plugged now, leaves at the horizon's end
    assert pb.thermal.t0_c[0] == pytest.approx(21.5)
    plan = solve(pb)
    assert plan.ev_kwh[0, -1] == pytest.approx(4.0)


def test_empty_fleet_far_future_and_huge_values() -> None:
    nodes = [{"id": "f", "kind": "feeder", "limit_import_kw": 1.0, "limit_export_kw": 1.0}]
    spec = build_spec(nodes, [], [], source="test")
    z = np.zeros((0, 4))
    far = 7_000_000_000.0  # the year 2191
    pb = build_problem(
        spec, far, SiteForecasts(z, z, z, np.zeros(4)), Tariff.flat(0, 4, 0.3), n_steps=4
    )
    plan = solve(pb)
    assert plan.p_kw.shape == (0, 4)
    assert plan.objective.total == 0.0
    spec = spec_of([BAT], import_limit_kw=1e5, export_limit_kw=1e5)
    pb = build_problem(spec, far, forecasts([5e4] * 4), Tariff.flat(1, 4, 1e3), n_steps=4)
    assert solve(pb).objective.total == pytest.approx(5e4 * 4 * 0.25 * 1e3, rel=1e-9)


def test_plan_command_refuses_an_export_price_above_the_import_price(tmp_path) -> None:
    from typer.testing import CliRunner

    from gridflock.cli import app

    r = CliRunner().invoke(
        app,
        ["plan", "--homes", "3", "--steps", "4", "--export-price", "0.5", "--out", str(tmp_path)],
    )
    assert r.exit_code == 2
    assert "export_price" in r.output


def test_an_lp_that_runs_out_of_time_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS stopping at the time limit becomes PlanTimeoutError, never a partial plan."""
    from gridflock.optimize import PlanTimeoutError, _highs

    spec = spec_of([BAT])
    pb = build_problem(spec, START, forecasts([1.0] * 4), Tariff.flat(1, 4, 0.3), n_steps=4)
    real = _highs.run

    def slow(lp, **kw):
        status, x, obj, basis = real(lp, **kw)
        return ("time limit reached", x, obj, basis) if len(lp.sites) else (status, x, obj, basis)

    monkeypatch.setattr(_highs, "run", slow)
    with pytest.raises(PlanTimeoutError, match=r"1 sites did not finish within 5.0 s"):
        solve(pb, time_limit_s=5.0, warm_start=False)


def test_a_house_no_power_can_keep_in_band_is_planned_at_best_effort() -> None:
    """A pump too small for a cold night: refused by default, at its utmost on request."""
    hp = {
        "id": "hp",
        "site_id": "s0",
        "kind": "heat_pump",
        "p_elec_max_kw": 0.5,
        "ua_kw_per_k": 0.3,
        "c_kwh_per_k": 2.0,
    }
    bat = BAT | {"soc_initial": 0.5}
    spec = spec_of([hp, bat])
    fc = dataclasses.replace(forecasts([0.5] * 16), t_out_c=np.full(16, -15.0))
    tariff = Tariff.flat(1, 16, 0.3)
    with pytest.raises(PlanInfeasibleError, match=r"heat_pump hp"):
        solve(build_problem(spec, START, fc, tariff, n_steps=16))
    pb = build_problem(spec, START, fc, tariff, n_steps=16, thermal_best_effort=True)
    plan = solve(pb)
    assert plan.status == "optimal"
    assert len(plan.warnings) == 1
    assert "heat_pump hp" in str(plan.warnings[0])
    row = list(plan.device_ids).index("hp")
    k = int(np.flatnonzero(plan.thermal_rows == row)[0])
    cold = plan.temp_c[k, 1:] < 19.0 - 1e-9
    assert cold.any()
    # where the house is below its band, the pump runs flat out
    assert np.allclose(plan.p_kw[row][cold], -0.5)
    # and the battery is still planned
    assert np.isfinite(plan.p_kw[list(plan.device_ids).index("b")]).all()
