"""A new local protocol is one entry model and one driver factory; a failing driver harms no one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Literal

import pytest

from gridflock.edge import config as edge_config
from gridflock.edge.config import DeviceEntry, parse_config, register_protocol
from gridflock.edge.driver import ApplyResult, DeviceReading, LocalDriver
from gridflock.edge.gateway import EdgeGateway, build_drivers
from gridflock.gateways.mqtt.protocol import Command, CommandMessage


class LoopEntry(DeviceEntry):
    """A made-up protocol's entry: devices on a bus address."""

    protocol: Literal["loop"]
    address: int


class LoopDriver:
    """Devices whose setpoint is their power; ``broken`` ones raise on every write."""

    name = "loop"

    def __init__(self, entries: Sequence[Any]) -> None:
        self.p = {e.id: 0.0 for e in entries}
        self.broken = {e.id for e in entries if e.address == 13}

    @property
    def device_ids(self) -> Sequence[str]:
        return list(self.p)

    async def start(self) -> None:
        return None

    async def read(self) -> list[DeviceReading]:
        return [DeviceReading(d, time.time(), p) for d, p in self.p.items()]

    async def apply(self, device_id: str, p_setpoint_kw: float, valid_until: float) -> ApplyResult:
        if device_id in self.broken:
            raise RuntimeError("bus fault")
        self.p[device_id] = p_setpoint_kw
        return ApplyResult(device_id, True, None, p_setpoint_kw)

    async def release(self, device_id: str) -> None:
        if device_id in self.broken:
            raise RuntimeError("bus fault")
        self.p[device_id] = 0.0

    async def close(self) -> None:
        return None


def test_a_registered_protocol_is_configured_built_and_driven(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge_config, "_PROTOCOLS", dict(edge_config._PROTOCOLS))
    register_protocol("loop", LoopEntry, LoopDriver)
    cfg = parse_config(
        {
            "gateway": {"id": "gw-loop", "broker": "mqtt://127.0.0.1:1"},
            "devices": [
                {"id": "hp-1", "kind": "heat_pump", "protocol": "loop", "address": 1},
                {"id": "hp-13", "kind": "heat_pump", "protocol": "loop", "address": 13},
            ],
        }
    )
    drivers = build_drivers(cfg)
    assert len(drivers) == 1
    assert isinstance(drivers[0], LocalDriver)
    drv = drivers[0]
    assert isinstance(drv, LoopDriver)
    gw = EdgeGateway(cfg, drivers)

    async def main() -> None:
        now = time.time()
        msg = CommandMessage(
            v=1,
            issued_at=now,
            commands=[
                Command(id="a", device="hp-13", seq=1, p_setpoint_kw=-2.0, valid_until=now + 0.5),
                Command(id="b", device="hp-1", seq=1, p_setpoint_kw=-1.5, valid_until=now + 0.5),
            ],
        )
        acks = await gw.handle_commands(msg)
        assert [(a.id, a.status, a.reason) for a in acks] == [
            ("a", "rejected", "device_error"),  # the broken device answers for itself ...
            ("b", "accepted", None),  # ... and the next one is applied all the same
        ]
        assert drv.p["hp-1"] == -1.5
        await asyncio.sleep(0.6)
        gw.last_heard = time.time()
        await gw.control_step()  # a release that raises does not stop the others
        assert drv.p["hp-1"] == 0.0

    asyncio.run(main())
