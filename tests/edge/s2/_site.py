"""A gateway's S2 driver with a battery RM and a washing-machine RM connected, for the tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from s2python.frbc import FRBCStorageStatus

from gridflock.edge.s2 import S2DeviceConfig, build_s2_driver

from ._rms import RM, AppliancePPBC, BatteryFRBC, BatteryPhysics, washing_machine

BAT_RM = str(uuid.uuid4())


WM_RM = str(uuid.uuid4())


def run(coro: Awaitable[None], timeout: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def configs(**kw: object) -> list[S2DeviceConfig]:
    return [
        S2DeviceConfig(device_id="bat-1", kind="battery", resource_id=BAT_RM, listen_port=0, **kw),
        S2DeviceConfig(device_id="wm-1", kind="load", resource_id=WM_RM, listen_port=0, **kw),
    ]


class Site:
    """A driver with a battery RM and a washing-machine RM connected to it."""

    def __init__(self, **kw: object) -> None:
        self.driver = build_s2_driver(configs(**kw))
        self.bat = BatteryPhysics()
        self.wm = washing_machine()
        self.bat_rm: RM | None = None
        self.wm_rm: RM | None = None

    async def __aenter__(self) -> Site:
        await self.driver.start()
        url = self.driver.endpoints["bat-1"]
        assert url == self.driver.endpoints["wm-1"]
        self.bat_rm = RM(url, BAT_RM, BatteryFRBC(self.bat))
        self.wm_rm = RM(url, WM_RM, AppliancePPBC(self.wm))
        await self.bat_rm.start()
        await self.wm_rm.start()
        for dev in ("bat-1", "wm-1"):
            await until(lambda dev=dev: self._ready(dev), what=f"{dev} ready")
        return self

    def _ready(self, dev: str) -> bool:
        s = self.driver.session(dev)
        return s is not None and s.ready.is_set()

    async def __aexit__(self, *exc: object) -> None:
        for rm in (self.bat_rm, self.wm_rm):
            if rm is not None:
                await rm.stop()
        await self.driver.close()


def storage(fill: float) -> FRBCStorageStatus:
    return FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=fill)
