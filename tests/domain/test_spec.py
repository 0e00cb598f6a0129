"""Validation of fleet specs: every problem named by source, entry and field."""

from __future__ import annotations

import pytest

from gridflock.domain import Event, EventStatus, IllegalTransitionError, ValidationError, build_spec
from gridflock.domain.kinds import KIND_ATTRS, DeviceKind

NODES = [{"id": "f1", "limit_import_kw": 100, "limit_export_kw": 100}]
SITES = [{"id": "s1", "lat": 48, "lon": 11, "grid_node": "f1"}]


def problems(devices, sites=SITES, nodes=NODES):
    with pytest.raises(ValidationError) as e:
        build_spec(nodes, sites, devices, "fleet.yaml")
    return [str(p) for p in e.value.problems]


def test_defaults_are_applied_from_the_declarations():
    spec = build_spec(
        NODES,
        SITES,
        [
            {
                "id": "b",
                "site_id": "s1",
                "kind": "battery",
                "e_kwh": 10,
                "p_charge_max_kw": 5,
                "p_discharge_max_kw": 5,
            }
        ],
        "f",
    )
    bat = spec.devices[DeviceKind.BATTERY].iloc[0]
    declared = {a.name: a.default for a in KIND_ATTRS[DeviceKind.BATTERY]}
    assert bat["soc_reserve"] == declared["soc_reserve"]
    assert bat["gateway_id"] == "s1"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            {"id": "x", "site_id": "s1", "kind": "toaster"},
            "fleet.yaml: device x: kind: unknown device kind 'toaster'",
        ),
        (
            {"id": "p", "site_id": "s1", "kind": "pv", "kwp": -3},
            "fleet.yaml: device p: kwp: must be > 0",
        ),
        (
            {
                "id": "b",
                "site_id": "s1",
                "kind": "battery",
                "e_kwh": 10,
                "p_charge_max_kw": 5,
                "p_discharge_max_kw": 5,
                "soc_initial": 1.4,
            },
            "fleet.yaml: device b: soc_initial: must be >= 0 and <= 1, got 1.4",
        ),
        (
            {"id": "p", "site_id": "s9", "kind": "pv", "kwp": 3},
            "fleet.yaml: device p: site_id: unknown site 's9'",
        ),
        (
            {"id": "p", "site_id": "s1", "kind": "pv", "kwp": "many"},
            "fleet.yaml: device p: kwp: must be a finite number in kWp, got 'many'",
        ),
        ({"id": "p", "site_id": "s1", "kind": "pv"}, "fleet.yaml: device p: kwp: is required"),
    ],
)
def test_device_problems(device, expected):
    assert any(p.startswith(expected) for p in problems([device])), problems([device])


def test_duplicates_and_unknown_grid_node_and_cycles():
    devs = [
        {"id": "p", "site_id": "s1", "kind": "pv", "kwp": 3},
        {"id": "p", "site_id": "s1", "kind": "pv", "kwp": 4},
    ]
    assert "fleet.yaml: device p: id: duplicate id: ids must be unique" in problems(devs)
    bad_site = [{"id": "s1", "lat": 48, "lon": 11, "grid_node": "f7"}]
    assert any("unknown grid node 'f7'" in p for p in problems([], sites=bad_site))
    cyc = [
        {"id": "a", "parent": "b", "limit_import_kw": 1, "limit_export_kw": 1},
        {"id": "b", "parent": "a", "limit_import_kw": 1, "limit_export_kw": 1},
    ]
    sites = [{"id": "s1", "lat": 48, "lon": 11, "grid_node": "a"}]
    assert any("cycle" in p for p in problems([], sites=sites, nodes=cyc))


def test_event_lifecycle():
    ev = Event("e", 10, 0, 60)
    ev.transition(EventStatus.ACTIVE)
    ev.transition(EventStatus.COMPLETED)
    with pytest.raises(IllegalTransitionError, match="cannot go from completed to active"):
        ev.transition(EventStatus.ACTIVE)
    with pytest.raises(ValueError, match="non-zero"):
        Event("z", 0, 0, 60)
    with pytest.raises(ValueError, match="end must be after start"):
        Event("z", 1, 60, 60)
