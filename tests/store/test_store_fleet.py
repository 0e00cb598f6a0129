"""Fleet save/load: a round trip gives back the same validated spec."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from gridflock.domain import DeviceKind, FleetSpec, build_spec
from gridflock.store import Store
from gridflock.store.models import DeviceRow, table_of


def small_fleet() -> FleetSpec:
    nodes = [
        {"id": "S1", "kind": "substation", "limit_import_kw": 5000, "limit_export_kw": 4000},
        {
            "id": "F1",
            "kind": "feeder",
            "parent": "S1",
            "limit_import_kw": 500,
            "limit_export_kw": 400,
        },
        {
            "id": "F2",
            "kind": "feeder",
            "parent": "S1",
            "limit_import_kw": 300,
            "limit_export_kw": 250.5,
        },
    ]
    sites = [
        {
            "id": "home-1",
            "lat": 52.1,
            "lon": 5.1,
            "tz": "Europe/Amsterdam",
            "grid_node": "F1",
            "program": "summer",
            "region": "north",
        },
        {"id": "home-2", "lat": 52.2, "lon": 5.2, "grid_node": "F1", "opt_out": True},
        {
            "id": "shop-1",
            "lat": 51.9,
            "lon": 4.9,
            "grid_node": "F2",
            "import_limit_kw": 60.0,
            "export_limit_kw": 30.0,
        },
    ]
    devices = [
        {
            "id": "bat-1",
            "site_id": "home-1",
            "kind": "battery",
            "e_kwh": 13.5,
            "p_charge_max_kw": 5.0,
            "p_discharge_max_kw": 5.0,
            "soc_reserve": 0.3,
            "cost_per_kwh": 0.05,
        },
        {
            "id": "pv-1",
            "site_id": "home-1",
            "kind": "pv",
            "kwp": 6.2,
            "tilt_deg": 35.0,
            "curtailable": False,
        },
        {
            "id": "ev-1",
            "site_id": "home-2",
            "kind": "ev_charger",
            "phases": 1,
            "gateway_id": "cloud-ev",
        },
        {"id": "hp-1", "site_id": "home-2", "kind": "heat_pump", "p_elec_max_kw": 3.0},
        {"id": "wh-1", "site_id": "shop-1", "kind": "water_heater"},
        {"id": "wind-1", "site_id": "shop-1", "kind": "wind", "rated_kw": 10.0},
        {"id": "load-1", "site_id": "shop-1", "kind": "load", "annual_kwh": 12000},
        {
            "id": "bat-2",
            "site_id": "shop-1",
            "kind": "battery",
            "e_kwh": 100.0,
            "p_charge_max_kw": 50.0,
            "p_discharge_max_kw": 40.0,
        },
    ]
    return build_spec(nodes, sites, devices, source="test")


def assert_same_spec(a: FleetSpec, b: FleetSpec) -> None:
    pd.testing.assert_frame_equal(a.grid_nodes, b.grid_nodes)
    pd.testing.assert_frame_equal(a.sites, b.sites)
    assert set(a.devices) == set(b.devices)
    for kind in DeviceKind:
        pd.testing.assert_frame_equal(a.devices[kind], b.devices[kind], obj=kind.value)


def test_fleet_round_trip(store: Store) -> None:
    spec = small_fleet()
    store.save_fleet(spec)
    loaded = store.load_fleet()
    assert loaded.counts() == spec.counts()
    assert_same_spec(loaded, spec)
    assert loaded.devices[DeviceKind.EV_CHARGER]["gateway_id"].tolist() == ["cloud-ev"]
    assert loaded.devices[DeviceKind.PV]["curtailable"].tolist() == [False]


def test_device_attributes_are_kept_as_json(store: Store) -> None:
    store.save_fleet(small_fleet())
    table = table_of(DeviceRow)
    with store.engine.connect() as conn:
        attrs = conn.execute(select(table.c.attrs).where(table.c.id == "bat-1")).scalar_one()
    assert attrs["e_kwh"] == 13.5
    assert attrs["soc_reserve"] == 0.3
    assert "id" not in attrs


def test_save_fleet_replaces_the_stored_fleet(store: Store) -> None:
    store.save_fleet(small_fleet())
    smaller = build_spec(
        [{"id": "F9", "limit_import_kw": 10, "limit_export_kw": 10}],
        [{"id": "s9", "lat": 0.0, "lon": 0.0, "grid_node": "F9"}],
        [{"id": "load-9", "site_id": "s9", "kind": "load"}],
    )
    store.save_fleet(smaller)
    assert_same_spec(store.load_fleet(), smaller)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(table_of(DeviceRow))).scalar() == 1


def test_empty_store_loads_an_empty_fleet(store: Store) -> None:
    spec = store.load_fleet()
    assert spec.n_devices == 0
    assert len(spec.sites) == 0


@pytest.mark.parametrize("n_sites", [2_000])
def test_bulk_fleet_round_trip(store: Store, n_sites: int) -> None:
    nodes = [{"id": "F1", "limit_import_kw": 1e6, "limit_export_kw": 1e6}]
    sites = [{"id": f"s{i}", "lat": 50.0, "lon": 4.0, "grid_node": "F1"} for i in range(n_sites)]
    devices = [
        d
        for i in range(n_sites)
        for d in (
            {
                "id": f"b{i}",
                "site_id": f"s{i}",
                "kind": "battery",
                "e_kwh": 10.0 + i % 7,
                "p_charge_max_kw": 5.0,
                "p_discharge_max_kw": 5.0,
            },
            {"id": f"p{i}", "site_id": f"s{i}", "kind": "pv", "kwp": 4.0 + i % 3},
            {"id": f"l{i}", "site_id": f"s{i}", "kind": "load"},
        )
    ]
    spec = build_spec(nodes, sites, devices)
    store.save_fleet(spec)
    assert_same_spec(store.load_fleet(), spec)


def test_bulk_insert_refuses_ragged_columns(store: Store) -> None:
    from gridflock.store._bulk import bulk_insert
    from gridflock.store.models import GridNodeRow

    with store.engine.begin() as conn, pytest.raises(ValueError, match="differ in length"):
        bulk_insert(conn, table_of(GridNodeRow), {"id": ["a", "b"], "pos": [0]})
