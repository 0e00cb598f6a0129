"""The event service: operators' events validated, scheduled, cancelled and described.

Creating an event checks everything a person could get wrong (target, window, scope)
before anything is tracked or written, so a refused request leaves no trace; the event
then goes to the control loop, which dispatches it from its start.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from gridflock.api.runtime import EventView
from gridflock.dispatch import EventTracker
from gridflock.domain.auth import Principal
from gridflock.domain.errors import ConflictError, InvalidError, UnavailableError
from gridflock.domain.events import (
    DEFAULT_PRIORITY,
    MAX_TARGET_KW,
    AdmissionError,
    Event,
    EventSource,
    EventStatus,
    Scope,
)
from gridflock.mv.performance import event_performance
from gridflock.service.control import ControlLoop, epoch_seconds

__all__ = [
    "EARLIEST_EVENT_TS",
    "MAX_EVENT_S",
    "MAX_LEAD_S",
    "MAX_TARGET_KW",
    "EventService",
    "check_event_time",
]

MAX_EVENT_S = 7 * 86400.0
#: No event starts before this (2000-01-01T00:00:00Z) ...
EARLIEST_EVENT_TS = 946_684_800.0
#: ... or more than a year ahead of the service clock: times every database can hold.
MAX_LEAD_S = 366 * 86400.0
#: Finished events taken up from the store at start (older ones answer by id).
MAX_PAST_EVENTS = 200
_FINAL = [s for s in EventStatus if s.final]


def check_event_time(start: float, now: float) -> None:
    """Refuse a start the store could not hold or no one means (InvalidError naming the bounds).

    Checked before anything is tracked or written, so a refused event leaves no trace.
    """
    latest = now + MAX_LEAD_S
    if not (math.isfinite(start) and EARLIEST_EVENT_TS <= start <= latest):
        raise InvalidError(
            f"start must be between {_iso(EARLIEST_EVENT_TS)} and one year from now "
            f"({_iso(latest)}), got {_iso(start)}"
        )


def _iso(ts: float) -> str:
    """``ts`` as ISO 8601 UTC, or the raw number if no calendar date can show it."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return repr(ts)


@dataclass(frozen=True)
class _Past:
    """A finished event from before a restart: its view and its samples."""

    view: EventView
    ts: npt.NDArray[np.float64]
    delivered: npt.NDArray[np.float64]


class EventService:
    """Events as the API asks for them, over the control loop's dispatcher and the store."""

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop
        self._past: dict[str, _Past] = {}

    def _must_lead(self, what: str) -> None:
        """Only the leader changes events (any source: operator, autopilot, OpenADR)."""
        if not self.loop.leadership.leading:
            raise UnavailableError(
                f"this process is a standby and cannot {what}: the leader does "
                "(`gridflock cluster status` shows it); retry there or after a failover"
            )

    def create(
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

        ``source`` says where the request came from (an operator, a schedule, ...). A
        target above what the scope can still deliver over the window (net of the other
        events) is refused with :class:`AdmissionError` stating the kW available, unless
        ``allow_partial``; an event in the opposite direction of one sharing its devices
        and time is refused with :class:`~gridflock.domain.events.EventConflictError`.
        A standby (role control, not leading) refuses with :class:`UnavailableError`.
        """
        self._must_lead("create events")
        now = self.loop.clock()
        if not math.isfinite(target_kw) or target_kw == 0:
            raise InvalidError(
                "target_kw must be a non-zero number of kW: positive asks the "
                "fleet for more export (up), negative to absorb (down)"
            )
        if abs(target_kw) > MAX_TARGET_KW:
            raise InvalidError(f"target_kw must be within ±{MAX_TARGET_KW:,.0f} kW")
        if not math.isfinite(duration_s) or not 1 <= duration_s <= MAX_EVENT_S:
            raise InvalidError(
                "duration_s must be more than 0 (at least 1 s) and at most 7 days (604800 s)"
            )
        start = now if start is None else start
        check_event_time(start, now)
        if start + duration_s <= now:
            raise InvalidError(
                "the event would already be over: give a start in the future "
                "or leave it out to start now"
            )
        self.loop.state.scope_mask(scope)  # InvalidError names an unknown node or tag
        event = Event(
            f"ev-{uuid.uuid4().hex[:12]}",
            float(target_kw),
            max(start, now - 60),
            start + duration_s,
            scope,
            source,
            created_by=principal.label,
            priority=priority,
        )
        dispatcher = self.loop.dispatcher
        dispatcher.check(event)  # EventConflictError: opposite ways over shared devices
        available = dispatcher.available_kw(scope, event.start, event.end, event.up, now)
        if abs(target_kw) > abs(available) + 1e-6 and not allow_partial:
            raise AdmissionError(_short(event, available), available)
        self.loop.track(event)
        self.loop.writer.op("event", lambda: self.loop.store.save_event(event), event_detail(event))
        self.loop.audit(
            principal.label,
            "event.create",
            event.id,
            {
                "target_kw": event.target_kw,
                "start": event.start,
                "end": event.end,
                "scope": str(scope),
                "source": source.value,
                "priority": event.priority,
                "allow_partial": allow_partial,
            },
        )
        return event

    def available_kw(self, scope: Scope, start: float | None, duration_s: float, up: bool) -> float:
        """What an event over ``scope`` and the window could still get [kW, signed]."""
        now = self.loop.clock()
        if not math.isfinite(duration_s) or not 1 <= duration_s <= MAX_EVENT_S:
            raise InvalidError(
                "duration_s must be more than 0 (at least 1 s) and at most 7 days (604800 s)"
            )
        start = now if start is None else start
        check_event_time(start, now)
        return self.loop.dispatcher.available_kw(
            scope, max(start, now - 60), start + duration_s, up, now
        )

    def cancel(self, event_id: str, principal: Principal) -> Event:
        """Cancel and release the event's devices."""
        self._must_lead("cancel events")
        known = self.loop.dispatcher.trackers.keys() | self.loop.finished.keys()
        if event_id not in known:  # finished before a restart?
            past = self._stored(event_id).view.event  # NotFoundError if unknown anywhere
            if past.status.final:
                raise ConflictError(f"event {event_id} is already {past.status.value}")
            raise ConflictError(
                f"event {event_id} ({past.status.value}) ended while the service was "
                "stopped: there is nothing left to cancel"
            )
        tracker = self.loop.tracker(event_id)
        if tracker.event.status.final:
            raise ConflictError(f"event {event_id} is already {tracker.event.status.value}")
        batch = self.loop.dispatcher.cancel(event_id, self.loop.clock())
        if batch is not None:
            self.loop.send(batch)
        self.loop.audit(principal.label, "event.cancel", event_id, None)
        self.loop.retire(tracker)
        return tracker.event

    def views(self) -> list[EventView]:
        """The live events, the latest finished ones and those taken up at start; newest first."""
        trackers = {**self.loop.finished, **self.loop.dispatcher.trackers}
        out = [view(t) for t in trackers.values()]
        out += [p.view for i, p in self._past.items() if i not in trackers]
        return sorted(out, key=lambda v: -v.event.start)

    def view(self, event_id: str) -> EventView:
        """One event with its figures (a finished one from before a restart, from the store)."""
        tracker = self._tracked(event_id)
        if tracker is not None:
            return view(tracker)
        return self._stored(event_id).view

    def _tracked(self, event_id: str) -> EventTracker | None:
        """The tracker of a live or recently finished event, if the service holds it."""
        return self.loop.dispatcher.trackers.get(event_id) or self.loop.finished.get(event_id)

    def series(self, event_id: str) -> pd.DataFrame:
        """Target against delivered, one row per control cycle."""
        t = self._tracked(event_id)
        if t is not None:
            ts = np.asarray(t.samples_ts, dtype=float)
            delivered = np.asarray(t.samples_delivered, dtype=float)
            target = t.event.target_kw
        else:
            past = self._stored(event_id)
            ts, delivered, target = past.ts, past.delivered, past.view.event.target_kw
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(ts, unit="s", utc=True),
                "target_kw": np.full(len(ts), target),
                "delivered_kw": delivered,
            }
        )

    # ------------------------------------------------------------------ after a restart
    def load_past(self) -> int:
        """Take up the latest finished events from the store, so they list after a restart.

        Up to ``MAX_PAST_EVENTS``; older ones still answer by id (read from the store on
        demand). Returns how many were taken up.
        """
        store = self.loop.store
        events = store.list_events(limit=MAX_PAST_EVENTS, status=_FINAL, newest_first=True)
        held = self.loop.dispatcher.trackers.keys() | self.loop.finished.keys()
        events = [e for e in events if e.id not in held]
        counts = store.command_counts([e.id for e in events])
        for event in events:
            self._past[event.id] = self._read(event, counts.get(event.id, 0))
        return len(events)

    def _stored(self, event_id: str) -> _Past:
        """A past event, taken up at start or read from the store now (else NotFoundError)."""
        past = self._past.get(event_id)
        if past is None:
            store = self.loop.store
            event = store.get_event(event_id)  # UnknownEventError (NotFoundError): 404
            past = self._read(event, store.command_counts([event_id]).get(event_id, 0))
            if event.status.final:
                self._past[event_id] = past
        return past

    def _read(self, event: Event, commands_sent: int) -> _Past:
        """An event's figures from its stored samples and performance."""
        store = self.loop.store
        samples = store.event_samples(event.id)
        ts = epoch_seconds(samples["ts"])
        delivered = samples["delivered_kw"].to_numpy(dtype=float)
        stored = store.event_performance(event.id) or {}
        perf = event_performance(
            ts,
            delivered,
            event.target_kw,
            event.start,
            event.end,
            int(stored.get("non_responders") or 0),
        ).as_dict()
        perf.update({k: v for k, v in stored.items() if k in perf})  # the tracker's own word
        measured = bool(perf["samples"])
        return _Past(
            EventView(
                event=event,
                delivered_kw=float(delivered[-1]) if len(delivered) else None,
                delivered_pct=_float(perf["delivered_pct"]) if measured else None,
                tracking_rmse_pct=_float(perf["tracking_rmse_pct"]) if measured else None,
                time_to_90pct_s=_float(perf["time_to_90pct_s"]),
                non_responders=int(perf["non_responders"] or 0),
                shortfall_kw=0.0,
                commands_sent=commands_sent,
            ),
            ts,
            delivered,
        )


def view(t: EventTracker) -> EventView:
    """An event's live figures from its tracker."""
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


def event_detail(event: Event) -> dict[str, Any]:
    """The event as JSON-able fields (what its dead letter would show)."""
    return {
        "id": event.id,
        "target_kw": event.target_kw,
        "start": event.start,
        "end": event.end,
        "scope": str(event.scope),
        "source": event.source.value,
        "status": event.status.value,
        "created_by": event.created_by,
        "priority": event.priority,
    }


def _float(x: float | int | None) -> float | None:
    return None if x is None else float(x)


def _short(event: Event, available: float) -> str:
    way = "up" if event.up else "down"
    return (
        f"{event.scope} can deliver {abs(available):,.1f} kW {way} over this window "
        f"(within every limit, net of the events it overlaps), not {abs(event.target_kw):,.1f} "
        'kW: ask for at most that, or send "allow_partial": true to accept what it can give'
    )
