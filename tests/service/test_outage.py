"""A database outage: the API keeps serving what lives in memory, health names what is not.

The service runs against PostgreSQL through a TCP proxy the test cuts and restores. While
the database is away the fleet, flexibility, events, event creation and cancellation
answer from memory; what only the database holds answers 503 with a retry hint; health
lists the degraded parts; and every write queued meanwhile lands once it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gridflock.api.app import create_app
from gridflock.config import Settings
from gridflock.domain.auth import Role
from gridflock.domain.events import EventStatus
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store


async def until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``cond`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        await asyncio.sleep(0.05)
    return value


def run(coro: Awaitable[None], timeout: float) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await coro

    asyncio.run(bounded())


def test_the_api_serves_from_memory_while_the_database_is_away(
    pg_proxy: Any, pg_schema: str, kit: SimpleNamespace
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_proxy.port}/test?connect_timeout=2"
    spec = generate_fleet(20, 1)

    async def scenario() -> None:
        store = Store(url, schema=pg_schema)
        await asyncio.to_thread(store.upgrade)
        await asyncio.to_thread(store.save_fleet, spec)
        operator, _ = store.create_api_key(Role.OPERATOR, "ops-desk")
        never_used, _ = store.create_api_key(Role.VIEWER, "wall-screen")
        settings = Settings(
            database_url=url, mqtt_url=None, control_interval_s=0.5, telemetry_flush_s=0.2
        )
        twin = RealtimeTwin(
            spec, seed=2, step_s=1.0, hours=1.0, imperfections=Imperfections.ideal()
        )
        rt = Runtime(settings, store, spec, twin)
        loop = asyncio.create_task(rt.run())
        ops = {"Authorization": f"Bearer {operator}"}
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(rt, auth_cache_ttl_s=0)),
            base_url="http://gridflock",
        )
        try:
            await until(lambda: rt.writer.stats.rows_written > 0, 10, "first writes")
            assert (await api.get("/api/v1/fleet", headers=ops)).status_code == 200
            health = (await api.get("/api/v1/health")).json()
            assert (health["status"], health["degraded"]) == ("ok", [])

            pg_proxy.cut()
            await until(lambda: rt.health()["database"] == "down", 10, "the outage to show")

            # what lives in memory answers, for a key the database confirmed before
            for path in (
                "/api/v1/fleet",
                "/api/v1/flexibility?duration_h=1&by=kind",
                "/api/v1/events",
            ):
                r = await api.get(path, headers=ops)
                assert r.status_code == 200, (path, r.text)
            created = await api.post(
                "/api/v1/events", json={"target_kw": 5.0, "duration_s": 600}, headers=ops
            )
            assert created.status_code == 201, created.text
            event_id = created.json()["id"]
            tracker = rt.dispatcher.trackers[event_id]
            await until(lambda: tracker.commands_sent > 0, 5, "the event to be dispatched")
            cancelled = await api.post(f"/api/v1/events/{event_id}/cancel", headers=ops)
            assert cancelled.status_code == 200, cancelled.text
            assert (await api.get(f"/api/v1/events/{event_id}", headers=ops)).status_code == 200

            # what only the database holds says so, with a retry hint (never a 500)
            audit = await api.get("/api/v1/audit", headers=ops)
            assert audit.status_code == 503, audit.text
            assert audit.headers["retry-after"] == "5"
            assert "database is unavailable" in audit.json()["detail"]
            stranger = await api.get("/api/v1/fleet", headers={"X-API-Key": never_used})
            assert stranger.status_code == 503, stranger.text
            assert "cannot be checked" in stranger.json()["detail"]

            health = (await api.get("/api/v1/health")).json()
            assert health["status"] == "degraded"
            assert set(health["degraded"]) == {"writes", "stored_data", "api_keys"}
            assert health["parts"]["events"] == "ok"
            assert health["parts"]["writes"] == "buffering"
            assert rt.writer.pending_ops > 0

            pg_proxy.restore()
            await until(
                lambda: rt.writer.pending_ops == 0 and rt.health()["status"] == "ok",
                15,
                "the queued writes to land",
            )
            assert rt.writer.stats.rows_dropped == 0
            with Store(kit.PG_URL, schema=pg_schema) as direct:
                assert direct.get_event(event_id).status is EventStatus.CANCELLED
                actions = {r.action for r in direct.audit_log(subject=event_id)}
                assert actions == {"event.create", "event.cancel"}
                assert len(direct.commands_for_event(event_id)) > 0
            r = await api.get("/api/v1/fleet", headers={"X-API-Key": never_used})
            assert r.status_code == 200, r.text
        finally:
            rt.stop()
            await asyncio.wait_for(loop, 10)
            await api.aclose()
            store.close()

    run(scenario(), 90)
