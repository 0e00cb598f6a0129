"""A service rig for the OpenADR tests: the Runtime over the twin, on a clock the test moves.

The VTNs speak in wall-clock time, so the rig's clock starts at the wall clock and the test
moves it on by control cycles (faster than the wall clock: the fleet answers in seconds).
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gridflock.config import Settings
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

STEP_S = 2.0


class Clock:
    """A clock the test moves; starts at the wall clock."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def free_port() -> int:
    """A TCP port nothing listens on now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TEMPLATES: dict[int, Path] = {}
_SPECS: dict[int, FleetSpec] = {}


def _spec(homes: int) -> FleetSpec:
    """The generated fleet of ``homes`` homes (made once: it is read, never changed)."""
    if homes not in _SPECS:
        _SPECS[homes] = generate_fleet(homes, 1)
    return _SPECS[homes]


def _database(tmp_path: Path, homes: int) -> Path:
    """A SQLite file with the schema and the fleet, copied from one made once per size."""
    template = _TEMPLATES.get(homes)
    if template is None or not template.exists():
        folder = tempfile.mkdtemp(prefix="gf-openadr-")
        atexit.register(shutil.rmtree, folder, True)  # removed when the test run ends
        template = Path(folder) / "template.db"
        store = Store(f"sqlite:///{template}")
        store.upgrade()
        store.save_fleet(_spec(homes))
        store.close()
        _TEMPLATES[homes] = template
    path = tmp_path / "service.db"
    shutil.copyfile(template, path)
    return path


def rig(tmp_path: Path, homes: int = 30, **settings: Any) -> tuple[Runtime, Clock]:
    """A Runtime over a twin of ``homes`` homes, settled for half a minute of cycles."""
    spec = _spec(homes)
    url = f"sqlite:///{_database(tmp_path, homes)}"
    store = Store(url)
    clock = Clock()
    twin = RealtimeTwin(
        spec, seed=3, step_s=STEP_S, hours=2.0, imperfections=Imperfections.ideal(), clock=clock
    )
    cfg = Settings(
        database_url=url,
        control_interval_s=STEP_S,
        forecast_enabled=False,
        **settings,
    )
    rt = Runtime(cfg, store, spec, twin, clock=clock)
    rt.autopilot.settings = type(rt.autopilot.settings)(enabled=False)
    cycles(rt, clock, 30)
    return rt, clock


def cycles(rt: Runtime, clock: Clock, seconds: float) -> None:
    """Move the clock on by ``seconds`` in control cycles."""
    for _ in range(round(seconds / STEP_S)):
        clock.t += STEP_S
        rt.control_cycle()


async def until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait (in the event loop) until ``cond()`` is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def driving(
    rt: Runtime, clock: Clock, cond: Callable[[], Any], timeout: float, what: str
) -> Any:
    """Wait for ``cond`` while running a control cycle every 10 ms of wall time."""

    async def step() -> Any:
        clock.t += STEP_S
        rt.control_cycle()
        return cond()

    deadline = time.monotonic() + timeout
    while True:
        value = await step()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


Waiter = Callable[[], Awaitable[None]]
