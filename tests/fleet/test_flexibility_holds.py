"""Promised flexibility holds: the twin's own physics, run at the promised power, stays in limits.

For random fleets and states (batteries, EV chargers, heat pumps, water heaters) and
holds from 15 minutes to 4 hours, each device is run at ``baseline + up`` and at
``baseline - down`` through the digital twin's physics functions (the ones
``sim.twin.Twin`` steps), with the conditions it last reported held over the hold, and
must keep every limit: the comfort band, the tank band, the SoC floor (reserve) and
ceiling, the EV energy by departure, and the promised power itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridflock.domain import DeviceKind, build_spec
from gridflock.domain.bands import T_TANK_AMBIENT_C
from gridflock.fleet import FleetState, flexibility
from gridflock.sim import physics

NOW = 1_750_000_000.0
N = 400  # homes; each has one device of every kind below
STEPS = 120  # physics steps per hold
#: Stated tolerances: temperatures [K], SoC [1], energy [kWh], power [kW].
TOL_K, TOL_SOC, TOL_KWH, TOL_KW = 1e-6, 1e-9, 1e-6, 1e-6
B, EV, HP, WH = (
    DeviceKind.BATTERY,
    DeviceKind.EV_CHARGER,
    DeviceKind.HEAT_PUMP,
    DeviceKind.WATER_HEATER,
)


def random_fleet(rng: np.random.Generator) -> FleetState:
    """``N`` homes with random capabilities and random live state, all online."""
    nodes = [{"id": "f", "limit_import_kw": 1e6, "limit_export_kw": 1e6}]
    sites = [{"id": f"s{i}", "lat": 48.0, "lon": 11.0, "grid_node": "f"} for i in range(N)]
    u = rng.uniform
    devices = []
    for i in range(N):
        s = f"s{i}"
        soc_min = u(0, 0.2)
        t_min = u(17, 21)
        wh_min = u(40, 50)
        devices += [
            {
                "id": f"{s}-b",
                "site_id": s,
                "kind": "battery",
                "e_kwh": u(2, 20),
                "p_charge_max_kw": u(1, 10),
                "p_discharge_max_kw": u(1, 10),
                "eta_charge": u(0.85, 1.0),
                "eta_discharge": u(0.85, 1.0),
                "soc_min": soc_min,
                "soc_reserve": soc_min + u(0, 0.3),
                "soc_max": u(0.8, 1.0),
                "soc_initial": 0.5,
            },
            {
                "id": f"{s}-ev",
                "site_id": s,
                "kind": "ev_charger",
                "p_max_kw": u(3.7, 22),
                "p_min_kw": u(1.0, 3.0),
                "eta": u(0.85, 0.95),
            },
            {
                "id": f"{s}-hp",
                "site_id": s,
                "kind": "heat_pump",
                "p_elec_max_kw": u(1, 6),
                "cop_nominal": u(2.5, 4.5),
                "ua_kw_per_k": u(0.05, 0.4),
                "c_kwh_per_k": u(2, 15),
                "t_min_c": t_min,
                "t_max_c": t_min + u(3, 8),
                "t_heat_c": t_min + 1,
                "t_cool_c": t_min + 2.5,
                "can_cool": bool(rng.random() < 0.7),
            },
            {
                "id": f"{s}-wh",
                "site_id": s,
                "kind": "water_heater",
                "volume_l": u(80, 300),
                "p_element_kw": u(1, 4.5),
                "t_min_c": wh_min,
                "t_max_c": wh_min + u(15, 35),
                "t_set_c": wh_min + 10,
                "loss_kw_per_k": u(0.0005, 0.004),
            },
        ]
    state = FleetState.from_spec(build_spec(nodes, sites, devices, "random"))
    state.online[:] = True
    state.ts[:] = NOW
    cols, ks, x = state.kind_columns, state.kind_slices, state.extras
    # batteries: any SoC in their band, any power within their ratings
    c = cols[B]
    state.soc[ks[B]] = u(c["soc_min"], c["soc_max"])
    state.p_baseline_kw[ks[B]] = u(-c["p_charge_max_kw"], c["p_discharge_max_kw"])
    # EV chargers: a session with some energy due, leaving within 14 h, charging or not
    c = cols[EV]
    need = np.where(rng.random(N) < 0.8, u(0, 40, N), 0.0)
    x["e_need_kwh"][ks[EV]] = need
    x["departure_ts"][ks[EV]] = NOW + u(0.05, 14, N) * 3600
    state.p_baseline_kw[ks[EV]] = -np.where(need > 0, u(0, c["p_max_kw"]), 0.0)
    # heat pumps: indoor mostly in the band, weather from frost to heat wave, sun or not
    c = cols[HP]
    t_out = u(-10, 38, N)
    cooling = (c["can_cool"] > 0.5) & (t_out > c["t_cool_c"] - 4)
    x["t_in_c"][ks[HP]] = u(c["t_min_c"] - 0.5, c["t_max_c"] + 0.5)
    x["t_out_c"][ks[HP]] = t_out
    x["gain_kw"][ks[HP]] = 0.3 + 1.2 * u(0, 1, N) * (rng.random(N) < 0.6)
    x["cooling"][ks[HP]] = cooling
    x["cop"][ks[HP]] = physics.cop(t_out, c["cop_nominal"], ~cooling)
    state.p_baseline_kw[ks[HP]] = -u(0, c["p_elec_max_kw"])
    # water heaters: tank anywhere around its band, any draw, element on or off
    c = cols[WH]
    x["t_tank_c"][ks[WH]] = u(c["t_min_c"] - 2, c["t_max_c"] + 2)
    x["draw_kw"][ks[WH]] = u(0, 3, N) * (rng.random(N) < 0.7)
    state.p_baseline_kw[ks[WH]] = -np.where(rng.random(N) < 0.5, c["p_element_kw"], 0.0)
    state.p_kw[:] = state.p_baseline_kw
    return state


def held_power(state: FleetState, duration_h: float, up: bool) -> np.ndarray:
    """The power each device was promised it can hold: baseline + up or baseline - down."""
    f = flexibility(state, duration_h, NOW)
    return f.baseline_kw + f.up_kw if up else f.baseline_kw - f.down_kw


@pytest.mark.parametrize("up", [True, False], ids=["up", "down"])
@pytest.mark.parametrize("duration_h", [0.25, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_promised_power_is_held_by_the_twins_physics(seed: int, duration_h: float, up: bool):
    state = random_fleet(np.random.default_rng(seed))
    p = held_power(state, duration_h, up)
    f = flexibility(state, duration_h, NOW)
    moved = (f.up_kw if up else f.down_kw) > 1e-9
    assert moved.any()
    ks, cols, x = state.kind_slices, state.kind_columns, state.extras
    dt = duration_h / STEPS

    # batteries: the power flows unclipped and the SoC stays within [reserve, soc_max]
    s, c = ks[B], cols[B]
    floor = np.maximum(c["soc_min"], c["soc_reserve"])
    soc = state.soc[s].copy()
    for _ in range(STEPS):
        soc, actual = physics.battery_step(
            soc,
            p[s],
            dt,
            c["e_kwh"],
            c["p_charge_max_kw"],
            c["p_discharge_max_kw"],
            c["eta_charge"],
            c["eta_discharge"],
            floor,
            c["soc_max"],
        )
        assert np.abs(actual - p[s])[moved[s]].max(initial=0) < TOL_KW
    kept = moved[s] & (state.soc[s] >= floor)  # a battery below its reserve may only charge
    assert (soc[kept] >= floor[kept] - TOL_SOC).all()
    assert (soc[moved[s]] <= c["soc_max"][moved[s]] + TOL_SOC).all()

    # EV chargers: the charger charges as asked while the car is there, and the car leaves
    # with its energy when it charges at full power after the hold (or, where even full
    # power from now on would fall short, no shorter than that)
    s, c = ks[EV], cols[EV]
    need0 = x["e_need_kwh"][s]
    need = need0.copy()
    t_left = (x["departure_ts"][s] - NOW) / 3600.0
    for k in range(STEPS):
        here = np.clip((t_left - k * dt) / dt, 0.0, 1.0)  # share of the step plugged in
        stay_h = np.maximum(here * dt, 1e-12)
        limit = np.where(need > 1e-6, np.minimum(c["p_max_kw"], need / c["eta"] / stay_h), 0.0)
        charge = physics.ev_charge_kw(-p[s], limit, c["p_min_kw"])
        held = (here == 1.0) & moved[s] & (need > -p[s] * c["eta"] * dt)
        assert np.abs(charge + p[s])[held].max(initial=0) < TOL_KW
        need = np.maximum(need - here * charge * c["eta"] * dt, 0.0)
    after = np.maximum(t_left - duration_h, 0.0)
    short = need - c["p_max_kw"] * c["eta"] * after
    short_anyway = np.maximum(need0 - c["p_max_kw"] * c["eta"] * t_left, 0.0)
    assert (short <= short_anyway + TOL_KWH)[moved[s]].all()

    # heat pumps: the house stays in its comfort band at every step of the hold
    s, c = ks[HP], cols[HP]
    t_in = x["t_in_c"][s].copy()
    sign = np.where(x["cooling"][s] > 0.5, -1.0, 1.0)
    inside = (t_in >= c["t_min_c"]) & (t_in <= c["t_max_c"])
    for _ in range(STEPS):
        q = sign * x["cop"][s] * -p[s]
        t_in = physics.house_step(
            t_in,
            x["t_out_c"][s],
            q,
            c["ua_kw_per_k"],
            c["c_kwh_per_k"],
            dt,
            q_gain_kw=x["gain_kw"][s],
        )
        kept = moved[s] & inside
        assert (t_in[kept] >= c["t_min_c"][kept] - TOL_K).all()
        assert (t_in[kept] <= c["t_max_c"][kept] + TOL_K).all()
    assert not moved[s][~inside].any()  # a house outside its band offers nothing

    # water heaters: the tank stays in its temperature band at every step of the hold
    s, c = ks[WH], cols[WH]
    t_tank = x["t_tank_c"][s].copy()
    inside = (t_tank >= c["t_min_c"]) & (t_tank <= c["t_max_c"])
    for _ in range(STEPS):
        t_tank = physics.water_heater_step(
            t_tank,
            -p[s],
            x["draw_kw"][s],
            c["volume_l"],
            c["loss_kw_per_k"],
            T_TANK_AMBIENT_C,
            dt,
        )
        kept = moved[s] & inside
        assert (t_tank[kept] >= c["t_min_c"][kept] - TOL_K).all()
        assert (t_tank[kept] <= c["t_max_c"][kept] + TOL_K).all()
    assert not moved[s][~inside].any()


@pytest.mark.parametrize("up", [True, False])
def test_every_kind_offers_something_in_random_states(up: bool):
    """The check above is not vacuous: each kind moves in each direction on many devices."""
    state = random_fleet(np.random.default_rng(5))
    f = flexibility(state, 1.0, NOW)
    moved = (f.up_kw if up else f.down_kw) > 1e-9
    for kind in (B, EV, HP, WH):
        assert moved[state.kind_slices[kind]].mean() > 0.2, kind
