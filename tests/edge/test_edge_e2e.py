"""End to end: the service dispatches an event to SunSpec devices behind an edge gateway.

Real parts: a private Mosquitto; the service (its ``Runtime`` with the MQTT link, control
loop and store, in this process, as ``gridflock serve`` runs it); a simulated edge site
(``gridflock.sim.edge_sites``): a SunSpec Modbus TCP server driven by the twin's physics,
polled over TCP by the edge gateway. The event's command travels service → MQTT → edge
gateway → Modbus registers, and the battery's power, read back over Modbus, reaches the
service as the event's delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests._net import Broker

from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.events import Scope
from gridflock.fleet.files import read_fleet
from gridflock.gateways.mqtt.link import BrokerAddress, MqttLink
from gridflock.service import Runtime
from gridflock.sim.edge_sites import SimulatedEdgeSites, edge_fleet_yaml
from gridflock.store import Store

from ._site import until

OPERATOR = Principal("key-ops", "ops-desk", Role.OPERATOR)


def test_an_event_reaches_the_modbus_registers_and_the_power_changes(tmp_path: Path) -> None:
    fleet = tmp_path / "edge-fleet.yaml"
    fleet.write_text(edge_fleet_yaml(1, "e2e"))
    spec = read_fleet(fleet)
    broker = Broker(tmp_path)
    broker.start()
    url = f"mqtt://127.0.0.1:{broker.port}"
    db = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(db)
    store.upgrade()
    store.save_fleet(spec)
    devices = spec.all_devices()

    async def main() -> None:
        cfg = Settings(database_url=db, mqtt_url=url, control_interval_s=0.5, telemetry_flush_s=0.2)
        link = MqttLink(
            BrokerAddress.parse(url), dict(zip(devices["id"], devices["gateway_id"], strict=True))
        )
        runtime = Runtime(cfg, store, spec, link)
        service = [asyncio.create_task(link.run()), asyncio.create_task(runtime.run())]
        sim = SimulatedEdgeSites(1, url, prefix="e2e", poll_s=1.0)
        site = sim.sites[0]
        edge = asyncio.create_task(sim.run())
        try:
            await until(
                lambda: runtime.fleet_summary().get("devices_online") == spec.n_devices,
                20,
                "the edge site's devices online in the service",
            )
            assert site.bat.requested_kw == 0.0  # on its own control: idle
            event = await runtime.create_event(2.0, None, 600, Scope(), OPERATOR)
            # the command reached the battery's model 124 registers ...
            await until(lambda: site.bat.requested_kw > 0.1, 15, "a discharge setpoint")
            assert site.bat.model(124).StorCtl_Mod.value == 2
            # ... the twin's battery discharges, and the service sees the power delivered
            await until(lambda: site.bat.p_kw > 0.1, 5, "the battery to discharge")

            def delivered() -> float:
                return runtime.event(event.id).delivered_kw or 0.0

            await until(lambda: delivered() > 1.0, 15, "the delivery in the service")
            assert not site.gateway.stats.rejected, site.gateway.stats.rejected
            assert site.gateway.stats.commands >= 1
        finally:
            sim.stop()
            runtime.stop()
            link.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await asyncio.gather(edge, *service, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        store.close()
        broker.kill()
