"""The event service: operators' events validated, scheduled, cancelled and described.

Creating an event checks everything a person could get wrong (target, window, scope)
before anything is tracked or written, so a refused request leaves no trace; the event
then goes to the control loop, which dispatches it from its start.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import pandas as pd

from gridflock.api.runtime import EventView
from gridflock.dispatch import EventTracker
from gridflock.domain.auth import Principal
from gridflock.domain.events import Event, EventSource, Scope
from gridflock.service.control import ControlLoop

__all__ = ["MAX_EVENT_S", "MAX_TARGET_KW", "EventService"]

MAX_EVENT_S = 7 * 86400.0
MAX_TARGET_KW = 1e7


class EventService:
    """Events as the API asks for them, over the control loop's dispatcher."""

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop

    def create(
        self,
        target_kw: float,
        start: float | None,
        duration_s: float,
        scope: Scope,
        principal: Principal,
    ) -> Event:
        """Validate and schedule an event; it is tracked from its start."""
        now = self.loop.clock()
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
        self.loop.state.scope_mask(scope)  # ValueError names an unknown node or tag
        event = Event(
            f"ev-{uuid.uuid4().hex[:12]}",
            float(target_kw),
            max(start, now - 60),
            start + duration_s,
            scope,
            EventSource.OPERATOR,
            created_by=principal.label,
        )
        self.loop.track(event)
        self.loop.writer.op("event", lambda: self.loop.store.save_event(event))
        self.loop.audit(
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

    def cancel(self, event_id: str, principal: Principal) -> Event:
        """Cancel and release the event's devices."""
        tracker = self.loop.tracker(event_id)
        if tracker.event.status.final:
            raise ValueError(f"event {event_id} is already {tracker.event.status.value}")
        batch = tracker.cancel(self.loop.clock())
        if batch is not None:
            self.loop.send(batch)
        self.loop.audit(principal.label, "event.cancel", event_id, None)
        self.loop.record_status(tracker)
        return tracker.event

    def views(self) -> list[EventView]:
        """Every event this service tracks, newest first."""
        trackers = sorted(self.loop.dispatcher.trackers.values(), key=lambda t: -t.event.start)
        return [view(t) for t in trackers]

    def view(self, event_id: str) -> EventView:
        """One event with its figures."""
        return view(self.loop.tracker(event_id))

    def series(self, event_id: str) -> pd.DataFrame:
        """Target against delivered, one row per control cycle."""
        t = self.loop.tracker(event_id)
        ts = np.asarray(t.samples_ts)
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(ts, unit="s", utc=True),
                "target_kw": np.full(len(ts), t.event.target_kw),
                "delivered_kw": np.asarray(t.samples_delivered),
            }
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
