"""The closed loop of one event: allocate, command, measure, judge, re-allocate.

Every ``interval_s`` the tracker measures the response of the devices it commanded
against their baselines and re-allocates. The control law (see docs/concepts.md,
"Tracking"):

* **Feed-forward.** The allocation asks for the target plus what the measurements say
  will be missing: the *slip* of the devices it holds (commanded change minus measured
  response, smoothed) and the response of devices it no longer commands (released,
  dropped), taken as persisting. Both are measured, not accumulated, so they cannot
  wind up; a small integral removes what remains, frozen while the fleet is saturated.
* **Hold, don't release.** A device the event has moved stays under command until the
  event ends, at least at its baseline, so a deferred load cannot catch up (rebound)
  inside the window; every setpoint is clipped to the device's power band for the rest
  of the window, so it holds what the device can keep (comfort, departure, reserve).
* **Non-responders.** A device that lags its setpoint past a grace period after the
  setpoint last moved (or went silent) is dropped; its share is re-allocated at once,
  because the slip is measured over the devices still held.

Only setpoints that moved by more than a deadband (or whose validity is about to lapse)
are sent again.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridflock.dispatch.allocate import allocate, limit_headroom
from gridflock.domain.events import Event, EventStatus
from gridflock.domain.messages import BoolArray, CommandBatch, FloatArray
from gridflock.fleet.flexibility import flexibility
from gridflock.fleet.state import FleetState
from gridflock.mv.performance import EventPerformance, event_performance

__all__ = ["EventTracker", "TrackerConfig"]


@dataclass(frozen=True)
class TrackerConfig:
    """Tuning of the loop; times in seconds, powers in kW.

    ``gain`` is the integral gain on the remaining error (per interval), bounded to
    ``max_correction`` of the target; ``slip_smoothing`` is the weight of the newest
    slip measurement in its running estimate (1 trusts the last interval alone, which
    passes measurement noise on in full); ``hold`` keeps devices the event has moved
    under command until the end instead of releasing them mid-event.
    """

    interval_s: float = 10.0
    command_ttl_s: float = 300.0
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


class EventTracker:
    """Drives one event over the fleet state; call :meth:`step` every interval."""

    def __init__(
        self, event: Event, state: FleetState, config: TrackerConfig | None = None
    ) -> None:
        self.event = event
        self.state = state
        self.config = config or TrackerConfig()
        n = state.n
        self.scope = state.scope_mask(event.scope) & state.controllable()
        self.excluded = np.zeros(n, bool)
        self.delta = np.zeros(n)
        self.sent = np.full(n, np.nan)
        self.valid_until = np.full(n, -np.inf)
        self.sent_at = np.full(n, np.nan)
        self.frozen_base = np.full(n, np.nan)
        self.touched = np.zeros(n, bool)
        self.correction_kw = 0.0
        self.slip_kw = 0.0
        self.released_kw = 0.0
        self._slip_known = False
        self._saturated = False
        self.last_allocation_kw = 0.0
        self.shortfall_kw = 0.0
        self.samples_ts: list[float] = []
        self.samples_delivered: list[float] = []
        self.commands_sent = 0

    # ------------------------------------------------------------------ state
    @property
    def up(self) -> bool:
        """Whether the event asks for up (more export / less import)."""
        return self.event.target_kw > 0

    @property
    def dispatched(self) -> BoolArray:
        """Devices currently holding a setpoint for this event."""
        out: BoolArray = np.isfinite(self.sent)
        return out

    @property
    def non_responders(self) -> int:
        """Devices dropped for not following their command."""
        return int(self.excluded.sum())

    def baseline(self) -> FloatArray:
        """Reported baselines, or the power a device had when first commanded."""
        st = self.state
        return np.where(
            np.isfinite(st.p_baseline_kw),
            st.p_baseline_kw,
            np.where(np.isfinite(self.frozen_base), self.frozen_base, st.p_kw),
        )

    def delivered_kw(self) -> float:
        """Measured response against baselines of every device the event commanded [kW].

        Devices released or dropped mid-event count too: a deferred load catching up
        after its release is part of what the event caused.
        """
        d = self.touched
        return float((self.state.p_kw[d] - self.baseline()[d]).sum())

    # ------------------------------------------------------------------ loop
    def step(self, now: float, busy: BoolArray | None = None) -> CommandBatch | None:
        """Advance the loop to ``now``; return the commands to send, if any.

        ``busy`` marks devices another event holds; they are left alone.
        """
        ev = self.event
        if ev.status.final or now < ev.start:
            return None
        if now >= ev.end:
            if ev.status is EventStatus.SCHEDULED:  # its whole window passed unserved
                ev.transition(EventStatus.FAILED)
                return None
            ev.transition(EventStatus.COMPLETED)
            return self._finish()
        if ev.status is EventStatus.SCHEDULED:
            if not self.scope.any():
                ev.transition(EventStatus.FAILED)
                return None
            ev.transition(EventStatus.ACTIVE)
        cfg = self.config
        sign = 1.0 if self.up else -1.0
        base = self.baseline()
        response = self.state.p_kw - base
        target = abs(ev.target_kw)
        if self.touched.any():
            delivered = float(response[self.touched].sum())
            self.samples_ts.append(now)
            self.samples_delivered.append(delivered)
            self._judge(now, sign)
            self._update_law(now, sign, response, target - sign * delivered)

        flex = flexibility(self.state, (ev.end - now) / 3600.0, now)
        mask = self.scope & ~self.excluded & self.state.online
        if busy is not None:
            mask &= ~busy
        # held devices whose band no longer reaches their baseline must move against the
        # event (a car that must charge, a tank that must heat): known now, so asked for
        # from the others now rather than found missing an interval later
        edge = flex.ceiling_kw if self.up else flex.floor_kw
        head_dir = flex.headroom(self.up)
        st = self.state
        lively = np.bincount(
            st.site_idx, weights=(head_dir > 0) & mask & ~st.follows_site, minlength=st.grid.n_sites
        )
        held = (self.touched | (st.follows_site & (lively[st.site_idx] > 0))) & mask
        forced = np.where(held & np.isfinite(edge), sign * (edge - base), 0.0)
        forced_kw = float(np.minimum(forced, 0.0).sum())
        want = float(
            np.clip(
                target - forced_kw + self.slip_kw - self.released_kw + self.correction_kw,
                0.0,
                (2.0 + cfg.max_correction) * target,
            )
        )
        site_p = self.state.site_power_kw(base)
        node_p = self.state.grid.node_flow_kw(site_p)
        head = limit_headroom(
            flex.headroom(self.up), self.state.node_groups, self.state.grid, site_p, node_p, self.up
        )
        alloc = allocate(
            head, sign * want, mask=mask, cost=self.state.cost_per_kwh if cfg.merit_order else None
        )
        self.last_allocation_kw = alloc.allocated_kw
        self._saturated = abs(alloc.allocated_kw) < want - 1e-6
        self.shortfall_kw = max(target - abs(alloc.available_kw), 0.0)
        return self._command(now, alloc.delta_kw, base, mask, flex.floor_kw, flex.ceiling_kw)

    def _judge(self, now: float, sign: float) -> None:
        """Drop devices that lag their setpoint past the grace period, or went silent."""
        cfg = self.config
        judged = (
            self.dispatched
            & (now - self.sent_at >= cfg.grace_s)
            & (np.abs(self.delta) >= cfg.min_judged_kw)
        )
        missing = sign * (self.sent - self.state.p_kw)  # > 0: short of the setpoint
        lagging = judged & (
            (missing > cfg.response_ratio * np.abs(self.delta)) | ~self.state.online
        )
        self.excluded |= lagging

    def _update_law(self, now: float, sign: float, response: FloatArray, error: float) -> None:
        """Measure the slip of the devices still held and integrate what it leaves.

        ``error`` is the target minus the delivered power, in the event's direction [kW].
        """
        cfg = self.config
        keep = self.dispatched & ~self.excluded & self.state.online
        other = self.touched & ~keep
        slip = sign * float((self.delta[keep] - response[keep]).sum())
        a = cfg.slip_smoothing if self._slip_known else 1.0
        self.slip_kw += a * (slip - self.slip_kw)
        self._slip_known = True
        self.released_kw = sign * float(response[other].sum())
        if now - self.event.start < cfg.grace_s:
            return  # the first responses are still landing: nothing to integrate yet
        bound = cfg.max_correction * abs(self.event.target_kw)
        if self._saturated and error > 0:
            return  # anti-windup: the fleet gives all it can, more asking would only wind up
        self.correction_kw = float(np.clip(self.correction_kw + cfg.gain * error, -bound, bound))

    def cancel(self, now: float) -> CommandBatch | None:
        """Cancel the event and release its devices."""
        if self.event.status.final:
            return None
        self.event.transition(EventStatus.CANCELLED)
        return self._release(now)

    def performance(self) -> EventPerformance:
        """The event's figures from the tracker's own measurements."""
        return event_performance(
            np.array(self.samples_ts),
            np.array(self.samples_delivered),
            self.event.target_kw,
            self.event.start,
            self.event.end,
            self.non_responders,
        )

    # ------------------------------------------------------------------ commands
    def _command(
        self,
        now: float,
        delta: FloatArray,
        base: FloatArray,
        mask: BoolArray,
        floor: FloatArray,
        ceiling: FloatArray,
    ) -> CommandBatch | None:
        cfg = self.config
        st = self.state
        active = np.abs(delta) > 1e-3
        # a device that balances its home on its own (a self-consumption battery) would undo
        # the rest of its home's dispatch: pin it to its baseline wherever another device of
        # the site is dispatched (declared per kind: ``follows_site``)
        busy_sites = np.bincount(st.site_idx, weights=active, minlength=st.grid.n_sites) > 0
        active |= st.follows_site & busy_sites[st.site_idx] & mask
        if cfg.hold:
            # a device already moved keeps a command until the end: released, a deferred
            # load would catch up inside the window and undo what others deliver
            active |= self.touched & mask
        # hold only what the device can keep for the rest of the window: never past the
        # edge of its band the event pushes towards (a car that must still charge, a tank
        # that must still heat); the other edge is its own business
        new = base + delta
        if self.up:
            new = np.where(np.isfinite(ceiling), np.minimum(new, ceiling), new)
        else:
            new = np.where(np.isfinite(floor), np.maximum(new, floor), new)
        new = np.where(active, new, np.nan)
        self.touched |= active
        first = active & ~self.dispatched
        self.frozen_base[first] = np.where(
            np.isfinite(self.state.p_baseline_kw[first]), np.nan, self.state.p_kw[first]
        )
        changed = (np.abs(new - self.sent) > cfg.deadband_kw) | (
            np.isnan(new) != np.isnan(self.sent)
        )
        # the grace period runs from the last material move of the setpoint
        moved = active & ~(np.abs(new - self.sent) < cfg.min_judged_kw)
        self.sent_at[moved] = now
        expiring = active & (self.valid_until - now < 2 * cfg.interval_s)
        idx = np.flatnonzero(changed | expiring)
        self.delta = np.where(active, new - base, 0.0)
        self.sent_at[~active] = np.nan
        until = min(self.event.end, now + cfg.command_ttl_s)
        return self._emit(now, idx, new[idx], until)

    def _finish(self) -> CommandBatch | None:
        """Hand devices back at randomised times over ``release_spread_s`` after the end.

        Releasing every device at once would make deferred loads (EVs, heat pumps) all
        resume together: a rebound peak. Each device keeps its setpoint until its own
        ``valid_until``, then falls back to its own control.
        """
        spread = self.config.release_spread_s
        end = self.event.end
        if spread <= 0:
            return self._release(end)
        idx = np.flatnonzero(self.dispatched)
        rng = np.random.default_rng(zlib.crc32(self.event.id.encode()))
        until = end + rng.uniform(0.0, spread, len(idx))
        batch = self._emit(end, idx, self.sent[idx], until)
        self.sent[idx] = np.nan
        self.delta[:] = 0.0
        return batch

    def _release(self, now: float) -> CommandBatch | None:
        idx = np.flatnonzero(self.dispatched)
        self.delta[:] = 0.0
        # NaN means "back to your own control"; it must stay valid long enough to arrive
        return self._emit(now, idx, np.full(len(idx), np.nan), now + self.config.command_ttl_s)

    def _emit(
        self, now: float, idx: np.ndarray, setpoints: FloatArray, until: float | FloatArray
    ) -> CommandBatch | None:
        if not len(idx):
            return None
        self.sent[idx] = setpoints
        self.valid_until[idx] = until
        seq = np.full(len(idx), int(now * 1000), dtype=np.int64)
        ids = self.state.device_ids[idx]
        prefix = f"{self.event.id}:{int(now * 1000)}:"
        cmd_ids = (prefix + pd.Series(ids, dtype=object)).to_numpy(dtype=object)
        self.commands_sent += len(idx)
        return CommandBatch(
            cmd_ids,
            ids,
            setpoints.copy(),
            np.broadcast_to(np.asarray(until, float), len(idx)).copy(),
            seq,
            now,
            self.event.id,
        )
