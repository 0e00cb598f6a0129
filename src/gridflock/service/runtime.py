"""The running VPP as the API sees it: a thin facade over the service's parts.

- :class:`~gridflock.service.control.ControlLoop`: fleet state, dispatcher and device
  link, driven once per control interval; queues every record for the store.
- :class:`~gridflock.service.events.EventService`: events validated, scheduled, cancelled
  and described.
- :class:`~gridflock.service.readmodel.ReadModel`: fleet summary, histories and live
  updates, refreshed after every cycle.
- :class:`~gridflock.service.writer.StoreWriter`: database writes off the event loop.
- :class:`~gridflock.service.leadership.Leadership`: whether this process commands
  (always in role all; elected in PostgreSQL, with fencing, in role control).

:class:`Runtime` wires them and implements :class:`gridflock.api.runtime.Runtime`; what
is left here (health, metrics, keys, fleet import, gateways) is the glue between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pandas as pd

from gridflock import __version__
from gridflock.api.runtime import EventView
from gridflock.config import Settings
from gridflock.dispatch import Dispatcher
from gridflock.domain.auth import Principal
from gridflock.domain.errors import ConflictError, NotFoundError, UnavailableError
from gridflock.domain.events import DEFAULT_PRIORITY, Event, EventSource, Scope
from gridflock.domain.ports import DeviceLink
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.state import FleetState
from gridflock.forecast import FLEX_HOLD_H, WeatherSource
from gridflock.mv.statement import Statement
from gridflock.mv.value import YearValue
from gridflock.service.autopilot import AutopilotService, AutopilotSettings
from gridflock.service.control import ControlLoop
from gridflock.service.envelopes import EnvelopeService
from gridflock.service.events import EventService
from gridflock.service.forecasting import ForecastService
from gridflock.service.leadership import Leadership
from gridflock.service.metrics import ServiceMetrics
from gridflock.service.openadr import OpenADRService, make_ven
from gridflock.service.readmodel import ReadModel
from gridflock.service.settlement import SettlementService
from gridflock.service.writer import StoreWriter
from gridflock.store import Store
from gridflock.store.errors import DatabaseUnavailableError, is_outage
from gridflock.store.records import AutopilotDecision, AutopilotProposal

__all__ = ["Runtime"]

log = logging.getLogger("gridflock.service")

#: API keys remembered for authentication during a database outage.
MAX_VERIFIED_KEYS = 10_000
#: How long an event's 201 may wait for its record to be stored (then it runs from memory).
EVENT_STORE_WAIT_S = 3.0


class Runtime:
    """Implements :class:`gridflock.api.runtime.Runtime` over the real parts."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        spec: FleetSpec,
        link: DeviceLink,
        clock: Callable[[], float] = time.time,
        weather: WeatherSource | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self.link = link
        self.clock = clock
        self.metrics_ = ServiceMetrics()
        elected = settings.role == "control"
        self.leadership = Leadership(store if elected else None, elected=elected, clock=clock)
        if elected:  # a deposed leader's writes are refused by the database itself
            from gridflock.store._leadership import install_fence

            install_fence(store.engine, self.leadership.fence_epoch)
        self.writer = StoreWriter(store, settings.telemetry_buffer_rows)
        self.loop = ControlLoop(
            settings, store, spec, link, clock, self.metrics_, self.writer, self.leadership
        )
        self.event_service = EventService(self.loop)
        self.read_model = ReadModel(self.loop, self.event_service)
        self.settlement = SettlementService(settings, store, clock)
        self.loop.observers.append(self.read_model.record)
        self.forecaster = ForecastService(
            settings,
            store,
            lambda: self.loop.spec,
            clock,
            _weather_source(settings, weather),
            flexibility=self._site_flexibility,
        )
        self.forecaster.leading = lambda: self.leadership.leading
        self.autopilot = AutopilotService(
            self.loop, self.event_service, self.read_model, forecasts=self.forecaster
        )
        self.loop.leader_observers.append(self.autopilot.tick)
        self.envelope_service = EnvelopeService(self.loop)
        self.loop.leader_observers.append(self.envelope_service.tick)
        self.openadr = OpenADRService(
            self.event_service,
            policy=settings.openadr_opt,
            scope=Scope.parse(settings.openadr_scope),
            priority=settings.openadr_priority,
        )
        self.openadr.ven = make_ven(settings, self.openadr)
        self._stopping = asyncio.Event()
        self.autopilot.price_overlay = self.openadr.tariff
        self.mqtt_enabled = settings.mqtt_url is not None
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        """SHA-256 of API keys the database confirmed → their principal (newest last)."""

    def _site_flexibility(self, now: float) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Each site's up and down band flexibility held for ``FLEX_HOLD_H`` [kW] (forecaster)."""
        st = self.loop.state
        f = flexibility(st, FLEX_HOLD_H, now)
        n = st.grid.n_sites
        up = np.bincount(st.site_idx, weights=f.up_kw, minlength=n)
        down = np.bincount(st.site_idx, weights=f.down_kw, minlength=n)
        return [str(s) for s in st.grid.site_ids], up, down

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

    @property
    def envelopes(self) -> EnvelopeService:
        """The grid operator's operating envelopes: list, put, delete."""
        return self.envelope_service

    @property
    def forecasts(self) -> ForecastService:
        """The forecaster: latest issues, support windows, retraining."""
        return self.forecaster

    @property
    def leading(self) -> bool:
        """Whether this process commands the plant (always in role all)."""
        return self.leadership.leading

    def _must_lead(self, what: str) -> None:
        """Refuse a change on a standby (503): the leader makes every change."""
        if not self.leadership.leading:
            raise UnavailableError(
                f"this process is a standby and cannot {what}: send the request to the "
                "leader (`gridflock cluster status` shows it), or retry after a failover"
            )

    # ------------------------------------------------------------------ the service
    def authenticate(self, api_key: str) -> Principal | None:
        """The caller behind ``api_key``, or None.

        During a database outage the keys the database confirmed since the service started
        still authenticate (from memory), so operators keep the API; a key never seen
        raises :class:`DatabaseUnavailableError` (503), never "wrong key".
        """
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        known = self._verified.get(digest)
        if known is not None and not self.writer.stats.database_up:
            return known  # do not wait on a database known to be away
        try:
            principal = self._store.authenticate(api_key)
        except Exception as e:
            if not is_outage(e):
                raise
            log.warning("cannot check an API key, the database is away: %s", e)
            if known is not None:
                return known
            raise DatabaseUnavailableError(
                "the database is unavailable, so this API key cannot be checked (keys used "
                "since the service started still work); try again shortly"
            ) from e
        if principal is None:
            self._verified.pop(digest, None)
        else:
            self._verified[digest] = principal
            self._verified.move_to_end(digest)
            while len(self._verified) > MAX_VERIFIED_KEYS:
                self._verified.popitem(last=False)
        return principal

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
        parts = {
            "dispatch": "ok",  # fleet state, dispatcher and events live in memory
            "fleet": "ok",
            "events": "ok",
            "devices": (
                "ok"
                if self.link.connected
                else "unreachable"
                if self.mqtt_enabled
                else "none"  # no device link configured
            ),
            "writes": "ok" if db_up else "buffering",
            "stored_data": "ok" if db_up else "unavailable",
            "api_keys": "ok" if db_up else "known keys only",
        }
        ven = self.openadr.ven
        if ven is not None:  # the utility's VTN: degraded while it cannot be reached
            reached = ven.status.registered and ven.status.reachable
            parts["openadr"] = "ok" if reached else "unreachable"
        degraded = [name for name, v in parts.items() if v not in ("ok", "none")]
        st = self.loop.state
        return {
            "status": "degraded" if degraded else "ok",
            "degraded": degraded,
            "parts": parts,
            "version": __version__,
            "database": "up" if db_up else "down",
            "mqtt": mqtt,
            "devices_online": int(st.online.sum()),
            "devices_total": st.n,
            "buffered_readings": self.writer.buffered_rows,
            "dropped_readings": self.writer.stats.rows_dropped,
            "quarantined_writes": self.writer.stats.quarantined_ops,
            "quarantined_readings": self.writer.stats.quarantined_rows,
            **self._leadership_view(),
        }

    def _leadership_view(self) -> dict[str, Any]:
        """Role, whether leading, the epoch and since when (ISO 8601 UTC), for health."""
        lead = self.leadership.status()
        since = lead["since"]
        return {
            "role": self.settings.role,
            "leading": lead["leading"],
            "epoch": lead["epoch"],
            "since": None
            if since is None
            else pd.Timestamp(since, unit="s", tz="UTC").isoformat().replace("+00:00", "Z"),
            "fenced_writes": self.writer.stats.fenced_ops,
        }

    def metrics(self) -> bytes:
        """Prometheus exposition."""
        m = self.metrics_
        m.buffered_rows.set(self.writer.buffered_rows)
        m.dropped_rows.set(self.writer.stats.rows_dropped)
        m.written_rows.set(self.writer.stats.rows_written)
        m.quarantined.labels("ops").set(self.writer.stats.quarantined_ops)
        m.quarantined.labels("readings").set(self.writer.stats.quarantined_rows)
        m.database_up.set(1 if self.writer.stats.database_up else 0)
        m.mqtt_connected.set(1 if self.mqtt_enabled and self.link.connected else 0)
        m.leading.set(1 if self.leadership.leading else 0)
        m.epoch.set(self.leadership.epoch or 0)
        m.fenced_writes.set(self.writer.stats.fenced_ops)
        return m.exposition()

    async def import_fleet(self, spec: FleetSpec, principal: Principal) -> None:
        """Replace the fleet; running events go on over the devices that stay (by id)."""
        self._must_lead("import a fleet")
        loop = self.loop
        await asyncio.to_thread(self._store.save_fleet, spec)
        loop.set_fleet(spec, keep=loop.state, push=False)
        await loop.push_settings_async(spec)  # built in a worker thread
        self.read_model.fleet_changed()  # describe the new fleet from the next read on
        loop.audit(
            principal.label,
            "fleet.import",
            "fleet",
            {"sites": len(spec.sites), "devices": spec.n_devices},
        )

    async def push_grid_settings(
        self,
        product: str | None,
        deadband_hz: float | None,
        droop: float | None,
        principal: Principal,
    ) -> dict[str, Any]:
        """Every device's grid-code settings to its gateway again, with a product's droop."""
        from gridflock.fleet.flexibility import frequency_response
        from gridflock.gridcode import products
        from gridflock.service.gridcode import capacity_of

        loop = self.loop
        assert loop.gridcode is not None
        capacity = None
        if product is not None and product in products():
            prod = products()[product]
            cap = frequency_response(
                loop.state, self.clock(), within_s=prod.full_s, hold_s=prod.duration_s
            )
            capacity = capacity_of(loop.state.device_ids, cap.up_kw, cap.down_kw)
        return await loop.gridcode.push_async(
            loop.spec,
            force=True,
            product=product,
            deadband_hz=deadband_hz,
            droop=droop,
            capacity=capacity,
            keep_options=False,
            actor=principal.label,
        )

    def grid_settings(self) -> dict[str, Any]:
        """Each device's latest grid-code settings and its gateway's answer."""
        assert self.loop.gridcode is not None
        return self.loop.gridcode.status()

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
        source: EventSource = EventSource.OPERATOR,
        *,
        priority: int = DEFAULT_PRIORITY,
        allow_partial: bool = False,
    ) -> Event:
        """Validate, admit and schedule an event; it is tracked from its start.

        Returns once the event is stored, so an acknowledged event survives a crash right
        after the answer. With the database away it returns after at most
        ``EVENT_STORE_WAIT_S``: the event runs from memory and is stored when the database
        is back (health shows the outage).
        """
        self._must_lead("create events")
        event = self.event_service.create(
            target_kw,
            start,
            duration_s,
            scope,
            principal,
            source,
            priority=priority,
            allow_partial=allow_partial,
        )
        ticket = self.writer.last_ticket
        deadline = time.monotonic() + EVENT_STORE_WAIT_S
        while not self.writer.done_with(ticket):
            left = deadline - time.monotonic()
            if left <= 0 or not await asyncio.to_thread(self.writer.flush_ops, left):
                log.warning("event %s accepted before it could be stored", event.id)
                break
        return event

    def available_kw(self, scope: Scope, start: float | None, duration_s: float, up: bool) -> float:
        """What a new event over ``scope`` and the window could still get [kW, signed]."""
        return self.event_service.available_kw(scope, start, duration_s, up)

    async def cancel_event(self, event_id: str, principal: Principal) -> Event:
        """Cancel and release the event's devices."""
        self._must_lead("cancel events")
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

    def _any_event(self, event_id: str) -> Event:
        """An event this service tracks, or any the store holds (``NotFoundError`` if none)."""
        try:
            return self.event_service.view(event_id).event
        except NotFoundError:
            return self._store.get_event(event_id)

    def event_statement(self, event_id: str, method: str | None = None) -> Statement:
        """The settlement statement of an event (recommended method unless ``method``)."""
        return self.settlement.statement(self.spec, self._any_event(event_id), method)

    def yearly_value(self, year: int) -> YearValue:
        """The value of the completed events that started in ``year`` (UTC)."""
        return self.settlement.year(self.spec, self._store.list_events(), year)

    # ------------------------------------------------------------------ autopilot
    async def _stored(self) -> None:
        """Wait (at most ``EVENT_STORE_WAIT_S``) until what was queued so far is written."""
        ticket = self.writer.last_ticket
        deadline = time.monotonic() + EVENT_STORE_WAIT_S
        while not self.writer.done_with(ticket):
            left = deadline - time.monotonic()
            if left <= 0 or not await asyncio.to_thread(self.writer.flush_ops, left):
                break

    def autopilot_status(self) -> dict[str, Any]:
        """The autopilot now."""
        return self.autopilot.status()

    def autopilot_settings(self) -> dict[str, Any]:
        """The autopilot's settings."""
        return self.autopilot.settings.as_dict()

    async def set_autopilot_settings(
        self, settings: dict[str, Any], principal: Principal
    ) -> dict[str, Any]:
        """Validate and replace the settings; logged with who changed them."""
        self._must_lead("change the autopilot's settings")
        parsed = AutopilotSettings.from_dict(settings)
        self.loop.state.scope_mask(Scope.parse(parsed.policies.peak_shaving.scope))
        self.autopilot.set_settings(parsed, principal)
        await self._stored()
        return parsed.as_dict()

    def autopilot_plan(self) -> tuple[float | None, pd.DataFrame]:
        """The current plan by quarter hour."""
        plan = self.autopilot.plan
        cols = [
            "ts",
            "forecast_import_kw",
            "price_eur_per_kwh",
            "charge_kw",
            "discharge_kw",
            "stored_kwh",
            "import_kw",
            "support_kw",
            "soc",
        ]
        if plan is None:
            return None, pd.DataFrame(columns=cols)
        df = plan.frame()
        support = pd.Series(0.0, index=df.index)
        sw = plan.policies.support_windows
        if sw.enabled:
            for w in sw.windows:
                support[(df.index >= w.start) & (df.index < w.end)] += w.kw
        df["support_kw"] = support
        e_max = plan.pool.e_max_kwh
        df["soc"] = df["stored_kwh"] / e_max if e_max > 0 else np.nan
        df = df.rename_axis("ts").reset_index()
        return self.autopilot.planned_at, df[cols]

    def autopilot_proposals(self, status: str | None) -> list[AutopilotProposal]:
        """Proposals of the last day and ahead."""
        return self.autopilot.proposals_list(status)

    async def approve_proposal(self, proposal_id: str, principal: Principal) -> AutopilotProposal:
        """Approve and run the proposal; returns it once its decisions are stored."""
        self._must_lead("approve proposals")
        p = self.autopilot.approve(proposal_id, principal)
        await self._stored()
        return p

    async def veto_proposal(
        self, proposal_id: str, principal: Principal, reason: str
    ) -> AutopilotProposal:
        """Veto the proposal; returns it once the decision is stored."""
        self._must_lead("veto proposals")
        p = self.autopilot.veto(proposal_id, principal, reason)
        await self._stored()
        return p

    async def autopilot_replan(self, principal: Principal) -> dict[str, Any]:
        """Re-plan now."""
        self._must_lead("re-plan")
        if not self.autopilot.settings.enabled:
            raise ConflictError("the autopilot is off: turn it on in its settings first")
        await self.autopilot.replan_async(self.clock())
        await self._stored()
        return self.autopilot.status()

    def autopilot_decisions(
        self, kind: str | None, limit: int, offset: int
    ) -> tuple[list[AutopilotDecision], int]:
        """The decision log from the store."""
        return self.autopilot.decisions(kind, limit, offset)

    # ------------------------------------------------------------------ OpenADR
    def openadr_status(self) -> dict[str, Any]:
        """The OpenADR VEN and the utility events it took up."""
        return self.openadr.status()

    # ------------------------------------------------------------------ reads
    def fleet_summary(self) -> dict[str, Any]:
        """The fleet now (computed once per control cycle)."""
        return self.read_model.fleet_summary()

    def flexibility(self, duration_h: float, by: str, scope: str = "fleet") -> pd.DataFrame:
        """Flexibility held for ``duration_h`` (total, committed, remaining), by group."""
        return self.read_model.flexibility(duration_h, by, scope)

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
        """Take up the events the store holds: open ones to dispatch, finished ones to show.

        Returns the ids of the open events resumed.
        """
        self.envelope_service.load()
        resumed = self.loop.resume()
        self.event_service.load_past()
        self.autopilot.load()
        return resumed

    def control_cycle(self) -> None:
        """One turn of the control loop (then the read model describes the fleet)."""
        self.loop.cycle()

    async def run(self) -> None:
        """Run the control loop, the store writer and the forecaster until :meth:`stop`."""
        forecasts = asyncio.create_task(self.forecaster.run(), name="forecasts")
        election = asyncio.create_task(self.leadership.watch(), name="leadership")
        self._stopping.clear()
        utility = (
            asyncio.create_task(self._utility(), name="openadr")
            if self.openadr.ven is not None
            else None
        )
        try:
            await self.loop.run(self.resume)
        finally:
            self.forecaster.stop()
            self.leadership.stop()  # a graceful stop gives the lock up at once
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(election, 5.0)
            self._stopping.set()
            if self.openadr.ven is not None:
                self.openadr.ven.stop()
            if utility is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(utility, 5.0)
            forecasts.cancel()  # a step in flight finishes in its thread; nothing waits on it
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await forecasts

    async def _utility(self) -> None:
        """Run the OpenADR VEN while this process leads, and only then.

        The utility's server knows one VEN: a hot standby must not register or report
        beside the leader, so the VEN starts when this process begins to lead (always in
        role ``all``) and stops when it stops leading; a new term starts a fresh one.
        """
        first = True
        while not self._stopping.is_set():
            if not self.leadership.leading:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.25)
                continue
            ven = self.openadr.ven if first else make_ven(self.settings, self.openadr)
            first = False
            if ven is None:
                return
            self.openadr.ven = ven
            task = asyncio.create_task(ven.run(), name="openadr-ven")
            while self.leadership.leading and not self._stopping.is_set() and not task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.25)
            if not task.done():
                log.info("OpenADR VEN stopped: this process no longer leads")
            ven.stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
            if task.done() and not self._stopping.is_set() and self.leadership.leading:
                return  # the VEN ended on its own (it retries inside; this is final)

    def stop(self) -> None:
        """Ask :meth:`run` to finish its cycle and return."""
        self.loop.stop()
        self.forecaster.stop()
        self.leadership.stop()
        self._stopping.set()
        if self.openadr.ven is not None:
            self.openadr.ven.stop()


def _weather_source(settings: Settings, given: WeatherSource | None) -> WeatherSource | None:
    """The weather forecasts the settings ask for: the twin's (``given``), a file's, none."""
    choice = settings.forecast_weather
    if choice == "none":
        return None
    if choice == "file":
        from gridflock.forecast import read_weather_forecasts

        assert settings.forecast_weather_file is not None  # the settings check it
        try:
            return read_weather_forecasts(settings.forecast_weather_file)
        except Exception as e:  # a bad file must not stop the service: forecast without it
            log.error(
                "forecast weather file %s cannot be used (%s): forecasting without weather",
                settings.forecast_weather_file,
                e,
            )
            return None
    if choice == "twin" and given is None:
        log.warning("forecast_weather=twin but no twin runs here: forecasting without weather")
    return given
