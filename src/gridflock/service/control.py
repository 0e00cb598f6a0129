"""The control loop: readings in, fleet state, dispatch, commands out, records queued.

Every ``control_interval_s`` the loop takes the readings that arrived, applies them to the
fleet state, takes the link's report (acknowledgements, gateway statuses, counters),
marks silent devices offline, advances every event's tracker, sends the commands and
queues what happened for the store. Then it hands the cycle's time to its observers (the
read model), which describe the fleet for the API. Plans reach devices as schedules
through the :class:`PlanExecutor` (``self.plans``): each cycle it takes their acks,
re-sends what was not acknowledged, and gives the dispatcher each device's planned power
as its baseline. Database writes go through
:class:`StoreWriter` off the event loop, so a slow or absent database never stalls
dispatch.

In role ``control`` (:class:`~gridflock.service.leadership.Leadership` elected) the loop
applies readings every cycle whether it leads or not, so a standby's fleet state is
warm; only while leading does it dispatch, command and record. On winning leadership it
takes over (:meth:`ControlLoop.take_over`): sequence numbers go on above the highest
stored, open events and accepted schedules are read back from the store, and the next
cycle commands. Telemetry rows are the ingest workers' then, not this loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from gridflock.config import Settings
from gridflock.dispatch import Dispatcher, EventTracker, TrackerConfig
from gridflock.domain.errors import NotFoundError, clip
from gridflock.domain.events import Event, EventStatus
from gridflock.domain.messages import CommandBatch
from gridflock.domain.ports import DeviceLink, LinkReport
from gridflock.domain.spec import FleetSpec
from gridflock.fleet.state import FleetState
from gridflock.service.gridcode import SettingsPusher
from gridflock.service.leadership import Leadership
from gridflock.service.metrics import ServiceMetrics
from gridflock.service.plans import PlanExecutor
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

__all__ = ["ControlLoop", "epoch_seconds"]

log = logging.getLogger("gridflock.service")

#: Finished events kept in memory for the API; their figures and samples are in the store.
FINISHED_KEPT = 100


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    """Aware UTC datetimes (as the store returns them) as UTC epoch seconds."""
    return np.asarray(
        (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds(),
        dtype=np.float64,
    )


class ControlLoop:
    """Owns the fleet state, the dispatcher and the device link; runs one cycle at a time."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        spec: FleetSpec,
        link: DeviceLink,
        clock: Callable[[], float],
        metrics: ServiceMetrics,
        writer: StoreWriter,
        leadership: Leadership | None = None,
    ) -> None:
        self.settings = settings
        self.leadership = leadership or Leadership(None, elected=False, clock=clock)
        """Whether this loop may command (always in role all)."""
        self._led_epoch: int | None = None
        """The epoch of the term this loop took over for (elected roles)."""
        self.leadership.on_change.append(lambda: self._wake.set())
        self.write_telemetry = settings.role == "all"
        """Whether readings are written to the store here (ingest workers do it otherwise)."""
        self.store = store
        self.link = link
        self.clock = clock
        self.metrics = metrics
        self.writer = writer
        self.observers: list[Callable[[float], None]] = []
        """Called with the cycle's time at the end of every cycle (the read model)."""
        self.leader_observers: list[Callable[[float], None]] = []
        """Called after the observers, only while leading (autopilot, envelopes)."""
        self._tracker_config = TrackerConfig(
            interval_s=settings.control_interval_s, command_ttl_s=settings.command_ttl_s
        )
        self._status: dict[str, EventStatus] = {}
        self.finished: OrderedDict[str, EventTracker] = OrderedDict()
        """The latest finished events (at most ``FINISHED_KEPT``); older ones are in the store."""
        self._dispatcher: Dispatcher | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._writing = False
        self.plans: PlanExecutor | None = None
        self.gridcode: SettingsPusher | None = None
        self.set_fleet(spec)
        self.gridcode = SettingsPusher(
            link, clock, audit=self.audit, may_send=lambda: self.leadership.leading
        )
        """Grid-code settings to the gateways: ``control.gridcode.push(spec, ...)``."""
        self.push_settings(spec)
        self.plans = PlanExecutor(self.state, link, clock, store=store, writer=writer)
        self.plans.epoch = self.leadership.fence_epoch
        """Sends plans to devices as schedules: ``control.plans.apply(plan)``."""

    # ------------------------------------------------------------------ the fleet
    def set_fleet(
        self, spec: FleetSpec, keep: FleetState | None = None, *, push: bool = True
    ) -> None:
        """Take up ``spec``; live values of the devices that stay are carried over from ``keep``.

        ``push``: send the grid-code settings that changed here (False: the caller does,
        with :meth:`push_settings_async`).
        """
        self.spec = spec
        state = FleetState.from_spec(spec)
        if keep is not None:  # carry live values over for the devices that stay
            old = pd.Index(keep.device_ids).get_indexer(state.device_ids)  # type: ignore[arg-type]
            has = old >= 0
            for name in ("p_kw", "p_baseline_kw", "soc", "ts", "online"):
                getattr(state, name)[has] = getattr(keep, name)[old[has]]
            for name, arr in state.extras.items():
                arr[has] = keep.extras[name][old[has]]
        self.state = state
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(state, self._tracker_config)
        else:  # running events go on over the devices that stay (matched by id)
            for tracker in self._dispatcher.replace_fleet(state):
                log.warning(
                    "event %s failed: its scope %s is not in the new fleet",
                    tracker.event.id,
                    tracker.event.scope,
                )
                self.retire(tracker)
        if self.plans is not None:
            self.plans.replace_fleet(state)
        self.link.update_fleet(spec)  # the link screens devices against the fleet
        self.metrics.devices_total.set(state.n)
        if self.gridcode is not None and push:
            self.push_settings(spec)

    async def push_settings_async(self, spec: FleetSpec) -> None:
        """:meth:`push_settings` with the items built in a worker thread (a fleet import)."""
        assert self.gridcode is not None
        try:
            await self.gridcode.push_async(spec)
        except Exception:  # the fleet itself was valid: settings must not block it
            log.exception("grid-code settings not pushed")

    def push_settings(self, spec: FleetSpec) -> None:
        """Send the fleet's changed grid-code settings; a failure is logged, never fatal."""
        assert self.gridcode is not None
        try:
            self.gridcode.push(spec)
        except Exception:  # the fleet itself was valid: settings must not block it
            log.exception("grid-code settings not pushed")

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher: every live event over the current fleet."""
        assert self._dispatcher is not None, "set_fleet runs in __init__"
        return self._dispatcher

    def tracker(self, event_id: str) -> EventTracker:
        """The tracker of a live or recently finished event (NotFoundError if neither)."""
        tracker = self.dispatcher.trackers.get(event_id) or self.finished.get(event_id)
        if tracker is None:
            raise NotFoundError(f"no event {clip(event_id)!r}: list events at /api/v1/events")
        return tracker

    def retire(self, tracker: EventTracker) -> None:
        """Record a finished event's status and figures; keep only the latest few in memory."""
        self.record_status(tracker)
        self._status.pop(tracker.event.id, None)
        self.finished[tracker.event.id] = tracker
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)

    def track(self, event: Event) -> None:
        """Start tracking ``event``; the next cycle runs at once."""
        self.dispatcher.add(event)
        self._status[event.id] = event.status
        self._wake.set()  # act on it now, not at the next tick of the loop

    # ------------------------------------------------------------------ one cycle
    def resume(self) -> list[str]:
        """Take up the events the store holds as scheduled or active (after a restart)."""
        resumed = []
        if self.plans is not None:
            self.plans.resume(self.clock())
        for event in self.store.active_events(self.clock()):
            if event.id not in self.dispatcher.trackers:
                try:
                    tracker = self.dispatcher.add(event)
                except ValueError as e:  # e.g. it now clashes with an event resumed first
                    log.error("cannot resume event %s: %s", event.id, e)
                    continue
                self._status[event.id] = event.status
                self._restore(tracker)
                resumed.append(event.id)
        if resumed:
            log.warning("resumed %d event(s) from the store: %s", len(resumed), ", ".join(resumed))
        return resumed

    def _restore(self, tracker: EventTracker) -> None:
        """Give a resumed event back its samples and command count from before the restart."""
        ev_id = tracker.event.id
        samples = self.store.event_samples(ev_id)
        tracker.samples_ts[:0] = epoch_seconds(samples["ts"]).tolist()
        tracker.samples_delivered[:0] = samples["delivered_kw"].astype(float).tolist()
        tracker.commands_sent += self.store.command_counts([ev_id]).get(ev_id, 0)

    def cycle(self) -> None:
        """One turn of the loop (synchronous; fast: arrays only, I/O is queued)."""
        began = time.perf_counter()
        now = self.clock()
        st, m = self.state, self.metrics
        for readings in self.link.receive():
            result = st.apply(readings)
            m.readings.labels("applied").inc(result.applied)
            m.readings.labels("unknown").inc(result.unknown)
            m.readings.labels("stale").inc(result.stale)
            if self.write_telemetry:
                self.writer.telemetry(readings)
        report = self.link.take_report()
        if not self.leadership.leading:  # standing by: warm state, no command, no record
            st.mark_stale(now, self.settings.stale_after_s)
            for observe in self.observers:
                observe(now)
            m.cycle.observe(time.perf_counter() - began)
            return
        self._take_report(report, now)
        st.mark_stale(now, self.settings.stale_after_s)
        if self.plans is not None:
            self.plans.tick(now)
            self.dispatcher.set_planned(self.plans.planned_kw(now))
        for batch in self.dispatcher.step(now):
            self.send(batch)
        for tracker in self.dispatcher.finished:
            self.retire(tracker)
        for tracker in self.dispatcher.trackers.values():
            self.record_status(tracker)
            if (
                tracker.event.status is EventStatus.ACTIVE
                and tracker.samples_ts
                and (tracker.samples_ts[-1] == now)
            ):
                ev = tracker.event
                delivered = tracker.samples_delivered[-1]
                self.writer.op(
                    "samples",
                    partial(
                        self.store.save_event_samples,
                        ev.id,
                        np.array([now]),
                        np.array([ev.target_kw]),
                        np.array([delivered]),
                    ),
                    {"event": ev.id, "ts": now, "delivered_kw": delivered},
                )
        for observe in self.observers:
            observe(now)
        for observe in self.leader_observers:
            observe(now)
        m.cycle.observe(time.perf_counter() - began)

    def send(self, batch: CommandBatch) -> None:
        """Send commands (stamped with the leader's epoch) and queue their record."""
        epoch = self.leadership.epoch
        if epoch is not None:
            batch = replace(batch, epoch=epoch)
        self.link.send(batch)
        self.metrics.commands.inc(len(batch))
        self.writer.op(
            "commands",
            lambda: self.store.save_commands(batch),
            {"event": batch.event_id, "issued_at": batch.issued_at, "commands": len(batch)},
        )

    def record_status(self, tracker: EventTracker) -> None:
        """Queue the event's new status (and its performance once final), if it changed."""
        ev = tracker.event
        if self._status.get(ev.id) is ev.status:
            return
        self._status[ev.id] = ev.status
        status = ev.status
        self.writer.op(
            "event status",
            lambda: self.store.set_event_status(ev.id, status),
            {"event": ev.id, "status": status.value},
        )
        if status.final:
            perf = tracker.performance().as_dict()
            self.writer.op(
                "performance",
                lambda: self.store.save_event_performance(ev.id, perf),
                {"event": ev.id, **perf},
            )
        log.info("event %s is %s", ev.id, status.value)

    def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None) -> None:
        """Queue an audit record, stamped now."""
        ts = self.clock()
        self.writer.op(
            "audit",
            lambda: self.store.audit(actor, action, subject, detail, ts=ts),
            {"ts": ts, "actor": actor, "action": action, "subject": subject, "detail": detail},
        )

    def _take_report(self, report: LinkReport, now: float) -> None:
        """Counters, command acks and gateway statuses the link gathered since last cycle."""
        m = self.metrics
        for reason, n in report.rejected.items():
            if n:
                m.rejected.labels(reason).inc(n)
        m.messages.inc(report.messages)
        if self.gridcode is not None:
            self.gridcode.take_report(report, now)
        acks, expired = report.acks, report.expired
        if self.plans is not None:  # schedules' acks are the plan executor's
            acks = self.plans.take_acks(acks, now)
            expired = self.plans.take_expired(expired)
        by_status: dict[tuple[str, str | None], list[str]] = {}
        for a in acks:
            by_status.setdefault((a.status, a.reason), []).append(a.command_id)
            m.acks.labels(a.status).inc()
        for (verdict, why), command_ids in by_status.items():
            self.writer.op(
                "acks",
                partial(self.store.set_command_status, command_ids, verdict, why),
                {"status": verdict, "reason": why, "commands": command_ids[:100]},
            )
        if expired:  # nobody acknowledged them before valid_until: not "sent" forever
            self.writer.op(
                "expired commands",
                partial(self.store.set_command_status, expired, "expired", None),
                {"status": "expired", "commands": expired[:100]},
            )
        if report.statuses:
            gateways = self.spec.all_devices()[["id", "gateway_id"]]
            for s in report.statuses:
                if s.status == "offline":  # its devices are offline now, not at the timeout
                    behind = gateways["id"][gateways["gateway_id"] == s.gateway].to_numpy(object)
                    if len(behind):
                        idx = self.state.indices(behind)
                        self.state.online[idx] = False
            seen = sorted({s.gateway for s in report.statuses})
            self.writer.op(
                "gateways seen",
                partial(self.store.set_gateway_seen, seen, now),
                {"ts": now, "gateways": seen[:100]},
            )

    # ------------------------------------------------------------------ leadership
    def take_over(self, start: Callable[[], object]) -> None:
        """Begin a term as leader (blocking: reads the store): seq numbers, events, plans.

        Each device's command ``seq`` goes on above the highest the store holds (and above
        the clock in ms, as always), so gateways see no (device, seq) twice across leaders.
        """
        stored = self.store.max_command_seq()
        if stored:
            idx = self.state.indices(np.asarray(list(stored), dtype=object))
            seq = np.fromiter(stored.values(), np.int64, len(stored))
            known = idx >= 0
            d = self.dispatcher
            d.seq[idx[known]] = np.maximum(d.seq[idx[known]], seq[known])
        start()

    def demote(self) -> None:
        """Forget the term's events and plans (another process leads them now)."""
        self._dispatcher = None
        self._status.clear()
        self.set_fleet(self.spec, keep=self.state)
        self.plans = PlanExecutor(
            self.state, self.link, self.clock, store=self.store, writer=self.writer
        )
        self.plans.epoch = self.leadership.fence_epoch

    async def _follow_leadership(self, start: Callable[[], object]) -> None:
        """Take over when this process has won the lock; stand by when it has lost it."""
        lead = self.leadership
        epoch = lead.epoch if lead.leading else None
        if epoch is not None and epoch != self._led_epoch:
            if self._led_epoch is not None or self.dispatcher.trackers:
                self.demote()  # an earlier term's events are stale: read them afresh
            began = time.monotonic()
            await asyncio.to_thread(self.take_over, start)
            self._led_epoch = epoch
            log.warning("took over as leader (epoch %d) in %.2f s", epoch, time.monotonic() - began)
        elif epoch is None and self._led_epoch is not None:
            log.error("stopped commanding: epoch %d is no longer the leader's", self._led_epoch)
            self._led_epoch = None
            self.demote()

    # ------------------------------------------------------------------ running
    async def run(self, start: Callable[[], object] | None = None) -> None:
        """Run the cycles and the store writer until :meth:`stop`.

        ``start`` (default :meth:`resume`) runs first, in a thread: what to take up from
        the store. In an elected role it runs instead each time this process takes over.
        """
        start = start or self.resume
        elected = self.leadership.elected
        if not elected:
            await asyncio.to_thread(start)
        self._writing = True  # before the task starts: a stop in its first turn must hold
        writer = asyncio.create_task(self._write_loop())
        settings = asyncio.create_task(self._settings_loop())
        interval = self.settings.control_interval_s
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    if elected:
                        await self._follow_leadership(start)
                    self.cycle()
                except Exception:  # one bad cycle must not stop the service: skip it
                    self.metrics.cycle_failures.inc()
                    log.exception("control cycle failed; skipped, the next one runs as usual")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken(), interval - (self.clock() % interval))
        finally:
            self._writing = False
            await settings
            await writer  # let the flush in flight finish: a cancelled thread goes on running
            await asyncio.to_thread(self.writer.flush)

    def stop(self) -> None:
        """Ask :meth:`run` to finish its cycle and return."""
        self._stopping.set()
        self._wake.set()

    async def _woken(self) -> None:
        """Return when stopping, or when something wants a cycle now (a new event)."""
        await self._wake.wait()

    async def _settings_loop(self) -> None:
        """Send queued grid-code settings a step at a time, the cycles running in between.

        A push to a large fleet is queued (``SettingsPusher.push``); each step takes about
        ``step_s`` of the event loop, so a cycle due waits at most one step.
        """
        while self._writing:
            pusher = self.gridcode
            if pusher is not None and pusher.queued:
                try:
                    pusher.drain()
                except Exception:  # settings must not stop the service
                    log.exception("grid-code settings: a send step failed")
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.05)

    async def _write_loop(self) -> None:
        while self._writing:
            await asyncio.to_thread(self.writer.flush)
            for _ in range(max(int(self.settings.telemetry_flush_s / 0.1), 1)):
                if not self._writing:
                    return
                await asyncio.sleep(0.1)
