"""The device-link interface: every link implements it; the runtime uses only its reports.

The runtime runs over :class:`MemoryLink` (the in-memory fake) and a real SQLite store on a
fake clock: readings, rejections, acknowledgements and gateway statuses handed to the fake
must show in the fleet state, the metrics and the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import CommandAck, DeviceLink, GatewayStatus, LinkReport
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.service import Runtime
from gridflock.service.links import MemoryLink, NoDevices
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_784_116_800.0
ADMIN = Principal("key-admin", "root", Role.ADMIN)


@pytest.fixture(scope="module")
def fleet() -> FleetSpec:
    return generate_fleet(20, 2)


@pytest.fixture
def store(tmp_path: Path, fleet: FleetSpec) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'links.db'}") as s:
        s.upgrade()
        s.save_fleet(fleet)
        yield s


def _readings(spec: FleetSpec, ts: float) -> TelemetryBatch:
    ids = spec.all_devices()["id"].to_numpy(object)
    n = len(ids)
    return TelemetryBatch(ids, np.full(n, ts), np.ones(n), np.full(n, 0.5), np.full(n, np.nan))


def _metric(rt: Runtime, line: str) -> float:
    for row in rt.metrics().decode().splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line}")


def test_every_link_implements_the_declared_interface(fleet: FleetSpec) -> None:
    links: list[object] = [
        NoDevices(),
        MemoryLink(fleet),
        RealtimeTwin(fleet, hours=0.1, clock=lambda: T0),
        MqttLink(BrokerAddress.parse("mqtt://127.0.0.1:1"), {}),
    ]
    for link in links:
        assert isinstance(link, DeviceLink), type(link).__name__
        assert isinstance(link.take_report(), LinkReport)  # type: ignore[attr-defined]


def test_the_runtime_takes_readings_rejections_acks_and_statuses_from_the_link(
    store: Store, fleet: FleetSpec
) -> None:
    clock = [T0]
    link = MemoryLink()
    rt = Runtime(Settings(database_url="sqlite://"), store, fleet, link, clock=lambda: clock[0])
    assert link.spec is fleet  # the link was told the fleet it screens against

    link.deliver(_readings(fleet, T0), messages=3)
    link.reject("unknown_device", 2)
    rt.control_cycle()
    assert rt.state.online.all()
    assert _metric(rt, "gridflock_telemetry_messages_total") == 3
    assert _metric(rt, 'gridflock_telemetry_rejected_total{reason="unknown_device"}') == 2

    devices = fleet.all_devices()
    gateway = str(devices["gateway_id"].iloc[0])
    behind = devices["id"][devices["gateway_id"] == gateway].to_numpy(object)
    other = devices["id"][devices["gateway_id"] != gateway].to_numpy(object)
    batch = CommandBatch(
        np.array(["c-1", "c-2"], dtype=object),
        np.array([behind[0], other[0]], dtype=object),
        np.array([1.0, -1.0]),
        np.full(2, T0 + 30),
        np.array([1, 1]),
        T0,
        None,
    )
    store.save_commands(batch)
    link.ack(CommandAck(gateway, "c-1", str(behind[0]), "accepted"))
    link.ack(CommandAck("gw-x", "c-2", str(other[0]), "rejected", "out_of_range"))
    link.announce(GatewayStatus(gateway, "offline", T0))
    clock[0] += 2
    rt.control_cycle()
    assert not rt.state.online[rt.state.indices(behind)].any()  # offline on its gateway's word
    assert rt.state.online[rt.state.indices(other)].all()
    assert _metric(rt, 'gridflock_command_acks_total{status="accepted"}') == 1
    assert rt.writer.flush()
    rows = store.commands_for_device(str(behind[0]))
    assert rows["status"].tolist() == ["accepted"]
    rows = store.commands_for_device(str(other[0]))
    assert rows[["status", "reason"]].values.tolist() == [["rejected", "out_of_range"]]
    assert link.take_report() == LinkReport()  # taken once

    smaller = generate_fleet(5, 3)
    asyncio.run(rt.import_fleet(smaller, ADMIN))
    assert link.spec is smaller


def test_commands_nobody_acknowledged_are_stored_as_expired(store: Store, fleet: FleetSpec) -> None:
    clock = [T0]
    link = MemoryLink()
    rt = Runtime(Settings(database_url="sqlite://"), store, fleet, link, clock=lambda: clock[0])
    device = str(fleet.all_devices()["id"].iloc[0])
    batch = CommandBatch(
        np.array(["c-silent"], dtype=object),
        np.array([device], dtype=object),
        np.array([1.0]),
        np.array([T0 + 30]),
        np.array([1]),
        T0,
        None,
    )
    store.save_commands(batch)
    link.expire("c-silent")
    rt.control_cycle()
    assert rt.writer.flush()
    assert store.commands_for_device(device)["status"].tolist() == ["expired"]


def test_commands_go_through_the_link(store: Store, fleet: FleetSpec) -> None:
    from gridflock.domain.events import Scope

    clock = [T0]
    link = MemoryLink()
    rt = Runtime(Settings(database_url="sqlite://"), store, fleet, link, clock=lambda: clock[0])
    for _ in range(3):
        link.deliver(_readings(fleet, clock[0]))
        rt.control_cycle()
        clock[0] += 2
    flex_up = float(rt.fleet_summary()["flex_up_kw"])
    assert flex_up > 0
    asyncio.run(rt.create_event(flex_up / 2, None, 600.0, Scope(), ADMIN))
    rt.control_cycle()
    assert link.sent
    assert all(b.event_id for b in link.sent)


def test_the_mqtt_link_reports_increments_since_the_last_report() -> None:
    link = MqttLink(BrokerAddress.parse("mqtt://127.0.0.1:1"), {})
    link.counts.update({"messages": 5, "rejected:stale": 2, "protocol_errors": 1})
    first = link.take_report()
    assert (first.messages, first.rejected) == (5, {"stale": 2, "protocol_error": 1})
    link.counts.update({"messages": 1, "rejected:stale": 1})
    second = link.take_report()
    assert (second.messages, second.rejected) == (1, {"stale": 1})
    link.counts["messages"] -= 1  # a message counted on arrival, refused whole when decoded
    third = link.take_report()
    assert third.messages == 0  # never negative: a counter does not go back
    assert link.take_report().messages == 0
