"""A small real runtime for the API tests: generated fleet, SQLite store, real dispatcher."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from gridflock.api import EventView, create_app
from gridflock.dispatch import Dispatcher
from gridflock.domain import Event, EventStatus, FleetSpec, Scope, TelemetryBatch
from gridflock.domain.auth import Principal, Role
from gridflock.fleet import aggregate, flexibility
from gridflock.fleet.generate import generate_fleet
from gridflock.fleet.state import FleetState
from gridflock.store import Store

T0 = 1_780_315_200.0  # 2026-06-01T12:00:00Z


class LocalRuntime:
    """Implements ``gridflock.api.Runtime`` from real parts, with a hand-driven clock."""

    def __init__(self, store: Store, spec: FleetSpec, now: float = T0) -> None:
        self._store = store
        self.clock = now
        self.health_status = "ok"
        self.update_items: list[dict[str, Any]] = []
        self.authentications = 0
        self._load(spec)
        self._n_events = 0

    def _load(self, spec: FleetSpec) -> None:
        self._spec = spec
        self._state = FleetState.from_spec(spec)
        st = self._state
        rng = np.random.default_rng(7)
        st.p_kw[:] = rng.uniform(-3.0, 3.0, st.n)
        st.ts[:] = self.clock
        st.online[:] = True
        st.online[::10] = False  # every 10th device is offline
        self.dispatcher = Dispatcher(st)

    # -- protocol ------------------------------------------------------------------
    @property
    def state(self) -> FleetState:
        return self._state

    @property
    def spec(self) -> FleetSpec:
        return self._spec

    @property
    def store(self) -> Store:
        return self._store

    def now(self) -> float:
        return self.clock

    def authenticate(self, api_key: str) -> Principal | None:
        self.authentications += 1
        return self._store.authenticate(api_key)

    async def import_fleet(self, spec: FleetSpec, principal: Principal) -> None:
        self._store.save_fleet(spec)
        self._load(spec)
        self._store.audit(principal.label, "fleet.import", "fleet", {"devices": spec.n_devices})

    async def provision_gateway(
        self,
        gateway_id: str,
        *,
        kind: str,
        site_id: str | None,
        groups: list[str],
        principal: Principal,
    ) -> str:
        password = secrets.token_urlsafe(16)
        self._store.create_gateway(
            gateway_id,
            kind=kind,
            site_id=site_id,
            groups=groups,
            password_hash="$7$101$test$" + password[:4],
        )
        self._store.audit(principal.label, "gateway.create", gateway_id)
        return password

    def metrics(self) -> bytes:
        registry = CollectorRegistry()
        g = Gauge("gridflock_devices_online", "Devices online", registry=registry)
        g.set(int(self._state.online.sum()))
        return generate_latest(registry)

    def health(self) -> dict[str, Any]:
        return {"status": self.health_status, "database": "ok" if self._store.ping() else "down"}

    def fleet_summary(self) -> dict[str, Any]:
        st = self._state
        flex = flexibility(st, 1.0, self.clock)
        by_kind = aggregate(
            st, "kind", {"p_kw": st.p_kw, "flex_up_kw": flex.up_kw, "flex_down_kw": flex.down_kw}
        )
        return {
            "ts": self.clock,
            "p_kw": float(st.p_kw.sum()),
            "flex_up_kw": float(flex.up_kw.sum()),
            "flex_down_kw": float(flex.down_kw.sum()),
            "flex_duration_h": 1.0,
            "devices_online": int(st.online.sum()),
            "devices_total": st.n,
            "by_kind": by_kind.to_dict(orient="records"),
        }

    def flexibility(self, duration_h: float, by: str) -> pd.DataFrame:
        flex = flexibility(self._state, duration_h, self.clock)
        return aggregate(self._state, by, {"up_kw": flex.up_kw, "down_kw": flex.down_kw})

    def fleet_history(self, start: float, end: float) -> pd.DataFrame:
        ts = np.arange(np.ceil(start / 900) * 900, end, 900.0)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(ts, unit="s", utc=True),
                "p_kw": np.linspace(-50.0, 50.0, len(ts)),
                "battery": np.zeros(len(ts)),
            }
        )

    async def create_event(
        self,
        target_kw: float,
        start: float | None,
        duration_s: float,
        scope: Scope,
        principal: Principal,
    ) -> Event:
        self._n_events += 1
        begin = self.clock if start is None else start
        event = Event(
            id=f"ev-{self._n_events:04d}",
            target_kw=target_kw,
            start=begin,
            end=begin + duration_s,
            scope=scope,
            created_by=principal.label,
        )
        self.dispatcher.add(event)  # ValueError naming an unknown node or tag
        self._store.save_event(event)
        self._store.audit(principal.label, "event.create", event.id, {"target_kw": target_kw})
        return event

    async def cancel_event(self, event_id: str, principal: Principal) -> Event:
        tracker = self.dispatcher.trackers[event_id]
        if tracker.event.status.final:
            raise ValueError(
                f"event {event_id} is already {tracker.event.status.value}: only scheduled "
                "or active events can be cancelled"
            )
        batch = self.dispatcher.cancel(event_id, self.clock)
        if batch is not None:
            self._store.save_commands(batch)
        self._store.set_event_status(event_id, EventStatus.CANCELLED)
        self._store.audit(principal.label, "event.cancel", event_id)
        return tracker.event

    def events(self) -> list[EventView]:
        return [self.event(i) for i in reversed(self.dispatcher.trackers)]

    def event(self, event_id: str) -> EventView:
        t = self.dispatcher.trackers[event_id]
        perf = t.performance()
        return EventView(
            event=t.event,
            delivered_kw=t.delivered_kw() if t.touched.any() else None,
            delivered_pct=perf.delivered_pct if perf.samples else None,
            tracking_rmse_pct=perf.tracking_rmse_pct if perf.samples else None,
            time_to_90pct_s=perf.time_to_90pct_s,
            non_responders=t.non_responders,
            shortfall_kw=t.shortfall_kw,
            commands_sent=t.commands_sent,
        )

    def event_series(self, event_id: str) -> pd.DataFrame:
        t = self.dispatcher.trackers[event_id]
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(np.array(t.samples_ts, dtype=float), unit="s", utc=True),
                "target_kw": np.full(len(t.samples_ts), t.event.target_kw),
                "delivered_kw": np.array(t.samples_delivered, dtype=float),
            }
        )

    async def updates(self) -> AsyncIterator[dict[str, Any]]:
        for item in self.update_items:
            yield item

    # -- test helpers --------------------------------------------------------------
    def step(self, seconds: float) -> None:
        """Advance the clock; devices follow their setpoints exactly."""
        self.clock += seconds
        for batch in self.dispatcher.step(self.clock):
            self._store.save_commands(batch)
            idx = self._state.indices(batch.device_ids)
            ok = np.isfinite(batch.p_setpoint_kw)
            self._state.p_kw[idx[ok]] = batch.p_setpoint_kw[ok]
        self._state.ts[self._state.online] = self.clock


@dataclass(frozen=True)
class Keys:
    viewer: str
    operator: str
    admin: str

    def h(self, role: str) -> dict[str, str]:
        """Headers authenticating as ``role`` (viewer, operator, admin)."""
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@dataclass(frozen=True)
class Template:
    db: Path
    spec: FleetSpec
    keys: Keys


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A migrated database with the fleet, some telemetry and three keys, made once."""
    db = tmp_path_factory.mktemp("api") / "template.db"
    store = Store(f"sqlite:///{db}")
    store.upgrade()
    spec = generate_fleet(50, 1)
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
    keys = Keys(
        viewer=store.create_api_key(Role.VIEWER, "dash")[0],
        operator=store.create_api_key(Role.OPERATOR, "ops-desk")[0],
        admin=store.create_api_key(Role.ADMIN, "root")[0],
    )
    store.close()
    return Template(db, spec, keys)


@pytest.fixture
def runtime(template: Template, tmp_path: Path) -> Iterator[LocalRuntime]:
    db = tmp_path / "api.db"
    shutil.copyfile(template.db, db)
    store = Store(f"sqlite:///{db}")
    yield LocalRuntime(store, template.spec)
    store.close()


@pytest.fixture
def keys(template: Template) -> Keys:
    return template.keys


@pytest.fixture
def app(runtime: LocalRuntime) -> FastAPI:
    return create_app(runtime, stream_heartbeat_s=0.05)


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
