"""The running VPP as the API sees it: a thin facade over the service's parts.

- :class:`~gridflock.service.control.ControlLoop`: fleet state, dispatcher and device
  link, driven once per control interval; queues every record for the store.
- :class:`~gridflock.service.events.EventService`: events validated, scheduled, cancelled
  and described.
- :class:`~gridflock.service.readmodel.ReadModel`: fleet summary, histories and live
  updates, refreshed after every cycle.
- :class:`~gridflock.service.writer.StoreWriter`: database writes off the event loop.

:class:`Runtime` wires them and implements :class:`gridflock.api.runtime.Runtime`; what
is left here (health, metrics, keys, fleet import, gateways) is the glue between them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pandas as pd

from gridflock import __version__
from gridflock.api.runtime import EventView
from gridflock.config import Settings
from gridflock.dispatch import Dispatcher
from gridflock.domain.auth import Principal
from gridflock.domain.events import Event, Scope
from gridflock.domain.ports import DeviceLink
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.service.control import ControlLoop
from gridflock.service.events import EventService
from gridflock.service.metrics import ServiceMetrics
from gridflock.service.readmodel import ReadModel
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

__all__ = ["Runtime"]

log = logging.getLogger("gridflock.service")


class Runtime:
    """Implements :class:`gridflock.api.runtime.Runtime` over the real parts."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        spec: FleetSpec,
        link: DeviceLink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = store
        self.link = link
        self.clock = clock
        self.metrics_ = ServiceMetrics()
        self.writer = StoreWriter(store, settings.telemetry_buffer_rows)
        self.loop = ControlLoop(settings, store, spec, link, clock, self.metrics_, self.writer)
        self.event_service = EventService(self.loop)
        self.read_model = ReadModel(self.loop, self.event_service)
        self.loop.observers.append(self.read_model.record)
        self.mqtt_enabled = settings.mqtt_url is not None

    # ------------------------------------------------------------------ the parts' state
    @property
    def state(self) -> FleetState:
        """The fleet state."""
        return self.loop.state

    @property
    def spec(self) -> FleetSpec:
        """The fleet as provisioned."""
        return self.loop.spec

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher of the current fleet."""
        return self.loop.dispatcher

    @property
    def store(self) -> Store:
        """The database."""
        return self._store

    def now(self) -> float:
        """The service clock [UTC epoch s]."""
        return self.clock()

    # ------------------------------------------------------------------ the service
    def authenticate(self, api_key: str) -> Principal | None:
        """The caller behind ``api_key``, or None."""
        try:
            return self._store.authenticate(api_key)
        except Exception as e:  # a database outage must not read as "wrong key"
            log.warning("cannot check an API key: %s", e)
            raise

    def health(self) -> dict[str, Any]:
        """Dependencies' state; degraded while the database or the broker is away."""
        db_up = self.writer.stats.database_up
        mqtt = (
            "disabled"
            if not self.mqtt_enabled
            else "connected"
            if self.link.connected
            else "disconnected"
        )
        ok = db_up and mqtt != "disconnected"
        st = self.loop.state
        return {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "database": "up" if db_up else "down",
            "mqtt": mqtt,
            "devices_online": int(st.online.sum()),
            "devices_total": st.n,
            "buffered_readings": self.writer.buffered_rows,
            "dropped_readings": self.writer.stats.rows_dropped,
            "quarantined_writes": self.writer.stats.quarantined_ops,
            "quarantined_readings": self.writer.stats.quarantined_rows,
        }

    def metrics(self) -> bytes:
        """Prometheus exposition."""
        m = self.metrics_
        m.buffered_rows.set(self.writer.buffered_rows)
        m.dropped_rows.set(self.writer.stats.rows_dropped)
        m.quarantined.labels("ops").set(self.writer.stats.quarantined_ops)
        m.quarantined.labels("readings").set(self.writer.stats.quarantined_rows)
        m.database_up.set(1 if self.writer.stats.database_up else 0)
        m.mqtt_connected.set(1 if self.mqtt_enabled and self.link.connected else 0)
        return m.exposition()

    async def import_fleet(self, spec: FleetSpec, principal: Principal) -> None:
        """Replace the fleet; refused while events are in progress."""
        loop = self.loop
        busy = [t.event.id for t in loop.dispatcher.trackers.values() if not t.event.status.final]
        if busy:
            raise ValueError(
                f"events {', '.join(busy)} are in progress: cancel them or wait "
                "for them to end before replacing the fleet"
            )
        await asyncio.to_thread(self._store.save_fleet, spec)
        old_trackers = loop.dispatcher.trackers
        loop.set_fleet(spec, keep=loop.state)
        loop.dispatcher.trackers.update(old_trackers)  # keep finished events listed
        self.read_model.fleet_changed()  # describe the new fleet from the next read on
        loop.audit(
            principal.label,
            "fleet.import",
            "fleet",
            {"sites": len(spec.sites), "devices": spec.n_devices},
        )

    async def provision_gateway(
        self,
        gateway_id: str,
        *,
        kind: str,
        site_id: str | None,
        groups: list[str],
        principal: Principal,
    ) -> str:
        """Register a gateway and return its MQTT password, once."""
        from gridflock.gateways.mqtt.acl import hash_password

        secret = secrets.token_urlsafe(24)
        await asyncio.to_thread(
            self._store.create_gateway,
            gateway_id,
            kind=kind,
            site_id=site_id,
            groups=groups,
            password_hash=hash_password(secret),
        )
        self.loop.audit(
            principal.label,
            "gateway.create",
            gateway_id,
            {"kind": kind, "site_id": site_id, "groups": groups},
        )
        return secret

    # ------------------------------------------------------------------ events
    async def create_event(
        self,
        target_kw: float,
        start: float | None,
        duration_s: float,
        scope: Scope,
        principal: Principal,
    ) -> Event:
        """Validate and schedule an event; it is tracked from its start."""
        return self.event_service.create(target_kw, start, duration_s, scope, principal)

    async def cancel_event(self, event_id: str, principal: Principal) -> Event:
        """Cancel and release the event's devices."""
        return self.event_service.cancel(event_id, principal)

    def events(self) -> list[EventView]:
        """Every event this service tracks, newest first."""
        return self.event_service.views()

    def event(self, event_id: str) -> EventView:
        """One event with its figures."""
        return self.event_service.view(event_id)

    def event_series(self, event_id: str) -> pd.DataFrame:
        """Target against delivered, one row per control cycle."""
        return self.event_service.series(event_id)

    # ------------------------------------------------------------------ reads
    def fleet_summary(self) -> dict[str, Any]:
        """The fleet now (computed once per control cycle)."""
        return self.read_model.fleet_summary()

    def flexibility(self, duration_h: float, by: str) -> pd.DataFrame:
        """Up and down kW held for ``duration_h``, by group."""
        return self.read_model.flexibility(duration_h, by)

    def fleet_history(self, start: float, end: float) -> pd.DataFrame:
        """Fleet power by kind over ``[start, end)``, one row per control cycle."""
        return self.read_model.fleet_history(start, end)

    def group_history(self, start: float, end: float, by: str) -> pd.DataFrame:
        """Power by grid node, programme or region, one sample a minute over ``[start, end)``."""
        return self.read_model.group_history(start, end, by)

    def updates(self) -> AsyncIterator[dict[str, Any]]:
        """Live updates: one dict per control cycle (slow readers skip cycles)."""
        return self.read_model.updates()

    # ------------------------------------------------------------------ the loop
    def resume(self) -> list[str]:
        """Take up the events the store holds as scheduled or active (after a restart)."""
        return self.loop.resume()

    def control_cycle(self) -> None:
        """One turn of the control loop (then the read model describes the fleet)."""
        self.loop.cycle()

    async def run(self) -> None:
        """Run the control loop and the store writer until :meth:`stop`."""
        await self.loop.run()

    def stop(self) -> None:
        """Ask :meth:`run` to finish its cycle and return."""
        self.loop.stop()
