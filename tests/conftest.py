"""Shared fixtures: a small hand-made fleet with every device kind."""

from __future__ import annotations

import pytest

from gridflock.domain import FleetSpec, build_spec


def small_fleet_records() -> tuple[list[dict], list[dict], list[dict]]:
    nodes = [
        {"id": "tx-1", "kind": "transformer", "limit_import_kw": 100, "limit_export_kw": 100},
        {
            "id": "f-1",
            "kind": "feeder",
            "parent": "tx-1",
            "limit_import_kw": 60,
            "limit_export_kw": 60,
        },
        {
            "id": "f-2",
            "kind": "feeder",
            "parent": "tx-1",
            "limit_import_kw": 60,
            "limit_export_kw": 8,
        },
    ]
    sites, devices = [], []
    for i in range(6):
        sid = f"s{i}"
        sites.append(
            {
                "id": sid,
                "lat": 48.1 + i * 0.01,
                "lon": 11.5,
                "tz": "Europe/Berlin",
                "grid_node": "f-1" if i < 3 else "f-2",
                "import_limit_kw": 25,
                "export_limit_kw": 10,
                "program": "summer" if i % 2 else "basic",
                "region": "north",
            }
        )
        devices += [
            {"id": f"{sid}-load", "site_id": sid, "kind": "load", "annual_kwh": 4000},
            {"id": f"{sid}-pv", "site_id": sid, "kind": "pv", "kwp": 8},
            {
                "id": f"{sid}-bat",
                "site_id": sid,
                "kind": "battery",
                "e_kwh": 10,
                "p_charge_max_kw": 5,
                "p_discharge_max_kw": 5,
                "soc_initial": 0.8,
            },
        ]
        if i % 2 == 0:
            devices.append(
                {"id": f"{sid}-ev", "site_id": sid, "kind": "ev_charger", "p_max_kw": 11}
            )
        if i % 3 == 0:
            devices.append(
                {"id": f"{sid}-hp", "site_id": sid, "kind": "heat_pump", "p_elec_max_kw": 3}
            )
        if i == 1:
            devices.append({"id": f"{sid}-wh", "site_id": sid, "kind": "water_heater"})
        if i == 4:
            devices.append({"id": f"{sid}-wind", "site_id": sid, "kind": "wind", "rated_kw": 5})
    return nodes, sites, devices


@pytest.fixture
def small_spec() -> FleetSpec:
    nodes, sites, devices = small_fleet_records()
    return build_spec(nodes, sites, devices, "small-fleet")
