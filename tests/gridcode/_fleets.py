"""Small fleets for the grid-code tests: sites under every profile, devices of every kind."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridflock.domain import build_spec
from gridflock.domain.spec import FleetSpec
from gridflock.fleet import FleetState
from gridflock.gridcode import profiles

NOW = 1_750_000_000.0


def spec_of(sites: list[dict[str, Any]], devices: list[dict[str, Any]]) -> FleetSpec:
    nodes = [{"id": "f", "limit_import_kw": 1e6, "limit_export_kw": 1e6}]
    for s in sites:
        s.setdefault("grid_node", "f")
        s.setdefault("lat", 0.0)
        s.setdefault("lon", 0.0)
    return build_spec(nodes, sites, devices, "test")


def random_coded_fleet(rng: np.random.Generator, n: int) -> FleetState:
    """``n`` homes, each under a random profile, with a battery, PV, EV, heat pump, live."""
    codes = list(profiles())
    u = rng.uniform
    sites = [
        {
            "id": f"s{i}",
            "grid_code": codes[int(rng.integers(len(codes)))],
            "export_limit_kw": u(3, 30),
            "import_limit_kw": u(10, 40),
        }
        for i in range(n)
    ]
    devices: list[dict[str, Any]] = []
    for i in range(n):
        s = f"s{i}"
        devices += [
            {
                "id": f"{s}-b",
                "site_id": s,
                "kind": "battery",
                "e_kwh": u(2, 20),
                "p_charge_max_kw": u(1, 10),
                "p_discharge_max_kw": u(1, 10),
            },
            {"id": f"{s}-pv", "site_id": s, "kind": "pv", "kwp": u(1, 10)},
            {"id": f"{s}-ev", "site_id": s, "kind": "ev_charger", "p_max_kw": u(3.7, 22)},
            {"id": f"{s}-hp", "site_id": s, "kind": "heat_pump", "p_elec_max_kw": u(1, 9)},
        ]
    return randomise(FleetState.from_spec(spec_of(sites, devices)), rng)


def randomise(state: FleetState, rng: np.random.Generator) -> FleetState:
    """Random live values for a fleet of ``random_coded_fleet``'s make."""
    u = rng.uniform
    n = state.grid.n_sites
    state.online[:] = True
    state.ts[:] = NOW
    cols, ks, x = state.kind_columns, state.kind_slices, state.extras
    b, pv, ev, hp = (k for k in ks if k.value in ("battery", "pv", "ev_charger", "heat_pump"))
    c = cols[b]
    state.soc[ks[b]] = u(0.2, 1.0, n)
    state.p_baseline_kw[ks[b]] = u(-c["p_charge_max_kw"], c["p_discharge_max_kw"])
    state.p_baseline_kw[ks[pv]] = u(0, 1, n) * state.p_gen_max_kw[ks[pv]]
    c = cols[ev]
    x["e_need_kwh"][ks[ev]] = u(0, 40, n)
    x["departure_ts"][ks[ev]] = NOW + u(1, 14, n) * 3600
    state.p_baseline_kw[ks[ev]] = -u(0, c["p_max_kw"])
    c = cols[hp]
    x["t_in_c"][ks[hp]] = u(c["t_min_c"], c["t_max_c"])
    x["t_out_c"][ks[hp]] = u(-10, 10, n)
    x["cooling"][ks[hp]] = 0.0
    state.p_baseline_kw[ks[hp]] = -u(0, c["p_elec_max_kw"])
    state.p_kw[:] = state.p_baseline_kw
    return state
