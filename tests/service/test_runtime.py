"""The Runtime over real parts (SQLite store, the twin as device link) on a fake clock.

Each control cycle the test advances the clock by the control interval (2 s), so a minute
of service time takes a few hundred milliseconds and every figure is reproducible.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gridflock.config import Settings
from gridflock.domain.auth import Principal, Role
from gridflock.domain.errors import ConflictError
from gridflock.domain.events import EventStatus, Scope
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_784_116_800.0  # 2026-07-15T12:00:00Z: midday, PV and batteries have room both ways
STEP_S = 2.0
OPERATOR = Principal("key-ops", "ops-desk", Role.OPERATOR)


class FakeClock:
    """A clock the test moves by hand [UTC epoch s]."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Rig:
    runtime: Runtime
    clock: FakeClock
    store: Store
    spec: FleetSpec
    url: str

    def cycles(self, seconds: float) -> None:
        """Run the control loop for ``seconds`` of service time."""
        for _ in range(round(seconds / STEP_S)):
            self.clock.t += STEP_S
            self.runtime.control_cycle()


def _runtime(url: str, store: Store, spec: FleetSpec, clock: FakeClock) -> Runtime:
    settings = Settings(database_url=url, control_interval_s=STEP_S)
    twin = RealtimeTwin(
        spec, seed=3, step_s=STEP_S, hours=1.0, imperfections=Imperfections.ideal(), clock=clock
    )
    return Runtime(settings, store, spec, twin, clock=clock)


@pytest.fixture(scope="module")
def fleet() -> FleetSpec:
    return generate_fleet(100, 1)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory, fleet: FleetSpec) -> Path:
    """A migrated database holding the fleet, made once and copied for each test."""
    db = tmp_path_factory.mktemp("runtime") / "template.db"
    with Store(f"sqlite:///{db}") as store:
        store.upgrade()
        store.save_fleet(fleet)
    return db


@pytest.fixture
def rig(tmp_path: Path, fleet: FleetSpec, template_db: Path) -> Iterator[Rig]:
    db = tmp_path / "service.db"
    shutil.copyfile(template_db, db)
    url = f"sqlite:///{db}"
    store = Store(url)
    clock = FakeClock(T0)
    yield Rig(_runtime(url, store, fleet, clock), clock, store, fleet, url)
    store.close()


def _create(rt: Runtime, kw: float, duration_s: float = 900.0, **kw_args: object) -> object:
    start = kw_args.pop("start", None)
    scope = kw_args.pop("scope", Scope())
    return asyncio.run(rt.create_event(kw, start, duration_s, scope, OPERATOR))  # type: ignore[arg-type]


def test_devices_come_online_as_they_report(rig: Rig) -> None:
    rt = rig.runtime
    assert rt.health()["devices_online"] == 0
    rig.cycles(10)
    h = rt.health()
    assert h["devices_online"] == h["devices_total"] == rig.spec.n_devices
    assert h["status"] == "ok"
    assert h["database"] == "up"
    assert h["mqtt"] == "disabled"
    summary = rt.fleet_summary()
    assert summary["flex_up_kw"] > 50
    assert summary["flex_down_kw"] > 50


def test_event_is_delivered_then_cancelled_and_recorded(rig: Rig) -> None:
    rt = rig.runtime
    rig.cycles(10)
    target = 20.0
    event = _create(rt, target)
    ev_id = event.id  # type: ignore[attr-defined]
    rig.cycles(STEP_S)
    assert rt.event(ev_id).event.status is EventStatus.ACTIVE
    rig.cycles(60)  # a minute to settle
    settled_from = len(rt.dispatcher.trackers[ev_id].samples_ts)
    rig.cycles(60)
    delivered = np.array(rt.dispatcher.trackers[ev_id].samples_delivered[settled_from:])
    assert len(delivered) == 30
    assert abs(delivered.mean() - target) <= 0.10 * target, delivered
    view = rt.event(ev_id)
    assert view.delivered_kw is not None
    assert view.commands_sent > 0

    cancelled = asyncio.run(rt.cancel_event(ev_id, OPERATOR))
    assert cancelled.status is EventStatus.CANCELLED
    rig.cycles(4)
    assert rt.event(ev_id).event.status is EventStatus.CANCELLED
    with pytest.raises(ConflictError, match="already cancelled"):
        asyncio.run(rt.cancel_event(ev_id, OPERATOR))

    assert rt.writer.flush() is True
    s = rig.store
    stored = s.get_event(ev_id)
    assert stored.status is EventStatus.CANCELLED
    assert stored.target_kw == target
    assert stored.created_by == OPERATOR.label
    samples = s.event_samples(ev_id)
    assert len(samples) >= 60  # one per cycle while active
    assert np.allclose(samples["target_kw"], target)
    commands = s.commands_for_event(ev_id)
    assert len(commands) >= view.commands_sent
    assert commands["p_setpoint_kw"].isna().any()  # the release sent on cancel
    actions = {(r.action, r.subject, r.actor) for r in s.audit_log(action="event.*")}
    assert ("event.create", ev_id, OPERATOR.label) in actions
    assert ("event.cancel", ev_id, OPERATOR.label) in actions
    assert s.event_performance(ev_id) is not None
    assert not s.active_events(rig.clock())


@pytest.mark.parametrize(
    ("kw", "start", "duration_s", "scope", "message"),
    [
        (0.0, None, 900.0, Scope(), "target_kw must be a non-zero number"),
        (float("nan"), None, 900.0, Scope(), "target_kw must be a non-zero number"),
        (1e9, None, 900.0, Scope(), "target_kw must be within"),
        (10.0, None, -60.0, Scope(), "duration_s must be more than 0"),
        (10.0, None, 0.0, Scope(), "duration_s must be more than 0"),
        (10.0, None, 8 * 86400.0, Scope(), "at most 7 days"),
        (10.0, T0 - 3600.0, 600.0, Scope(), "already be over"),
        (10.0, None, 900.0, Scope("grid_node", "no-such-feeder"), "no-such-feeder"),
        (10.0, None, 900.0, Scope("program", "no-such-tag"), "no-such-tag"),
    ],
    ids=[
        "zero-kw",
        "nan-kw",
        "huge-kw",
        "negative-duration",
        "zero-duration",
        "too-long",
        "window-over",
        "unknown-node",
        "unknown-tag",
    ],
)
def test_bad_event_inputs_are_refused_with_a_reason(
    rig: Rig, kw: float, start: float | None, duration_s: float, scope: Scope, message: str
) -> None:
    rt = rig.runtime
    rig.cycles(4)
    with pytest.raises(ValueError, match=message):
        _create(rt, kw, duration_s, start=start, scope=scope)
    assert rt.dispatcher.trackers == {}  # nothing half-created
    assert rt.writer.flush() is True
    assert rig.store.list_events() == []
    assert rig.store.audit_log(action="event.*") == []


def test_an_unparseable_scope_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="use 'fleet', 'grid_node:ID'"):
        Scope.parse("feeder=1")


def test_a_restarted_runtime_resumes_the_active_event(rig: Rig) -> None:
    """Kill -9 at the library level: drop the runtime (no stop, no final flush of the loop)."""
    rt = rig.runtime
    rig.cycles(10)
    target = -15.0
    ev_id = _create(rt, target, 1800.0).id  # type: ignore[attr-defined]
    rig.cycles(30)
    rt.writer.flush()  # what the write loop had written before the crash
    samples_before = len(rig.store.event_samples(ev_id))
    assert samples_before > 0
    del rt

    rig.clock.t += 20.0  # the restart takes a while
    second = _runtime(rig.url, rig.store, rig.store.load_fleet(), rig.clock)
    assert second.resume() == [ev_id]
    assert second.resume() == []  # idempotent
    view = second.event(ev_id)
    assert view.event.status is EventStatus.ACTIVE
    assert view.event.target_kw == target
    rig.runtime = second
    rig.cycles(90)
    tracker = second.dispatcher.trackers[ev_id]
    delivered = np.array(tracker.samples_delivered[-15:])
    assert abs(delivered.mean() - target) <= 0.10 * abs(target), delivered
    assert second.event(ev_id).commands_sent > 0
    assert second.writer.flush() is True
    assert len(rig.store.event_samples(ev_id)) >= samples_before + 40  # samples continue
    assert rig.store.get_event(ev_id).status is EventStatus.ACTIVE


class SlowStore:
    """A real store whose telemetry writes take ``delay_s`` once ``slow`` is set."""

    def __init__(self, store: Store, delay_s: float) -> None:
        self._store = store
        self.delay_s = delay_s
        self.slow = False
        self.writing = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def write_telemetry(self, batch: object) -> int:
        if self.slow:
            self.writing.set()
            time.sleep(self.delay_s)
        return self._store.write_telemetry(batch)  # type: ignore[arg-type]


def test_run_returns_only_after_everything_queued_is_written(
    tmp_path: Path, fleet: FleetSpec, template_db: Path
) -> None:
    """A stop while a write is in flight: what the last cycles queued must still be written.

    (``gridflock serve`` on SIGTERM relies on ``run()``'s final flush.)
    """
    db = tmp_path / "slow.db"
    shutil.copyfile(template_db, db)
    url = f"sqlite:///{db}"
    real = Store(url)
    slow = SlowStore(real, delay_s=1.0)
    settings = Settings(database_url=url, control_interval_s=0.2, telemetry_flush_s=0.05)
    twin = RealtimeTwin(fleet, seed=3, step_s=0.2, hours=0.1, imperfections=Imperfections.ideal())

    async def scenario() -> Runtime:
        rt = Runtime(settings, slow, fleet, twin)  # type: ignore[arg-type]
        loop = asyncio.create_task(rt.run())
        deadline = time.monotonic() + 10
        while rt.writer.stats.rows_written == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert rt.writer.stats.rows_written > 0
        slow.slow = True  # the database gets slow
        assert await asyncio.to_thread(slow.writing.wait, 5)
        event = await rt.create_event(5.0, None, 600, Scope(), OPERATOR)
        await asyncio.sleep(0.5)  # two more control cycles queue readings meanwhile
        assert rt.writer.buffered_rows > 0
        rt.stop()
        await asyncio.wait_for(loop, 15)
        left = (rt.writer.buffered_rows, rt.writer.pending_ops)
        assert left == (0, 0), f"run() returned with {left} (readings, writes) not written"
        return rt, event.id

    try:
        rt, ev_id = asyncio.run(scenario())
        assert rt.writer.pending_ops == 0
        assert [e.id for e in real.list_events()] == [ev_id]
    finally:
        time.sleep(1.2)  # let the in-flight write finish before the database goes
        real.close()


def test_history_by_grid_node_program_and_region(rig: Rig) -> None:
    rt = rig.runtime
    rig.cycles(180)  # three minutes: three samples a minute apart
    now = rig.clock()
    nodes = rt.group_history(now - 3600, now + 1, "grid_node")
    assert nodes["ts"].nunique() == 3
    assert set(nodes["group"]) == set(rt.spec.grid_nodes["id"])
    last = nodes[nodes["ts"] == nodes["ts"].max()].set_index("group")["p_kw"]
    st = rt.state
    p = np.where(st.online, st.p_kw, 0.0)
    roots = rt.spec.grid_nodes["id"][rt.spec.grid_nodes["parent"] == ""]
    # the roots carry the whole fleet (to the last sample's readings)
    assert last[roots].sum() == pytest.approx(p.sum(), rel=0.2, abs=5.0)
    programs = rt.group_history(now - 3600, now + 1, "program")
    assert set(programs["group"]) == set(rt.spec.sites["program"])
    with pytest.raises(ValueError, match="by must be one of"):
        rt.group_history(0, now, "colour")
