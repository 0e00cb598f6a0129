"""One event's closed loop: its figures, its non-responders and its control law.

The :class:`~gridflock.dispatch.dispatcher.Dispatcher` owns what is per device (who holds
each device, its setpoint, baseline, sequence number) and allocates for every event in
one pass; an :class:`EventTracker` keeps what is per event: which devices its scope
allows, which it dropped as non-responders, its correction and its measured samples.
Every ``interval_s`` the dispatcher hands each active tracker what its own devices
delivered; :meth:`EventTracker.judge` drops devices whose response lags their command
past a grace period, and :meth:`EventTracker.control` turns the measurements into the
kW the event asks of the allocator next (the control law, kept in one place):

* **Feed-forward of what is measured to be missing.** The event asks for its target
  plus the *slip* of the devices it holds (their commanded change minus their measured
  response, smoothed over intervals), minus what the devices it no longer holds
  (released or dropped) still deliver, plus the forced moves of held devices whose
  power band no longer reaches their baseline (a car that must charge, a tank that must
  heat: known before allocating, so asked of the others at once). Each term is
  measured anew every interval, so none of them can wind up.
* **A small integral** removes the bias the feed-forward leaves; it waits out the first
  responses (``grace_s``) and is frozen while the allocation is saturated (anti-windup).
* **Hold, don't release.** A device the event has moved stays under its command until
  the event ends, at least at its baseline (``hold``): released mid-event, a deferred
  load would catch up inside the window and undo what the others deliver. Every
  setpoint is clipped to the device's power band for the rest of the window on the
  side the event pushes towards (:meth:`EventTracker.within_band`), so what a device
  is asked to hold is what it can keep.
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
    ``gain`` is the integral gain on the remaining error (per interval), bounded to
    ``max_correction`` of the target; ``slip_smoothing`` is the weight of the newest slip
    measurement in its running estimate (1 trusts the last interval alone and passes its
    measurement noise on in full); ``hold`` keeps devices an event has moved under its
    command until the event ends instead of releasing them mid-event; ``lead_s`` starts
    serving an event that long before its window (a ramp ahead, so the window starts
    with the devices that do not follow already found and covered). ``envelope_hold``
    brings sites and nodes that break an envelope in force back inside it with the
    devices no event holds (``dispatch.envelope_hold``).
    """

    interval_s: float = 10.0
    command_ttl_s: float | None = None
    renew_before_s: float | None = None
    grace_s: float = 90.0
    response_ratio: float = 0.5
    min_judged_kw: float = 0.2
    deadband_kw: float = 0.05
    gain: float = 0.2
    slip_smoothing: float = 0.5
    max_correction: float = 0.5
    hold: bool = True
    merit_order: bool = False
    release_spread_s: float = 1800.0
    claim_margin: float = 0.25
    lead_s: float = 0.0
    envelope_hold: bool = True

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
        self.slip_kw = 0.0
        """Held devices' commanded change minus their response, smoothed [kW, event sign]."""
        self.released_kw = 0.0
        """What the event's devices it no longer holds deliver [kW, event sign]."""
        self.saturated = False
        """Whether the last allocation gave less than the event asked (all it could)."""
        self.slip_each_kw: FloatArray = np.full(state.n, np.nan)
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
        self.slip_each_kw = np.zeros(0)

    def delivered_kw(self, now: float | None = None) -> float:
        """Measured response of this event's own devices against their baselines [kW].

        With ``now``, silent devices whose command has lapsed count at their baseline.
        """
        return self._dispatcher.delivered_kw(self, now)

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

    def measure_slip(
        self, slip_each_kw: FloatArray, keep: BoolArray, delta_kw: FloatArray
    ) -> float:
        """Smoothed slip of the devices ``keep`` [kW, generator sign].

        ``slip_each_kw`` is each device's commanded change minus its measured response in
        the last interval. Each device's slip is smoothed on its own (weight
        ``slip_smoothing`` for the newest interval), so a device dropped or released takes
        its share out of the estimate at once. In a device's first interval under the
        event its command was still landing (latency): a device that came at least
        ``response_ratio`` of the way counts as following (slip 0), one that did not
        counts in full (it is likely not to follow at all).
        """
        cfg = self.config
        known = np.isfinite(self.slip_each_kw)
        upd = keep & known
        self.slip_each_kw[upd] += cfg.slip_smoothing * (slip_each_kw[upd] - self.slip_each_kw[upd])
        new = keep & ~known
        landing = np.abs(slip_each_kw[new]) <= cfg.response_ratio * np.abs(delta_kw[new])
        self.slip_each_kw[new] = np.where(landing, 0.0, slip_each_kw[new])
        self.slip_each_kw[~keep] = np.nan
        return float(self.slip_each_kw[keep].sum())

    def control(self, now: float, delivered_kw: float, slip_kw: float, released_kw: float) -> None:
        """Update the law from one interval's measurements [kW, generator sign].

        ``slip_kw`` is the (smoothed, :meth:`measure_slip`) commanded change minus the
        response over the devices the event still holds, ``released_kw`` the response of
        its devices it no longer holds.
        """
        cfg, ev = self.config, self.event
        self.slip_kw = self.sign * slip_kw
        self.released_kw = self.sign * released_kw
        if now - ev.start < cfg.grace_s:
            return  # the first responses are still landing: nothing to integrate yet
        error = abs(ev.target_kw) - self.sign * delivered_kw
        if self.saturated and error > 0:
            return  # anti-windup: the fleet gives all it can; asking more only winds up
        bound = cfg.max_correction * abs(ev.target_kw)
        self.correction_kw = float(np.clip(self.correction_kw + cfg.gain * error, -bound, bound))

    def want_kw(self, forced_kw: float = 0.0) -> float:
        """What the event asks of the allocator this cycle [kW, magnitude].

        ``forced_kw`` (event sign, <= 0) is what held devices must move against the event
        this interval (:meth:`forced_kw`); the rest of the fleet is asked to cover it.
        """
        target = abs(self.event.target_kw)
        want = target - forced_kw + self.slip_kw - self.released_kw + self.correction_kw
        return float(np.clip(want, 0.0, (2.0 + self.config.max_correction) * target))

    def band_edge(self, floor_kw: FloatArray, ceiling_kw: FloatArray) -> FloatArray:
        """The edge of the power bands the event pushes towards: ceiling up, floor down."""
        return ceiling_kw if self.up else floor_kw

    def forced_kw(self, edge_kw: FloatArray, base_kw: FloatArray, held: BoolArray) -> float:
        """What ``held`` devices must move against the event to stay in band [kW, <= 0]."""
        gap = np.where(held & np.isfinite(edge_kw), self.sign * (edge_kw - base_kw), 0.0)
        return float(np.minimum(gap, 0.0).sum())

    def within_band(self, setpoint_kw: FloatArray, edge_kw: FloatArray) -> FloatArray:
        """Setpoints clipped to the band edge the event pushes towards (NaN: no band).

        Never past what the device can keep for the rest of the window; the other edge
        is the device's own business (its baseline may sit outside a band that only
        bounds what can be *held* that long).
        """
        if self.up:
            out: FloatArray = np.where(
                np.isfinite(edge_kw), np.minimum(setpoint_kw, edge_kw), setpoint_kw
            )
        else:
            out = np.where(np.isfinite(edge_kw), np.maximum(setpoint_kw, edge_kw), setpoint_kw)
        return out

    @staticmethod
    def quantise(setpoint_kw: FloatArray, p_min_kw: FloatArray) -> FloatArray:
        """Setpoints a device cannot run at, made runnable with their total kept [kW].

        A load with a minimum running power (``p_min_kw``, e.g. a charger's 6 A) asked to
        draw less than that runs at the minimum (or stops): the same fraction asked of
        many devices would then come out as one bias. Those in the dead zone are set to
        their minimum or to 0 instead, the ones asked for most (relative to their
        minimum) running first, so the group draws about what it was asked for; the
        same devices keep running from one interval to the next.
        """
        draw = -setpoint_kw
        dead = (p_min_kw > 0) & (draw > 1e-9) & (draw < p_min_kw - 1e-9)
        if not dead.any():
            return setpoint_kw
        idx = np.flatnonzero(dead)
        asked, p_min = draw[idx], p_min_kw[idx]
        order = np.argsort(-asked / p_min, kind="stable")
        run = np.cumsum(p_min[order]) - 0.5 * p_min[order] < asked.sum()
        out = setpoint_kw.copy()
        out[idx[order]] = np.where(run, -p_min[order], 0.0)
        return out
