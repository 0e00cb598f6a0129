"""The edge gateway runs S2 devices from its configuration file, beside SunSpec ones."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from gridflock.domain import ValidationError
from gridflock.edge.config import parse_config
from gridflock.edge.gateway import EdgeGateway
from gridflock.edge.s2.driver import S2Driver
from gridflock.gateways.mqtt.protocol import Command, CommandMessage

from .s2._rms import RM, BatteryFRBC, BatteryPhysics

RM_ID = str(uuid.uuid4())


def _config(**device: object) -> dict[str, object]:
    entry = {"id": "s2-bat", "protocol": "s2", "kind": "battery", "resource_id": RM_ID}
    entry.update(device)
    return {"gateway": {"id": "gw-s2", "broker": "mqtt://127.0.0.1:1883"}, "devices": [entry]}


def test_s2_entries_are_validated_with_every_problem_reported() -> None:
    raw = _config(listen_port=70000, resource_id="not-a-uuid", kind="pv")
    with pytest.raises(ValidationError) as err:
        parse_config(raw, "edge.yaml")
    text = str(err.value)
    assert "listen_port" in text
    assert "resource_id" in text
    assert "kind" in text


def test_a_setpoint_reaches_the_s2_battery_through_the_gateway() -> None:
    """A protocol v1 command to an S2 battery becomes an FRBC instruction the RM follows."""
    cfg = parse_config(_config(listen_port=0, safe_mode="own_control"), "edge.yaml")
    gw = EdgeGateway(cfg)
    (driver,) = gw.drivers
    assert isinstance(driver, S2Driver)
    phys = BatteryPhysics()

    async def main() -> None:
        await driver.start()
        rm = RM(driver.endpoints["s2-bat"], RM_ID, BatteryFRBC(phys))
        await rm.start()
        try:
            deadline = time.monotonic() + 10
            while not (s := driver.session("s2-bat")) or not s.ready.is_set():
                assert time.monotonic() < deadline, "the RM never became ready"
                await asyncio.sleep(0.01)
            now = time.time()
            msg = CommandMessage(
                v=1,
                issued_at=now,
                commands=[
                    Command(
                        id="c1", device="s2-bat", seq=1, p_setpoint_kw=-3.0, valid_until=now + 60
                    )
                ],
            )
            (ack,) = await gw.handle_commands(msg)
            assert ack.status == "accepted", ack
            deadline = time.monotonic() + 5
            while abs(phys.power_w() - 3000.0) > 1.0:  # S2 counts consumption as positive
                assert time.monotonic() < deadline, f"battery at {phys.power_w()} W"
                await asyncio.sleep(0.01)
        finally:
            await rm.stop()
            await driver.close()

    asyncio.run(asyncio.wait_for(main(), 30))
