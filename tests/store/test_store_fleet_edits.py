"""Fleet edits in place: upsert sites and devices, delete devices and sites."""

from __future__ import annotations

import pandas as pd
import pytest

from gridflock.domain import DeviceKind, ValidationError
from gridflock.store import Store

from .test_store_fleet import small_fleet


def test_upsert_new_and_existing_sites(store: Store) -> None:
    store.save_fleet(small_fleet())
    sites = pd.DataFrame(
        [
            {"id": "home-3", "lat": 52.3, "lon": 5.3, "grid_node": "F2", "program": "winter"},
            {"id": "home-1", "lat": 52.1, "lon": 5.1, "grid_node": "F2", "opt_out": True},
        ]
    )
    assert store.upsert_sites(sites) == 2
    spec = store.load_fleet()
    got = spec.sites.set_index("id")
    assert spec.sites["id"].tolist() == ["home-1", "home-2", "shop-1", "home-3"]  # order kept
    assert got.loc["home-3", "program"] == "winter"
    assert got.loc["home-3", "import_limit_kw"] == 25.0  # default filled
    assert got.loc["home-1", "grid_node"] == "F2"
    assert bool(got.loc["home-1", "opt_out"]) is True
    assert got.loc["home-1", "tz"] == "UTC"  # an upsert writes the whole row
    assert len(spec.devices[DeviceKind.BATTERY]) == 2  # devices untouched


def test_upsert_sites_validates_against_stored_grid_nodes(store: Store) -> None:
    store.save_fleet(small_fleet())
    bad = pd.DataFrame([{"id": "x", "lat": 95.0, "lon": 0.0, "grid_node": "nowhere"}])
    with pytest.raises(ValidationError) as info:
        store.upsert_sites(bad)
    text = str(info.value)
    assert "nowhere" in text
    assert "lat" in text
    assert "x" not in store.load_fleet().sites["id"].tolist()
    assert store.upsert_sites(bad.iloc[:0]) == 0


def test_upsert_devices(store: Store) -> None:
    store.save_fleet(small_fleet())
    batteries = pd.DataFrame(
        [
            {
                "id": "bat-1",
                "site_id": "home-1",
                "e_kwh": 20.0,
                "p_charge_max_kw": 7.0,
                "p_discharge_max_kw": 7.0,
            },
            {
                "id": "bat-3",
                "site_id": "home-2",
                "e_kwh": 5.0,
                "p_charge_max_kw": 2.5,
                "p_discharge_max_kw": 2.5,
                "gateway_id": "gw-x",
            },
        ]
    )
    assert store.upsert_devices(DeviceKind.BATTERY, batteries) == 2
    spec = store.load_fleet()
    bat = spec.devices[DeviceKind.BATTERY].set_index("id")
    assert spec.devices[DeviceKind.BATTERY]["id"].tolist() == ["bat-1", "bat-2", "bat-3"]
    assert bat.loc["bat-1", "e_kwh"] == 20.0
    assert bat.loc["bat-1", "p_charge_max_kw"] == 7.0
    assert bat.loc["bat-3", "gateway_id"] == "gw-x"
    assert bat.loc["bat-1", "gateway_id"] == "home-1"  # default: the site's
    assert spec.n_devices == small_fleet().n_devices + 1


def test_upsert_devices_validates(store: Store) -> None:
    store.save_fleet(small_fleet())
    orphan = pd.DataFrame([{"id": "pv-9", "site_id": "nowhere", "kwp": 3.0}])
    with pytest.raises(ValidationError, match="nowhere"):
        store.upsert_devices(DeviceKind.PV, orphan)
    negative = pd.DataFrame([{"id": "pv-9", "site_id": "home-1", "kwp": -3.0}])
    with pytest.raises(ValidationError, match="kwp"):
        store.upsert_devices(DeviceKind.PV, negative)
    wrong_kind = pd.DataFrame([{"id": "pv-9", "site_id": "home-1", "kind": "wind"}])
    with pytest.raises(ValueError, match="must be one"):
        store.upsert_devices(DeviceKind.PV, wrong_kind)
    assert store.load_fleet().n_devices == small_fleet().n_devices


def test_upsert_device_changing_kind(store: Store) -> None:
    store.save_fleet(small_fleet())
    store.upsert_devices(DeviceKind.LOAD, pd.DataFrame([{"id": "wind-1", "site_id": "shop-1"}]))
    spec = store.load_fleet()
    assert "wind-1" in spec.devices[DeviceKind.LOAD]["id"].tolist()
    assert spec.devices[DeviceKind.WIND].empty


def test_delete_devices_and_site(store: Store) -> None:
    store.save_fleet(small_fleet())
    assert store.delete_devices(["pv-1", "ghost"]) == 1
    assert store.delete_devices([]) == 0
    assert "pv-1" not in store.load_fleet().all_devices()["id"].tolist()
    assert store.delete_site("shop-1") == 4  # its devices go with it
    assert store.delete_site("shop-1") is None
    spec = store.load_fleet()
    assert spec.sites["id"].tolist() == ["home-1", "home-2"]
    assert sorted(spec.all_devices()["id"]) == ["bat-1", "ev-1", "hp-1"]
