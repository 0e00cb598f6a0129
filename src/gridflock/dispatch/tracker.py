"""One event's closed loop: its figures, its non-responders and its control law.

The :class:`~gridflock.dispatch.dispatcher.Dispatcher` owns what is per device (who holds
each device, its setpoint, baseline, sequence number) and allocates for every event in
one pass; an :class:`EventTracker` keeps what is per event: which devices its scope
allows, which it dropped as non-responders, its correction and its measured samples.
Every ``interval_s`` the dispatcher hands each active tracker what its own devices
delivered; :meth:`EventTracker.judge` drops devices whose response lags their command
past a grace period, and :meth:`EventTracker.control` turns the remaining error into
the kW the event asks of the allocator next (the control law, kept in one place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gridflock.domain.events import Event, EventStatus
from gridflock.domain.messages import BoolArray, CommandBatch, FloatArray
from gridflock.fleet.state import FleetState
from gridflock.mv.performance import EventPerformance, event_performance

if TYPE_CHECKING:
    from gridflock.dispatch.dispatcher import Dispatcher

__all__ = ["DEFAULT_TTL_S", "EventTracker", "TrackerConfig"]

#: Default command lifetime [s]: a silent service loses its hold on the fleet within it.
DEFAULT_TTL_S = 30.0


@dataclass(frozen=True)
class TrackerConfig:
    """Tuning of the loop; times in seconds, powers in kW.

    ``command_ttl_s`` is how long a command holds a device before it falls back to its
    own control (the fail-safe when the service falls silent); by default 30 s, or three
    control intervals where those are longer (a simulation with 1-minute steps). While
    an event holds a device its command is renewed once less than ``renew_before_s`` of
    it is left (default: a third of the lifetime, at least two control intervals).
    ``claim_margin`` is the spare an event claims above what it asks, as a fraction, so
    a device that falls short is covered without waiting for a new claim.
    """

    interval_s: float = 10.0
    command_ttl_s: float | None = None
    renew_before_s: float | None = None
    grace_s: float = 90.0
    response_ratio: float = 0.5
    min_judged_kw: float = 0.2
    deadband_kw: float = 0.05
    gain: float = 0.3
    max_correction: float = 0.5
    merit_order: bool = False
    release_spread_s: float = 1800.0
    claim_margin: float = 0.25

    def __post_init__(self) -> None:
        if self.command_ttl_s is not None and not self.command_ttl_s > 2 * self.interval_s:
            raise ValueError(
                f"command_ttl_s ({self.command_ttl_s:g} s) must exceed two control intervals "
                f"({2 * self.interval_s:g} s), or commands lapse between renewals: raise the "
                "command lifetime or shorten the control interval"
            )

    @property
    def ttl_s(self) -> float:
        """The command lifetime in effect [s]."""
        if self.command_ttl_s is not None:
            return self.command_ttl_s
        return max(DEFAULT_TTL_S, 3 * self.interval_s)

    @property
    def renew_s(self) -> float:
        """Renew a held device's command once less than this is left of it [s]."""
        if self.renew_before_s is not None:
            return self.renew_before_s
        return min(max(self.ttl_s / 3, 2 * self.interval_s), self.ttl_s)


class EventTracker:
    """The per-event part of the loop; created by :meth:`Dispatcher.add`."""

    def __init__(
        self, event: Event, state: FleetState, config: TrackerConfig, code: int, owner: Dispatcher
    ) -> None:
        self.event = event
        self.config = config
        self.code = code
        """The event's number in the dispatcher's per-device ``held_by`` array."""
        self._dispatcher = owner
        self.scope: BoolArray = state.scope_mask(event.scope) & state.controllable()
        self.excluded: BoolArray = np.zeros(state.n, bool)
        self.correction_kw = 0.0
        self.last_allocation_kw = 0.0
        self.available_kw = 0.0
        self.shortfall_kw = 0.0
        self.samples_ts: list[float] = []
        self.samples_delivered: list[float] = []
        self.commands_sent = 0
        self._dropped: int | None = None  # non-responders, counted when the event leaves

    # ------------------------------------------------------------------ state
    @property
    def up(self) -> bool:
        """Whether the event asks for up (more export / less import)."""
        return self.event.up

    @property
    def sign(self) -> float:
        """+1 for an up event, -1 for down."""
        return 1.0 if self.up else -1.0

    @property
    def dispatched(self) -> BoolArray:
        """Devices this event holds now."""
        out: BoolArray = self._dispatcher.held_by == self.code
        return out

    @property
    def touched(self) -> BoolArray:
        """Devices whose response counts for this event (held now, or released by it)."""
        out: BoolArray = self._dispatcher.owner == self.code
        return out

    @property
    def non_responders(self) -> int:
        """Devices dropped for not following their command."""
        if self._dropped is not None:
            return self._dropped
        return int(self.excluded.sum())

    def retire(self) -> None:
        """The event left the dispatcher: keep its figures, free its per-device arrays."""
        self._dropped = int(self.excluded.sum())
        self.scope = np.zeros(0, bool)
        self.excluded = np.zeros(0, bool)

    def delivered_kw(self) -> float:
        """Measured response of this event's own devices against their baselines [kW]."""
        return self._dispatcher.delivered_kw(self)

    def performance(self) -> EventPerformance:
        """The event's figures from its own measurements."""
        return event_performance(
            np.array(self.samples_ts),
            np.array(self.samples_delivered),
            self.event.target_kw,
            self.event.start,
            self.event.end,
            self.non_responders,
        )

    def cancel(self, now: float) -> CommandBatch | None:
        """Cancel the event and release its devices (through the dispatcher)."""
        return self._dispatcher.cancel(self.event.id, now)

    @property
    def live(self) -> bool:
        """Whether the event is still scheduled or active."""
        return self.event.status in (EventStatus.SCHEDULED, EventStatus.ACTIVE)

    # ------------------------------------------------------------------ the control law
    def judge(self, now: float, p_kw: FloatArray, online: BoolArray, held: BoolArray) -> None:
        """Drop held devices that lag their command past the grace period.

        Judged are devices held for at least ``grace_s`` under a command still valid,
        with a change large enough to tell from noise; a device short of its setpoint by
        more than ``response_ratio`` of its change, or offline, is excluded from now on.
        """
        cfg, d = self.config, self._dispatcher
        judged = (
            held
            & (now - d.since >= cfg.grace_s)
            & (d.valid_until > now)
            & (np.abs(d.delta_kw) >= cfg.min_judged_kw)
        )
        missing = self.sign * (d.sent - p_kw)  # > 0: short of the setpoint
        lagging = judged & ((missing > cfg.response_ratio * np.abs(d.delta_kw)) | ~online)
        self.excluded |= lagging

    def control(self, now: float, delivered_kw: float) -> None:
        """Integrate the error between target and delivered into a bounded correction."""
        cfg, ev = self.config, self.event
        if now - ev.start < cfg.grace_s:
            return
        error = abs(ev.target_kw) - self.sign * delivered_kw
        bound = cfg.max_correction * abs(ev.target_kw)
        self.correction_kw = float(np.clip(self.correction_kw + cfg.gain * error, -bound, bound))

    def want_kw(self) -> float:
        """What the event asks of the allocator this cycle [kW, magnitude]."""
        return max(abs(self.event.target_kw) + self.correction_kw, 0.0)
