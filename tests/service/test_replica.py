"""The bus in one process: a leader's read model and forwarded writes through a replica.

A private ``nats-server -js`` on a free port; the leader is a real ``Runtime`` over the
real-time twin (fake clock) and SQLite; the replica a ``ReplicaRuntime`` on the same
store, its app called through httpx. The multi-process scenario (PostgreSQL, bus restart)
is ``tests/faults/test_replicas.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridflock.api.app import create_app
from gridflock.api.runtime import EventView
from gridflock.config import Settings
from gridflock.domain.auth import Role
from gridflock.domain.envelopes import Envelope, EnvelopeKind, EnvelopeSource, TargetType
from gridflock.domain.events import Event, EventSource, EventStatus, Scope
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.service.bus import SCHEMA_VERSION, BusFormatError, decode, encode
from gridflock.service.leader_bus import LeaderBus
from gridflock.service.replica import ReplicaRuntime, install_replica
from gridflock.service.replication import (
    FLEX_BY,
    envelope_from_json,
    envelope_to_json,
    view_from_json,
    view_to_json,
)
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

from .conftest import free_port, port_open, wait_until

T0 = 1_780_000_000.0
STEP_S = 1.0
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


# ---------------------------------------------------------------- the document's parts
finite = st.floats(-1e6, 1e6, allow_nan=False)
maybe = st.none() | finite


@given(
    target=finite.filter(lambda x: abs(x) > 1e-6),
    start=st.floats(0, 2e9),
    length=st.floats(1, 1e6),
    scope=st.sampled_from(["fleet", "grid_node:F1", "program:summer", "region:north"]),
    source=st.sampled_from(list(EventSource)),
    status=st.sampled_from(list(EventStatus)),
    priority=st.integers(0, 100),
    figures=st.tuples(maybe, maybe, maybe, maybe, st.integers(0, 10**6), finite, st.integers(0)),
)
def test_event_views_survive_the_bus(
    target: float,
    start: float,
    length: float,
    scope: str,
    source: EventSource,
    status: EventStatus,
    priority: int,
    figures: tuple[Any, ...],
) -> None:
    event = Event(
        "ev-1",
        target,
        start,
        start + length,
        Scope.parse(scope),
        source,
        status,
        "apikey:ops",
        priority,
    )
    view = EventView(event, *figures)
    doc = decode(encode({"v": SCHEMA_VERSION, "events": [view_to_json(view)]}))
    assert view_from_json(doc["events"][0]) == view


@given(
    start=st.floats(0, 2e9),
    length=st.floats(1, 1e6),
    imp=st.none() | st.floats(0, 1e5),
    exp=st.none() | st.floats(0, 1e5),
)
def test_envelopes_survive_the_bus(
    start: float, length: float, imp: float | None, exp: float | None
) -> None:
    env = Envelope(
        "env-1",
        TargetType.SITE,
        "s-1",
        start,
        start + length,
        imp,
        exp,
        EnvelopeKind.DOE,
        EnvelopeSource.API,
        start - 5,
    )
    back = envelope_from_json(
        decode(encode({"v": SCHEMA_VERSION, "e": envelope_to_json(env)}))["e"]
    )
    assert back == env


def test_a_document_of_another_version_or_not_one_at_all_is_refused() -> None:
    with pytest.raises(BusFormatError, match="same Gridflock version"):
        decode(encode({"v": SCHEMA_VERSION + 1}))
    with pytest.raises(BusFormatError, match="not a read-model document"):
        decode(b"{}")


# ---------------------------------------------------------------- leader and replica
@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private NATS with JetStream; fails (never skips) when nats-server is missing."""
    assert Path(NATS_SERVER).exists(), f"nats-server is needed ({NATS_SERVER})"
    port = free_port()
    proc = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), 10, "nats-server to listen")
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


async def _until(cond: Any, timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_replica_serves_the_leaders_figures_and_forwards_writes(tmp_path: Path, bus: str) -> None:
    spec = generate_fleet(30, 2)
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    store = Store(url)
    store.upgrade()
    store.save_fleet(spec)
    key, _ = store.create_api_key(Role.OPERATOR, "desk")
    clock = Clock()
    settings = Settings(database_url=url, control_interval_s=STEP_S, bus_url=bus)
    twin = RealtimeTwin(
        spec, seed=3, step_s=STEP_S, hours=1.0, imperfections=Imperfections.ideal(), clock=clock
    )
    leader = Runtime(settings, store, spec, twin, clock=clock)
    leader_bus = LeaderBus(bus, leader, create_app(leader), "leader-1")
    replica = ReplicaRuntime(settings.model_copy(update={"role": "api"}), store, "api-1")
    app = create_app(replica)
    install_replica(app, replica, 1 << 20, 4 << 20)
    auth = {"X-API-Key": key}

    def cycle() -> None:
        clock.t += STEP_S
        leader.control_cycle()

    async def scenario() -> None:
        tasks = [asyncio.create_task(leader_bus.run()), asyncio.create_task(replica.run())]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            try:
                await _until(
                    lambda: (
                        leader_bus.nc is not None
                        and leader_bus.nc.is_connected
                        and replica.nc is not None
                    ),
                    10,
                    "both on the bus",
                )
                for _ in range(5):
                    cycle()
                await _until(
                    lambda: replica.health()["read_model_seq"] == leader_bus.seq,
                    10,
                    "the replica on the leader's last document",
                )
                # the same figures as the leader's for the same cycle
                mine = (await client.get("/api/v1/fleet", headers=auth)).json()
                theirs = create_app(leader)
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=theirs), base_url="http://leader"
                ) as lc:
                    lead = (await lc.get("/api/v1/fleet", headers=auth)).json()
                assert mine.pop("seq") == leader_bus.seq
                assert mine == lead
                assert lead["devices_online"] == spec.n_devices
                h = settings.flex_duration_h
                for by in FLEX_BY:
                    pd.testing.assert_frame_equal(
                        replica.flexibility(h, by), leader.flexibility(h, by), check_dtype=False
                    )
                # a write through the replica: done by the leader, as the caller
                r = await client.post(
                    "/api/v1/events",
                    json={
                        "target_kw": 10.0,
                        "duration_s": 900,
                        "scope": "fleet",
                        "allow_partial": True,
                    },
                    headers=auth,
                )
                assert r.status_code == 201, r.text
                ev = r.json()
                assert r.headers["x-gridflock-leader"] == "leader-1"
                assert leader.event(ev["id"]).event.created_by == "apikey:desk"
                cycle()
                await _until(
                    lambda: any(v.event.id == ev["id"] for v in replica.events()),
                    10,
                    "the event in the replica's read model",
                )
                # a viewer's write: refused by the leader with its own words
                viewer, _ = store.create_api_key(Role.VIEWER, "wall")
                r = await client.post(
                    f"/api/v1/events/{ev['id']}/cancel", headers={"X-API-Key": viewer}
                )
                assert r.status_code == 403
                assert "operator role" in r.json()["detail"]
                # a fleet file larger than the bus carries: a clear 413, nothing sent
                r = await client.post(
                    "/api/v1/fleet/import",
                    content=b"#" * (2 << 20),
                    headers={**auth, "content-type": "application/x-yaml"},
                )
                assert r.status_code == 413
                assert "max_payload" in r.json()["detail"]
                # ... and one over the import limit, before reading it all
                r = await client.post(
                    "/api/v1/fleet/import", content=b"#" * (5 << 20), headers=auth
                )
                assert r.status_code == 413
                assert "larger than" in r.json()["detail"]
                # the leader steps down: a write gets 503 at once; back: it goes through
                leader.leadership.elected = True  # a standby's state: elected, no epoch
                leader.leadership.epoch = None
                await _until(lambda: leader_bus._serving is None, 10, "the leader to step down")
                r = await client.post(f"/api/v1/events/{ev['id']}/cancel", headers=auth)
                assert r.status_code == 503
                assert r.headers["retry-after"] == "2"
                leader.leadership.elected = False
                await _until(lambda: leader_bus._serving is not None, 10, "the leader back")
                r = await client.post(f"/api/v1/events/{ev['id']}/cancel", headers=auth)
                assert r.status_code == 200
                assert r.json()["status"] == "cancelled"
            finally:
                leader_bus.stop()
                replica.stop()
                await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(scenario())
    finally:
        store.close()
