"""The API over the real service runtime, on SQLite and on PostgreSQL.

Each test gets a :class:`gridflock.service.Runtime` over a fresh store (a SQLite file,
or a fresh schema in the PostgreSQL at ``GRIDFLOCK_TEST_POSTGRES_URL``) holding a small
generated fleet, an hour of readings for two devices and three API keys. The devices
are the twin in process (:class:`gridflock.sim.realtime.RealtimeTwin`), on a fake clock
the tests move: :meth:`ServiceUnderTest.step` runs the control loop for some seconds of
service time, then writes what the runtime queued for the database. Every 10th
reading is lost, so after the first cycle some devices are still offline.

PostgreSQL unreachable fails the PostgreSQL tests, naming the URL and how to start it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gridflock.api import create_app
from gridflock.config import Settings
from gridflock.domain import FleetSpec, TelemetryBatch
from gridflock.domain.auth import Principal, Role
from gridflock.fleet.generate import generate_fleet
from gridflock.service import Runtime
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.realtime import RealtimeTwin
from gridflock.store import Store

T0 = 1_780_315_200.0  # 2026-06-01T12:00:00Z
STEP_S = 2.0  # control interval, and the twin's step

# perfect devices, but a tenth of the readings are lost: after the first cycle some
# devices have not reported yet, so the fleet has devices offline
LOSSY = Imperfections(0.0, 0.0, 0.1, 0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- runtime
class FakeClock:
    """A clock the tests move by hand [UTC epoch s]."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class ServiceUnderTest(Runtime):
    """The real runtime, with the helpers the tests drive it by (no behaviour changed)."""

    fake_clock: FakeClock
    authentications: int = 0

    def authenticate(self, api_key: str) -> Principal | None:
        self.authentications += 1
        return super().authenticate(api_key)

    def step(self, seconds: float, every_s: float = STEP_S) -> None:
        """Run the control loop for ``seconds`` of service time, then write to the store."""
        for _ in range(round(seconds / every_s)):
            self.fake_clock.t += every_s
            self.control_cycle()
            # the autopilot solves in a worker thread: take its plan up within the step
            assert self.autopilot.finish(self.fake_clock.t, timeout_s=60), "no plan in 60 s"
        assert self.writer.flush(), "the store writer could not write"

    def serve_updates(self, items: list[dict[str, Any]]) -> None:
        """Make ``updates()`` yield exactly ``items`` and end (the stream's framing tests)."""

        async def updates() -> AsyncIterator[dict[str, Any]]:
            for item in items:
                yield item

        self.updates = updates  # type: ignore[method-assign]

    def take_updates(self, n: int) -> None:
        """Make ``updates()`` the real updates of the next ``n`` control cycles, then end."""
        real = self.updates

        async def updates() -> AsyncIterator[dict[str, Any]]:
            source = real()
            try:
                for _ in range(n):
                    pending = asyncio.ensure_future(anext(source))
                    await asyncio.sleep(0)  # subscribed before the cycle publishes
                    self.fake_clock.t += STEP_S
                    self.control_cycle()
                    yield await pending
            finally:
                await source.aclose()

        self.updates = updates  # type: ignore[method-assign]


def settings_for(url: str) -> Settings:
    """Every setting given explicitly: no GRIDFLOCK_* variable or gridflock.toml counts."""
    return Settings(
        database_url=url,
        mqtt_url=None,
        mqtt_username="gridflock-service",
        mqtt_password=None,
        host="127.0.0.1",
        port=0,
        control_interval_s=STEP_S,
        stale_after_s=60.0,
        flex_duration_h=1.0,
        telemetry_buffer_rows=100_000,
        telemetry_flush_s=1.0,
        log_level="info",
        log_format="console",
    )


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Keys:
    viewer: str
    operator: str
    admin: str

    def h(self, role: str) -> dict[str, str]:
        """Headers authenticating as ``role`` (viewer, operator, admin)."""
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture(scope="session")
def fleet() -> FleetSpec:
    return generate_fleet(50, 1)


def _fill(store: Store, spec: FleetSpec) -> Keys:
    """Migrate; the fleet, 30 minutes of readings of two devices, three API keys."""
    store.upgrade()
    store.save_fleet(spec)
    dev = spec.all_devices()["id"].astype(str).to_numpy(dtype=object)[:2]
    ts = T0 - 3600 + 60.0 * np.arange(30)
    store.write_telemetry(
        TelemetryBatch(
            device_ids=np.repeat(dev, len(ts)),
            ts=np.tile(ts, len(dev)),
            p_kw=np.tile(np.linspace(1.0, 3.0, len(ts)), len(dev)),
            soc=np.full(len(ts) * len(dev), 0.5),
            p_baseline_kw=np.full(len(ts) * len(dev), np.nan),
        )
    )
    return Keys(
        viewer=store.create_api_key(Role.VIEWER, "dash")[0],
        operator=store.create_api_key(Role.OPERATOR, "ops-desk")[0],
        admin=store.create_api_key(Role.ADMIN, "root")[0],
    )


# ----------------------------------------------------------------------------- backends
@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Store]]:
    """An empty store on ``backend`` and its URL (SQLite file or fresh PostgreSQL schema)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'api.db'}"
        store = Store(url)
        yield url, store
        store.close()
        return
    url = request.getfixturevalue("postgres_url")
    store = Store(url, schema=request.getfixturevalue("fresh_schema")("gf_api"))
    try:
        yield url, store
    finally:
        store.close()


@pytest.fixture
def service_start() -> float:
    """When the service starts (tests parametrise it to start earlier)."""
    return T0


@pytest.fixture
def twin_step_s() -> float:
    """The twin's step (tests that run hours of service time make it longer)."""
    return STEP_S


@dataclass
class Service:
    runtime: ServiceUnderTest
    keys: Keys


@pytest.fixture
def service(
    db: tuple[str, Store],
    fleet: FleetSpec,
    service_start: float,
    twin_step_s: float,
    monkeypatch: pytest.MonkeyPatch,
) -> Service:
    """The runtime after its first control cycle at ``service_start``."""
    for name in list(os.environ):
        if name.startswith("GRIDFLOCK_") and not name.startswith("GRIDFLOCK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRIDFLOCK_CONFIG", os.devnull + ".absent.toml")
    url, store = db
    keys = _fill(store, fleet)
    clock = FakeClock(service_start - STEP_S)
    twin = RealtimeTwin(
        fleet,
        seed=7,
        step_s=twin_step_s,
        hours=12.0,
        imperfections=LOSSY,
        clock=clock,
    )
    runtime = ServiceUnderTest(settings_for(url), store, fleet, twin, clock=clock)
    runtime.fake_clock = clock
    runtime.step(STEP_S)  # the first cycle: readings stamped service_start
    return Service(runtime, keys)


@pytest.fixture
def runtime(service: Service) -> ServiceUnderTest:
    return service.runtime


@pytest.fixture
def keys(service: Service) -> Keys:
    return service.keys


@pytest.fixture
def app(runtime: ServiceUnderTest) -> FastAPI:
    return create_app(runtime, stream_heartbeat_s=0.05)


# ----------------------------------------------------------------------------- client
class Client:
    """A blocking facade over ``httpx.AsyncClient(transport=ASGITransport(app))``.

    (Starlette's own TestClient warns about httpx, and warnings are errors here.)
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def __enter__(self) -> Client:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._app), base_url="http://testserver"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._portal.call(self._client.aclose)
        self._portal_cm.__exit__(None, None, None)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            return await self._client.request(method, url, **kwargs)

        return self._portal.call(go)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@pytest.fixture
def client_for() -> type[Client]:
    """The client class, for tests that build their own app."""
    return Client


@pytest.fixture
def client(app: FastAPI) -> Iterator[Client]:
    with Client(app) as c:
        yield c
