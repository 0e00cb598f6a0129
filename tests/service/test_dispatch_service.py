"""The service around the dispatcher: fleet imports with events running, a failing cycle,
finished events leaving the dispatcher, the command lifetime setting.

The Runtime runs over real parts (a SQLite store, the twin in process as device link) on a
fake clock, except where the real loop must run (the failing cycle).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.events import EventStatus, Scope
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_784_116_800.0  # 2026-07-15T12:00:00Z: midday, PV and batteries have room both ways
STEP_S = 2.0
ADMIN = Principal("key-admin", "root", Role.ADMIN)


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _rig(tmp_path: Path, spec: FleetSpec, **settings: object) -> tuple[Runtime, FakeClock]:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(url)
    store.upgrade()
    store.save_fleet(spec)
    clock = FakeClock(T0)
    twin = RealtimeTwin(
        spec, seed=3, step_s=STEP_S, hours=2.0, imperfections=Imperfections.ideal(), clock=clock
    )
    cfg = Settings(database_url=url, control_interval_s=STEP_S, **settings)  # type: ignore[arg-type]
    return Runtime(cfg, store, spec, twin, clock=clock), clock


def _cycles(rt: Runtime, clock: FakeClock, seconds: float) -> None:
    for _ in range(round(seconds / STEP_S)):
        clock.t += STEP_S
        rt.control_cycle()


@pytest.mark.parametrize("homes", [60, 160])
def test_a_fleet_of_another_size_imported_while_an_event_runs(tmp_path: Path, homes: int) -> None:
    rt, clock = _rig(tmp_path, generate_fleet(100, 1))
    _cycles(rt, clock, 20)
    flex = float(rt.fleet_summary()["flex_up_kw"])
    event = asyncio.run(rt.create_event(round(0.2 * flex, 1), None, 1800, Scope(), ADMIN))
    _cycles(rt, clock, 60)
    assert rt.event(event.id).event.status is EventStatus.ACTIVE

    new = generate_fleet(homes, 1)
    asyncio.run(rt.import_fleet(new, ADMIN))
    assert rt.state.n == new.n_devices
    assert rt.dispatcher.held_by.shape == (new.n_devices,)
    _cycles(rt, clock, 60)  # no shape error: the loop goes on
    view = rt.event(event.id)
    assert view.event.status is EventStatus.ACTIVE
    assert view.delivered_kw is not None
    assert view.delivered_kw > 0
    kept = set(new.all_devices()["id"])
    assert set(rt.state.device_ids[rt.dispatcher.held_by >= 0]) <= kept


def test_a_fleet_imported_after_events_ran(tmp_path: Path) -> None:
    rt, clock = _rig(tmp_path, generate_fleet(80, 2))
    _cycles(rt, clock, 20)
    event = asyncio.run(rt.create_event(2.0, None, 60, Scope(), ADMIN, allow_partial=True))
    _cycles(rt, clock, 80)
    assert rt.event(event.id).event.status is EventStatus.COMPLETED
    assert rt.dispatcher.trackers == {}  # the finished event left the dispatcher
    asyncio.run(rt.import_fleet(generate_fleet(40, 2), ADMIN))
    _cycles(rt, clock, 10)
    assert rt.event(event.id).event.status is EventStatus.COMPLETED  # still listed


def test_a_failing_cycle_is_logged_counted_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = generate_fleet(30, 4)
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    store = Store(url)
    store.upgrade()
    store.save_fleet(spec)
    settings = Settings(database_url=url, control_interval_s=0.2, telemetry_flush_s=0.05)
    twin = RealtimeTwin(spec, seed=3, step_s=0.2, hours=0.1, imperfections=Imperfections.ideal())
    rt = Runtime(settings, store, spec, twin)
    cycles: list[float] = []
    rt.loop.observers.append(cycles.append)
    real_step = rt.dispatcher.step
    failures = iter([True, True])

    def step(now: float) -> list:
        if next(failures, False):
            raise RuntimeError("injected failure")
        return real_step(now)

    rt.dispatcher.step = step  # type: ignore[method-assign]

    async def scenario() -> None:
        loop = asyncio.create_task(rt.run())
        deadline = time.monotonic() + 20
        while len(cycles) < 3 and time.monotonic() < deadline and not loop.done():
            await asyncio.sleep(0.05)
        rt.stop()
        await asyncio.wait_for(loop, 15)

    with caplog.at_level(logging.ERROR, logger="gridflock.service"):
        asyncio.run(scenario())
    store.close()
    assert len(cycles) >= 3  # the cycles after the failures ran
    assert "control cycle failed" in caplog.text
    assert "injected failure" in caplog.text
    assert b"gridflock_control_cycle_failures_total 2.0" in rt.metrics()


def test_command_lifetime_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDFLOCK_COMMAND_TTL_S", "20")
    assert Settings(control_interval_s=2).command_ttl_s == 20
    monkeypatch.delenv("GRIDFLOCK_COMMAND_TTL_S")
    assert Settings().command_ttl_s <= 30
    with pytest.raises(ValueError, match="must exceed two control intervals"):
        Settings(control_interval_s=10, command_ttl_s=15)

    rt, clock = _rig(tmp_path, generate_fleet(40, 5), command_ttl_s=12.0)
    _cycles(rt, clock, 20)
    event = asyncio.run(rt.create_event(3.0, None, 600, Scope(), ADMIN, allow_partial=True))
    _cycles(rt, clock, 120)
    held = rt.dispatcher.held_by >= 0
    assert held.any()
    until = rt.dispatcher.valid_until[held]
    assert np.all(until > clock.t)  # renewed while held...
    assert np.all(until <= clock.t + 12.0)  # ...never beyond the lifetime
    assert rt.event(event.id).non_responders == 0
