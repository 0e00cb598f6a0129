"""The service runs MQTT and OCPP links as one plant: an event reaches real OCPP chargers.

A runtime on a real SQLite store drives a :class:`CompositeLink` of an in-memory MQTT
link (the PVs) and the OCPP back end, to which two simulated charge points connect (one
OCPP 1.6J, one 2.0.1). An operator event asks for less import; the chargers receive
TxProfiles, charge less, and the readings and acks land in the fleet state and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.events import Scope
from gridflock.domain.messages import CommandBatch
from gridflock.domain.ports import CommandAck, LinkReport
from gridflock.service import Runtime
from gridflock.service.links import CompositeLink, MemoryLink
from gridflock.sim.ocpp import SimulatedChargePoint
from gridflock.store import Store

from ..gateways._ocpp import charger, link_for, ocpp_fleet, until

OPERATOR = Principal("key-ops", "ops-desk", Role.OPERATOR)


def test_an_event_reaches_ocpp_chargers_beside_mqtt_devices(tmp_path: Path) -> None:
    spec = ocpp_fleet(2)
    store = Store(f"sqlite:///{tmp_path / 'ocpp.db'}")
    store.upgrade()
    store.save_fleet(spec)
    settings = Settings(database_url="sqlite://", control_interval_s=0.2, telemetry_flush_s=0.1)

    async def main() -> None:
        ocpp = link_for(spec)
        mqtt = MemoryLink()
        link = CompositeLink({"mqtt": mqtt, "ocpp": ocpp}, spec)
        rt = Runtime(settings, store, spec, link)
        links = asyncio.create_task(link.run())
        loop = asyncio.create_task(rt.run())
        await until(lambda: ocpp.connected, "the CSMS to listen")
        points = [
            SimulatedChargePoint(charger(0, "ocpp1.6")),
            SimulatedChargePoint(charger(1, "ocpp2.0.1")),
        ]
        tasks = [asyncio.create_task(p.run(ocpp.url, interval_s=0.2)) for p in points]
        evs = rt.state.indices(["s0-ev", "s1-ev"])
        try:
            await until(lambda: rt.state.online[evs].all(), "both chargers online")
            assert rt.state.p_kw[evs] == pytest.approx([-11.0, -11.0], abs=0.05)
            await rt.create_event(8.0, None, 600, Scope(), OPERATOR)
            await until(
                lambda: sum(p.ev.p_kw for p in points) <= 22.0 - 8.0 + 0.3,
                "the chargers to cut 8 kW",
            )
            assert any(1001 in p.ev.profiles for p in points)  # an event's TxProfile
            await until(lambda: rt.state.p_kw[evs].sum() >= -14.3, "the fleet state to see it")
            assert not mqtt.sent or all(
                set(b.device_ids) <= {"s0-pv", "s1-pv"} for b in mqtt.sent
            )  # the PVs' commands went to MQTT, the chargers' to OCPP
            await until(
                lambda: (
                    rt.writer.flush()
                    and "accepted"
                    in set(store.commands_for_device("s0-ev")["status"])
                    | set(store.commands_for_device("s1-ev")["status"])
                ),
                "an accepted command in the store",
            )
        finally:
            for t in tasks:
                t.cancel()
            rt.stop()
            link.stop()
            for t in (*tasks, loop, links):
                with contextlib.suppress(
                    asyncio.CancelledError, TimeoutError, ConnectionError
                ):  # a cancelled call may surface as a timeout
                    await asyncio.wait_for(t, 15)

    try:
        asyncio.run(main())
    finally:
        store.close()


class _Broken(MemoryLink):
    def send(self, commands: CommandBatch) -> None:
        raise RuntimeError("boom")

    def receive(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


def test_the_composite_routes_by_protocol_and_survives_a_failing_link() -> None:
    spec = ocpp_fleet(2)
    a, b = MemoryLink(), _Broken()
    link = CompositeLink({"mqtt": a, "ocpp": b}, spec)
    batch = CommandBatch(
        np.array(["c1", "c2", "c3"], dtype=object),
        np.array(["s0-ev", "s0-pv", "nobody"], dtype=object),
        np.array([-5.0, 1.0, 2.0]),
        np.full(3, 2e9),
        np.array([1, 1, 1]),
        1e9,
    )
    link.send(batch)  # the OCPP link raises: the MQTT one still gets its command
    assert [list(x.device_ids) for x in a.sent] == [["s0-pv"]]
    from gridflock.domain.messages import TelemetryBatch

    ids = np.array(["s0-pv", "s0-ev"], dtype=object)
    a.deliver(TelemetryBatch(ids, np.ones(2), np.ones(2), np.full(2, math.nan), np.ones(2)))
    a.ack(CommandAck("s0", "c2", "s0-pv", "accepted"))
    got = link.receive()  # s0-ev is OCPP's: the MQTT link's reading of it is dropped
    assert [list(x.device_ids) for x in got] == [["s0-pv"]]
    report = link.take_report()
    assert isinstance(report, LinkReport)
    assert [x.command_id for x in report.acks] == ["c2"]
    with pytest.raises(ValueError, match="default"):
        CompositeLink({"mqtt": a}, spec, default="twin")


def test_edge_devices_go_through_the_mqtt_link_unless_they_have_their_own() -> None:
    """``edge`` devices (behind an edge gateway) ride on the MQTT link, or on an ``edge`` one."""
    from gridflock.domain.spec import merge_fleets
    from gridflock.sim.edge_sites import edge_fleet

    spec = merge_fleets(ocpp_fleet(1), edge_fleet(2))
    assert set(spec.all_devices()["protocol"]) == {"mqtt", "ocpp", "edge"}
    mqtt, ocpp, twin, edge = MemoryLink(), MemoryLink(), MemoryLink(), MemoryLink()
    batch = CommandBatch(
        np.array(["c1", "c2", "c3"], dtype=object),
        np.array(["edge-0001-bat", "s0-ev", "s0-pv"], dtype=object),
        np.array([1.0, -5.0, 1.0]),
        np.full(3, 2e9),
        np.array([1, 1, 1]),
        1e9,
    )
    CompositeLink({"mqtt": mqtt, "ocpp": ocpp}, spec).send(batch)
    assert [list(x.device_ids) for x in mqtt.sent] == [["edge-0001-bat", "s0-pv"]]
    CompositeLink({"twin": twin, "ocpp": ocpp, "edge": edge}, spec, default="twin").send(batch)
    assert [list(x.device_ids) for x in edge.sent] == [["edge-0001-bat"]]
    assert [list(x.device_ids) for x in twin.sent] == [["s0-pv"]]
