"""The running VPP: fleet state, dispatcher, device link and store, driven by one loop.

Every ``control_interval_s`` the loop takes the readings that arrived, applies them to the
fleet state, marks silent devices offline, advances every event's tracker, sends the
commands, records what happened, and publishes a fleet update. Database writes go
through :class:`StoreWriter` off the event loop, so a slow or absent database never
stalls dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gridflock import __version__
from gridflock.api.runtime import EventView
from gridflock.config import Settings
from gridflock.dispatch import Dispatcher, EventTracker, TrackerConfig, limit_headroom
from gridflock.domain.auth import Principal
from gridflock.domain.events import Event, EventSource, EventStatus, Scope
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.spec import FleetSpec
from gridflock.fleet import GROUP_BY, aggregate, flexibility
from gridflock.fleet.state import FleetState
from gridflock.service.metrics import ServiceMetrics
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

__all__ = ["Runtime", "ServiceLink"]

log = logging.getLogger("gridflock.service")

MAX_EVENT_S = 7 * 86400.0
MAX_TARGET_KW = 1e7
HISTORY_S = 24 * 3600.0
GROUP_HISTORY_STEP_S = 60.0
GROUP_HISTORY_BY = ("grid_node", "program", "region")


class ServiceLink(Protocol):
    """A device link as the service drives it (the twin in process, or MQTT)."""

    def send(self, commands: CommandBatch) -> None:
        """Hand commands to the devices' gateways."""

    def receive(self) -> list[TelemetryBatch]:
        """Batches of readings that arrived since the last call."""

    @property
    def connected(self) -> bool:
        """Whether the link can reach devices now."""


class Runtime:
    """Implements :class:`gridflock.api.runtime.Runtime` over the real parts."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        spec: FleetSpec,
        link: ServiceLink,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = store
        self.link = link
        self.clock = clock
        self.metrics_ = ServiceMetrics()
        self.writer = StoreWriter(store, settings.telemetry_buffer_rows)
        self._tracker_config = TrackerConfig(interval_s=settings.control_interval_s)
        self._set_fleet(spec)
        self._history: deque[tuple[float, np.ndarray]] = deque(
            maxlen=int(HISTORY_S / settings.control_interval_s) + 1
        )
        self._group_history: deque[tuple[float, dict[str, np.ndarray]]] = deque(
            maxlen=int(HISTORY_S / GROUP_HISTORY_STEP_S) + 1
        )
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._summary: dict[str, Any] = {}
        self._status: dict[str, EventStatus] = {}
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.mqtt_enabled = settings.mqtt_url is not None
        self._messages_seen = 0
        self._writing = False

    def _set_fleet(self, spec: FleetSpec, keep: FleetState | None = None) -> None:
        self._spec = spec
        state = FleetState.from_spec(spec)
        if keep is not None:  # carry live values over for the devices that stay
            old = pd.Index(keep.device_ids).get_indexer(state.device_ids)  # type: ignore[arg-type]
            has = old >= 0
            for name in ("p_kw", "p_baseline_kw", "soc", "ts", "online"):
                getattr(state, name)[has] = getattr(keep, name)[old[has]]
            for name, arr in state.extras.items():
                arr[has] = keep.extras[name][old[has]]
        self._state = state
        self.dispatcher = Dispatcher(state, self._tracker_config)
        update = getattr(self.link, "update_fleet", None)
        if update is not None:  # the link screens devices against the fleet
            update(spec)
        self.metrics_.devices_total.set(state.n)

    # ------------------------------------------------------------------ protocol
    @property
    def state(self) -> FleetState:
        """The fleet state."""
        return self._state

    @property
    def spec(self) -> FleetSpec:
        """The fleet as provisioned."""
        return self._spec

    @property
    def store(self) -> Store:
        """The database."""
        return self._store

    def now(self) -> float:
        """The service clock [UTC epoch s]."""
        return self.clock()

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
        return {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "database": "up" if db_up else "down",
            "mqtt": mqtt,
            "devices_online": int(self._state.online.sum()),
            "devices_total": self._state.n,
            "buffered_readings": self.writer.buffered_rows,
            "dropped_readings": self.writer.stats.rows_dropped,
        }

    def fleet_summary(self) -> dict[str, Any]:
        """The fleet now (computed once per control cycle)."""
        return self._summary or self._compute_summary(self.now())

    def flexibility(self, duration_h: float, by: str) -> pd.DataFrame:
        """Up and down kW held for ``duration_h``, by group."""
        if by not in GROUP_BY:
            raise ValueError(f"by must be one of {', '.join(GROUP_BY)}, got {by!r}")
        if not 0 < duration_h <= 24 * 7:
            raise ValueError(f"duration_h must be within (0, 168] hours, got {duration_h}")
        st = self._state
        flex = flexibility(st, duration_h, self.now())
        ctl = st.controllable()
        return aggregate(
            st,
            by,
            {
                "up_kw": flex.up_kw * ctl,
                "down_kw": flex.down_kw * ctl,
                "p_kw": np.where(st.online, st.p_kw, 0.0),
            },
        )

    def fleet_history(self, start: float, end: float) -> pd.DataFrame:
        """Fleet power by kind over ``[start, end)``, one row per control cycle."""
        kinds = [k.value for k in DeviceKind]
        rows = [(ts, *v) for ts, v in self._history if start <= ts < end]
        df = pd.DataFrame(rows, columns=["ts", *kinds])
        df["p_kw"] = df[kinds].sum(axis=1)
        df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        return df[["ts", "p_kw", *kinds]]

    def group_history(self, start: float, end: float, by: str) -> pd.DataFrame:
        """Power by grid node (what each carries, + towards the grid), programme or region.

        One sample a minute over ``[start, end)``: columns ts, group, p_kw.
        """
        if by not in GROUP_HISTORY_BY:
            raise ValueError(f"by must be one of {', '.join(GROUP_HISTORY_BY)}, got {by!r}")
        labels = (
            self._state.grid.node_ids
            if by == "grid_node"
            else aggregate(self._state, by, {})[by].to_numpy(object)
        )
        rows = [(ts, labels, v[by]) for ts, v in self._group_history if start <= ts < end]
        if not rows:
            return pd.DataFrame(
                {
                    "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                    "group": pd.Series(dtype=object),
                    "p_kw": pd.Series(dtype=float),
                }
            )
        ts = np.concatenate([np.full(len(lab), t) for t, lab, _ in rows])
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(ts, unit="s", utc=True),
                "group": np.concatenate([lab for _, lab, _ in rows]),
                "p_kw": np.concatenate([v for _, _, v in rows]),
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
        """Validate and schedule an event; it is tracked from its start."""
        now = self.now()
        if not math.isfinite(target_kw) or target_kw == 0:
            raise ValueError(
                "target_kw must be a non-zero number of kW: positive asks the "
                "fleet for more export (up), negative to absorb (down)"
            )
        if abs(target_kw) > MAX_TARGET_KW:
            raise ValueError(f"target_kw must be within ±{MAX_TARGET_KW:,.0f} kW")
        if not math.isfinite(duration_s) or not 0 < duration_s <= MAX_EVENT_S:
            raise ValueError("duration_s must be more than 0 and at most 7 days (604800 s)")
        start = now if start is None else start
        if start + duration_s <= now:
            raise ValueError(
                "the event would already be over: give a start in the future "
                "or leave it out to start now"
            )
        self._state.scope_mask(scope)  # ValueError names an unknown node or tag
        event = Event(
            f"ev-{uuid.uuid4().hex[:12]}",
            float(target_kw),
            max(start, now - 60),
            start + duration_s,
            scope,
            EventSource.OPERATOR,
            created_by=principal.label,
        )
        self.dispatcher.add(event)
        self._status[event.id] = event.status
        self._wake.set()  # act on it now, not at the next tick of the loop
        self.writer.op("event", lambda: self._store.save_event(event))
        self._audit(
            principal.label,
            "event.create",
            event.id,
            {
                "target_kw": event.target_kw,
                "start": event.start,
                "end": event.end,
                "scope": str(scope),
            },
        )
        return event

    async def cancel_event(self, event_id: str, principal: Principal) -> Event:
        """Cancel and release the event's devices."""
        tracker = self._tracker(event_id)
        if tracker.event.status.final:
            raise ValueError(f"event {event_id} is already {tracker.event.status.value}")
        batch = tracker.cancel(self.now())
        if batch is not None:
            self._send(batch)
        self._audit(principal.label, "event.cancel", event_id, None)
        self._record_status(tracker)
        return tracker.event

    def events(self) -> list[EventView]:
        """Every event this service tracks, newest first."""
        trackers = sorted(self.dispatcher.trackers.values(), key=lambda t: -t.event.start)
        return [self._view(t) for t in trackers]

    def event(self, event_id: str) -> EventView:
        """One event with its figures."""
        return self._view(self._tracker(event_id))

    def event_series(self, event_id: str) -> pd.DataFrame:
        """Target against delivered, one row per control cycle."""
        t = self._tracker(event_id)
        ts = np.asarray(t.samples_ts)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(ts, unit="s", utc=True),
                "target_kw": np.full(len(ts), t.event.target_kw),
                "delivered_kw": np.asarray(t.samples_delivered),
            }
        )

    async def updates(self) -> AsyncIterator[dict[str, Any]]:
        """Live updates: one dict per control cycle (slow readers skip cycles)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=8)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    async def import_fleet(self, spec: FleetSpec, principal: Principal) -> None:
        """Replace the fleet; refused while events are in progress."""
        busy = [t.event.id for t in self.dispatcher.trackers.values() if not t.event.status.final]
        if busy:
            raise ValueError(
                f"events {', '.join(busy)} are in progress: cancel them or wait "
                "for them to end before replacing the fleet"
            )
        await asyncio.to_thread(self._store.save_fleet, spec)
        old_trackers = self.dispatcher.trackers
        self._set_fleet(spec, keep=self._state)
        self.dispatcher.trackers.update(old_trackers)  # keep finished events listed
        self._summary = {}  # describe the new fleet from the next read on
        self._audit(
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
        self._audit(
            principal.label,
            "gateway.create",
            gateway_id,
            {"kind": kind, "site_id": site_id, "groups": groups},
        )
        return secret

    def metrics(self) -> bytes:
        """Prometheus exposition."""
        m = self.metrics_
        m.buffered_rows.set(self.writer.buffered_rows)
        m.dropped_rows.set(self.writer.stats.rows_dropped)
        m.database_up.set(1 if self.writer.stats.database_up else 0)
        m.mqtt_connected.set(1 if self.mqtt_enabled and self.link.connected else 0)
        return m.exposition()

    # ------------------------------------------------------------------ the loop
    def resume(self) -> list[str]:
        """Take up the events the store holds as scheduled or active (after a restart)."""
        resumed = []
        for event in self._store.active_events(self.now()):
            if event.id not in self.dispatcher.trackers:
                self.dispatcher.add(event)
                self._status[event.id] = event.status
                resumed.append(event.id)
        if resumed:
            log.warning("resumed %d event(s) from the store: %s", len(resumed), ", ".join(resumed))
        return resumed

    def control_cycle(self) -> None:
        """One turn of the loop (synchronous; fast: arrays only, I/O is queued)."""
        began = time.perf_counter()
        now = self.now()
        st, m = self._state, self.metrics_
        for readings in self.link.receive():
            result = st.apply(readings)
            m.readings.labels("applied").inc(result.applied)
            m.readings.labels("unknown").inc(result.unknown)
            m.readings.labels("stale").inc(result.stale)
            self.writer.telemetry(readings)
        self._link_reports(now)
        st.mark_stale(now, self.settings.stale_after_s)
        for batch in self.dispatcher.step(now):
            self._send(batch)
        for tracker in self.dispatcher.trackers.values():
            self._record_status(tracker)
            if (
                tracker.event.status is EventStatus.ACTIVE
                and tracker.samples_ts
                and (tracker.samples_ts[-1] == now)
            ):
                ev = tracker.event
                self.writer.op(
                    "samples",
                    partial(
                        self._store.save_event_samples,
                        ev.id,
                        np.array([now]),
                        np.array([ev.target_kw]),
                        np.array(tracker.samples_delivered[-1:]),
                    ),
                )
        self._summary = self._compute_summary(now)
        last = self._group_history[-1][0] if self._group_history else -np.inf
        if now - last >= GROUP_HISTORY_STEP_S:
            p = np.where(st.online, st.p_kw, 0.0)
            sample = {"grid_node": st.grid.node_flow_kw(st.site_power_kw(p))}
            for by in ("program", "region"):
                sample[by] = aggregate(st, by, {"p_kw": p})["p_kw"].to_numpy()
            self._group_history.append((now, sample))
        self._history.append(
            (
                now,
                np.bincount(
                    st.kind_codes(),
                    weights=np.where(st.online, st.p_kw, 0.0),
                    minlength=len(DeviceKind),
                ),
            )
        )
        m.cycle.observe(time.perf_counter() - began)
        self._publish(now)

    async def run(self) -> None:
        """Run the control loop and the store writer until :meth:`stop`."""
        await asyncio.to_thread(self.resume)
        writer = asyncio.create_task(self._write_loop())
        interval = self.settings.control_interval_s
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                self.control_cycle()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken(), interval - (self.now() % interval))
        finally:
            self._writing = False
            await writer  # let the flush in flight finish: a cancelled thread goes on running
            await asyncio.to_thread(self.writer.flush)

    def stop(self) -> None:
        """Ask :meth:`run` to finish its cycle and return."""
        self._stopping.set()
        self._wake.set()

    async def _woken(self) -> None:
        """Return when stopping, or when something wants a cycle now (a new event)."""
        await self._wake.wait()

    async def _write_loop(self) -> None:
        self._writing = True
        while self._writing:
            await asyncio.to_thread(self.writer.flush)
            for _ in range(max(int(self.settings.telemetry_flush_s / 0.1), 1)):
                if not self._writing:
                    return
                await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ helpers
    def _link_reports(self, now: float) -> None:
        """Counters, command acks and gateway statuses the link gathered since last cycle."""
        m, link = self.metrics_, self.link
        counts = getattr(link, "counts", None)
        if counts is not None:
            for key, n in list(counts.items()):
                if key.startswith("rejected:") and n:
                    m.rejected.labels(key.split(":", 1)[1]).inc(n)
                    counts[key] = 0
            if counts.get("protocol_errors"):  # messages refused whole
                m.rejected.labels("protocol_error").inc(counts["protocol_errors"])
                counts["protocol_errors"] = 0
            m.messages.inc(counts.get("messages", 0) - self._messages_seen)
            self._messages_seen = counts.get("messages", 0)
        for acks in getattr(link, "take_acks", list)():
            by_status: dict[tuple[str, str | None], list[str]] = {}
            for a in acks.acks:
                by_status.setdefault((a.status, a.reason), []).append(a.id)
                m.acks.labels(a.status).inc()
            for (status, reason), ids in by_status.items():
                self.writer.op("acks", partial(self._store.set_command_status, ids, status, reason))
        statuses: list[Any] = getattr(link, "take_statuses", list)()
        if statuses:
            gateways = self._spec.all_devices()[["id", "gateway_id"]]
            for s in statuses:
                if s.status == "offline":  # its devices are offline now, not at the timeout
                    ids = gateways["id"][gateways["gateway_id"] == s.gateway].to_numpy(object)
                    if len(ids):
                        idx = self._state.indices(ids)
                        self._state.online[idx] = False
            seen = sorted({s.gateway for s in statuses})
            self.writer.op("gateways seen", partial(self._store.set_gateway_seen, seen, now))

    def _tracker(self, event_id: str) -> EventTracker:
        try:
            return self.dispatcher.trackers[event_id]
        except KeyError:
            raise KeyError(f"no event {event_id!r}: list events at /api/v1/events") from None

    def _send(self, batch: CommandBatch) -> None:
        self.link.send(batch)
        self.metrics_.commands.inc(len(batch))
        self.writer.op("commands", lambda: self._store.save_commands(batch))

    def _audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None) -> None:
        ts = self.now()
        self.writer.op("audit", lambda: self._store.audit(actor, action, subject, detail, ts=ts))

    def _record_status(self, tracker: EventTracker) -> None:
        ev = tracker.event
        if self._status.get(ev.id) is ev.status:
            return
        self._status[ev.id] = ev.status
        status = ev.status
        self.writer.op("event status", lambda: self._store.set_event_status(ev.id, status))
        if status.final:
            perf = tracker.performance().as_dict()
            self.writer.op("performance", lambda: self._store.save_event_performance(ev.id, perf))
        log.info("event %s is %s", ev.id, status.value)

    def _view(self, t: EventTracker) -> EventView:
        perf = t.performance() if t.samples_ts else None
        return EventView(
            event=t.event,
            delivered_kw=t.samples_delivered[-1] if t.samples_delivered else None,
            delivered_pct=perf.delivered_pct if perf and perf.samples else None,
            tracking_rmse_pct=perf.tracking_rmse_pct if perf and perf.samples else None,
            time_to_90pct_s=perf.time_to_90pct_s if perf else None,
            non_responders=t.non_responders,
            shortfall_kw=t.shortfall_kw,
            commands_sent=t.commands_sent,
        )

    def _compute_summary(self, now: float) -> dict[str, Any]:
        st = self._state
        hours = self.settings.flex_duration_h
        flex = flexibility(st, hours, now)
        base = st.baseline_kw()
        site_p = st.site_power_kw(np.where(st.online, base, 0.0))
        node_p = st.grid.node_flow_kw(site_p)
        ctl = st.controllable()
        up = limit_headroom(flex.up_kw * ctl, st.node_groups, st.grid, site_p, node_p, up=True)
        down = limit_headroom(flex.down_kw * ctl, st.node_groups, st.grid, site_p, node_p, up=False)
        p = np.where(st.online, st.p_kw, 0.0)
        by_kind = aggregate(st, "kind", {"p_kw": p, "flex_up_kw": up, "flex_down_kw": down})
        summary = {
            "ts": now,
            "p_kw": float(p.sum()),
            "flex_up_kw": float(up.sum()),
            "flex_down_kw": float(down.sum()),
            "flex_duration_h": hours,
            "devices_online": int(st.online.sum()),
            "devices_total": st.n,
            "events_active": sum(
                1 for t in self.dispatcher.trackers.values() if t.event.status is EventStatus.ACTIVE
            ),
            "by_kind": by_kind.rename(
                columns={"online": "devices_online", "devices": "devices_total"}
            ).to_dict("records"),
        }
        m = self.metrics_
        m.devices_online.set(float(st.online.sum()))
        m.fleet_p_kw.set(float(p.sum()))
        m.flex_up_kw.set(float(up.sum()))
        m.flex_down_kw.set(float(down.sum()))
        m.events_active.set(float(summary["events_active"]))  # type: ignore[arg-type]
        return summary

    def _publish(self, now: float) -> None:
        if not self._subscribers:
            return
        update = {
            "ts": now,
            "fleet": {k: v for k, v in self._summary.items() if k != "by_kind"},
            "events": [
                _event_json(v) for v in self.events() if v.event.status is EventStatus.ACTIVE
            ],
        }
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()  # drop the oldest: a slow reader sees the latest state
            q.put_nowait(update)


def _event_json(v: EventView) -> dict[str, Any]:
    return {
        "id": v.event.id,
        "status": v.event.status.value,
        "target_kw": v.event.target_kw,
        "delivered_kw": v.delivered_kw,
        "delivered_pct": v.delivered_pct,
    }
