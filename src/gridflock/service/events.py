"""The event service: operators' events validated, scheduled, cancelled and described.

Creating an event checks everything a person could get wrong (target, window, scope)
before anything is tracked or written, so a refused request leaves no trace; the event
then goes to the control loop, which dispatches it from its start.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import numpy as np
import pandas as pd

from gridflock.api.runtime import EventView
from gridflock.dispatch import EventTracker
from gridflock.domain.auth import Principal
from gridflock.domain.events import Event, EventSource, Scope
from gridflock.service.control import ControlLoop

__all__ = [
    "EARLIEST_EVENT_TS",
    "MAX_EVENT_S",
    "MAX_LEAD_S",
    "MAX_TARGET_KW",
    "EventService",
    "check_event_time",
]

MAX_EVENT_S = 7 * 86400.0
MAX_TARGET_KW = 1e7
#: No event starts before this (2000-01-01T00:00:00Z) ...
EARLIEST_EVENT_TS = 946_684_800.0
#: ... or more than a year ahead of the service clock: times every database can hold.
MAX_LEAD_S = 366 * 86400.0


def check_event_time(start: float, now: float) -> None:
    """Refuse a start the store could not hold or no one means (ValueError naming the bounds).

    Checked before anything is tracked or written, so a refused event leaves no trace.
    """
    latest = now + MAX_LEAD_S
    if not (math.isfinite(start) and EARLIEST_EVENT_TS <= start <= latest):
        raise ValueError(
            f"start must be between {_iso(EARLIEST_EVENT_TS)} and one year from now "
            f"({_iso(latest)}), got {_iso(start)}"
        )


def _iso(ts: float) -> str:
    """``ts`` as ISO 8601 UTC, or the raw number if no calendar date can show it."""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return repr(ts)


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
        check_event_time(start, now)
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
    }
