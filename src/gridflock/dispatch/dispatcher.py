"""Runs every event's tracker over one fleet and merges their commands."""

from __future__ import annotations

import numpy as np

from gridflock.dispatch.tracker import EventTracker, TrackerConfig
from gridflock.domain.events import Event
from gridflock.domain.messages import CommandBatch
from gridflock.fleet.state import FleetState

__all__ = ["Dispatcher"]


class Dispatcher:
    """Holds the trackers of all events; a device serves one event at a time.

    Events are served in the order they were added: an earlier event keeps the devices
    it holds, a later overlapping one allocates over the rest.
    """

    def __init__(self, state: FleetState, config: TrackerConfig | None = None) -> None:
        self.state = state
        self.config = config or TrackerConfig()
        self.trackers: dict[str, EventTracker] = {}

    def add(self, event: Event) -> EventTracker:
        """Start tracking ``event`` (validates its scope against the fleet)."""
        if event.id in self.trackers:
            raise ValueError(f"event {event.id} is already tracked")
        tracker = EventTracker(event, self.state, self.config)
        self.trackers[event.id] = tracker
        return tracker

    def cancel(self, event_id: str, now: float) -> CommandBatch | None:
        """Cancel one event; returns the release commands."""
        return self.trackers[event_id].cancel(now)

    def step(self, now: float) -> list[CommandBatch]:
        """Advance every tracker to ``now``; the commands to send, one batch per event."""
        busy = np.zeros(self.state.n, bool)
        out = []
        for tracker in self.trackers.values():
            batch = tracker.step(now, busy)
            if batch is not None:
                out.append(batch)
            busy |= tracker.dispatched
        return out
