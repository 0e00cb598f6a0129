"""The synthetic fleet generator: deterministic, realistic shares, a consistent grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridflock.domain import DeviceKind, FleetSpec
from gridflock.fleet.generate import generate_fleet


@pytest.fixture(scope="module")
def fleet() -> FleetSpec:
    return generate_fleet(2000, seed=42)


def assert_specs_equal(a: FleetSpec, b: FleetSpec) -> None:
    pd.testing.assert_frame_equal(a.grid_nodes, b.grid_nodes)
    pd.testing.assert_frame_equal(a.sites, b.sites)
    for kind in DeviceKind:
        pd.testing.assert_frame_equal(a.devices[kind], b.devices[kind])


def test_same_seed_same_fleet(fleet: FleetSpec) -> None:
    assert_specs_equal(generate_fleet(2000, seed=42), fleet)


def test_other_seed_other_fleet(fleet: FleetSpec) -> None:
    other = generate_fleet(2000, seed=43)
    assert not other.sites.equals(fleet.sites)
    assert other.counts() != fleet.counts()


@pytest.mark.parametrize(
    ("kind", "lo", "hi"),
    [
        ("load", 1.0, 1.0),
        ("pv", 0.55, 0.75),
        ("battery", 0.28, 0.42),
        ("ev_charger", 0.22, 0.34),
        ("heat_pump", 0.29, 0.41),
        ("water_heater", 0.19, 0.31),
        ("wind", 0.0, 0.03),
    ],
)
def test_device_shares(fleet: FleetSpec, kind: str, lo: float, hi: float) -> None:
    share = fleet.counts()[kind] / len(fleet.sites)
    assert lo <= share <= hi


def test_devices_go_where_they_belong(fleet: FleetSpec) -> None:
    pv_sites = set(fleet.devices[DeviceKind.PV]["site_id"])
    bat_sites = fleet.devices[DeviceKind.BATTERY]["site_id"]
    assert bat_sites.isin(pv_sites).mean() > 0.9
    hp_sites = set(fleet.devices[DeviceKind.HEAT_PUMP]["site_id"])
    assert fleet.devices[DeviceKind.WATER_HEATER]["site_id"].isin(hp_sites).mean() < 0.15


def test_device_attributes_in_realistic_ranges(fleet: FleetSpec) -> None:
    load = fleet.devices[DeviceKind.LOAD]["annual_kwh"]
    assert load.between(1200, 9000).all()
    assert 3000 < load.median() < 4000
    pv = fleet.devices[DeviceKind.PV]
    assert pv["kwp"].between(3, 15).all()
    assert pv["kwp"].between(5, 10).mean() > 0.6
    assert pv["tilt_deg"].between(15, 45).all()
    assert pv["azimuth_deg"].between(90, 270).mean() > 0.9
    bat = fleet.devices[DeviceKind.BATTERY]
    assert set(bat["e_kwh"]) <= {5, 7.5, 10, 13.5, 15}
    assert bat["p_discharge_max_kw"].between(3, 10).all()
    assert bat["soc_reserve"].between(0.1, 0.3).all()
    ev = fleet.devices[DeviceKind.EV_CHARGER]
    assert set(ev["p_max_kw"]) <= {3.7, 7.4, 11.0}
    assert ev["arrival_hour"].between(17, 20).all()
    hp = fleet.devices[DeviceKind.HEAT_PUMP]
    assert hp["p_elec_max_kw"].between(1.5, 5).all()
    assert 0.75 < hp["can_cool"].mean() < 0.95
    sites = fleet.sites
    assert set(sites["import_limit_kw"]) <= {11, 17, 25, 35}
    assert sites["export_limit_kw"].between(10, 25).all()
    assert 0.6 < (sites["program"] == "summer-peak").mean() < 0.8
    assert set(sites["region"]) == {"north", "south", "east", "west"}


def test_ids_unique_and_padded(fleet: FleetSpec) -> None:
    ids = pd.concat([fleet.grid_nodes["id"], fleet.sites["id"], fleet.all_devices()["id"]])
    assert ids.is_unique
    assert fleet.sites["id"].iloc[0] == "home-000001"
    assert "home-000001-load" in set(fleet.devices[DeviceKind.LOAD]["id"])
    assert {"feeder-001", "tx-01"} <= set(fleet.grid_nodes["id"])


def test_grid_is_consistent_and_binding(fleet: FleetSpec) -> None:
    nodes = fleet.grid_nodes.set_index("id")
    feeders = nodes[nodes["kind"] == "feeder"]
    transformers = nodes[nodes["kind"] == "transformer"]
    assert fleet.sites["grid_node"].isin(feeders.index).all()
    assert feeders["parent"].isin(transformers.index).all()
    assert (transformers["parent"] == "").all()
    homes = fleet.sites["grid_node"].value_counts()
    assert homes.between(90, 150).all()
    per_home = feeders["limit_import_kw"] / homes.reindex(feeders.index)
    assert per_home.between(2.2 * 0.85 - 0.01, 2.2 * 1.15 + 0.01).all()
    tx_homes = homes.groupby(feeders["parent"].reindex(homes.index)).sum()
    tx_per_home = transformers["limit_import_kw"] / tx_homes.reindex(transformers.index)
    assert tx_per_home.between(1.5, 2.1).all()


def test_feeders_are_geographic_clusters(fleet: FleetSpec) -> None:
    sites = fleet.sites
    spread = sites.groupby("grid_node")[["lat", "lon"]].std()
    assert (spread["lat"] < sites["lat"].std() / 2).all()
    dist_km = np.hypot(
        (sites["lat"] - 48.14) * 111.32, (sites["lon"] - 11.58) * 111.32 * np.cos(np.radians(48.14))
    )
    assert dist_km.quantile(0.95) < 13


def test_small_and_odd_sizes() -> None:
    one = generate_fleet(1, seed=0)
    assert len(one.sites) == 1
    assert len(one.grid_nodes) == 2
    spec = generate_fleet(50, seed=1, homes_per_feeder=10, feeders_per_transformer=2)
    assert (spec.grid_nodes["kind"] == "feeder").sum() == 5
    assert (spec.grid_nodes["kind"] == "transformer").sum() == 3
    with pytest.raises(ValueError, match="homes"):
        generate_fleet(0, seed=0)


def test_hundred_thousand_homes() -> None:
    spec = generate_fleet(100_000, seed=7)
    assert len(spec.sites) == 100_000
    assert spec.counts()["load"] == 100_000
    assert 600 < spec.counts()["pv"] / 100 < 700
    assert (spec.grid_nodes["kind"] == "feeder").sum() == round(100_000 / 120)
