"""End to end: ``gridflock serve`` dispatches an event to SunSpec devices behind an edge gateway.

Real parts: PostgreSQL (a throw-away schema), a private Mosquitto, ``gridflock serve`` as a
subprocess, and a simulated edge site (``gridflock.sim.edge_sites``): a SunSpec Modbus TCP
server driven by the twin's physics, polled by the edge gateway over TCP. The event's
command travels service → MQTT → edge gateway → Modbus registers, and the battery's
power, read back over Modbus, reaches the service as the event's delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import pytest
from tests.faults._harness import (
    Broker,
    PgSchema,
    Serve,
    all_online,
    post_event,
    provision,
    wait_until,
)

from gridflock.fleet.files import read_fleet
from gridflock.sim.edge_sites import SimulatedEdgeSites, edge_fleet_yaml

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_an_event_reaches_the_modbus_registers_and_the_power_changes(tmp_path: Path) -> None:
    fleet = tmp_path / "edge-fleet.yaml"
    fleet.write_text(edge_fleet_yaml(1, "e2e"))
    spec = read_fleet(fleet)
    with contextlib.ExitStack() as stack:
        schema = PgSchema("gf_edge")
        stack.callback(schema.drop)
        key = provision(schema, spec)
        broker = Broker(tmp_path / "broker")
        broker.start()
        stack.callback(broker.stop)
        serve = Serve(tmp_path, key, database_url=schema.url, mqtt_url=broker.url)
        stack.callback(serve.cleanup)
        serve.start()
        serve.wait_answering(60)
        wait_until(lambda: serve.health()["mqtt"] == "connected", 15, "the service on MQTT")

        sim = SimulatedEdgeSites(1, broker.url, prefix="e2e", poll_s=1.0)
        site = sim.sites[0]
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_until_complete, args=(sim.run(),), daemon=True)
        runner.start()

        def stop_sim() -> None:
            loop.call_soon_threadsafe(sim.stop)
            runner.join(15)
            loop.close()

        stack.callback(stop_sim)
        all_online(serve, spec.n_devices, 30)
        assert site.bat.requested_kw == 0.0  # on its own control: idle
        event_id, target = post_event(serve, 0.5, duration_s=600)
        assert target > 0
        # the command reached the battery's model 124 registers ...
        wait_until(lambda: site.bat.requested_kw > 0.1, 20, "a discharge setpoint in Modbus")
        assert site.bat.model(124).StorCtl_Mod.value == 2
        # ... the twin's battery discharges, and the service sees the power it delivers
        wait_until(lambda: site.bat.p_kw > 0.1, 5, "the battery to discharge")

        def delivered() -> float:
            d = serve.json(f"/events/{event_id}").get("delivered_kw")
            return float(d) if d is not None else 0.0

        wait_until(lambda: delivered() > 0.5 * site.bat.p_kw, 30, "the delivery in the service")
        acks = site.gateway.stats
        assert acks.commands >= 1
        assert not acks.rejected, acks.rejected
