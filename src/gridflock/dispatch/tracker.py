"""The closed loop of one event: allocate, command, measure, judge, re-allocate.

Every ``interval_s`` the tracker compares the measured response of the devices it
commanded with the target, drops devices whose response lags their command past a
grace period (non-responders), integrates the remaining fleet error into a bounded
correction, and re-allocates over the responsive devices. Only setpoints that moved
by more than a deadband (or whose validity is about to lapse) are sent again.
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
    """Tuning of the loop; times in seconds, powers in kW."""

    interval_s: float = 10.0
    command_ttl_s: float = 300.0
    grace_s: float = 90.0
    response_ratio: float = 0.5
    min_judged_kw: float = 0.2
    deadband_kw: float = 0.05
    gain: float = 0.3
    max_correction: float = 0.5
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

        if self.touched.any():
            delivered = float(response[self.touched].sum())
            self.samples_ts.append(now)
            self.samples_delivered.append(delivered)
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
            if now - ev.start >= cfg.grace_s:
                error = abs(ev.target_kw) - sign * delivered
                bound = cfg.max_correction * abs(ev.target_kw)
                self.correction_kw = float(
                    np.clip(self.correction_kw + cfg.gain * error, -bound, bound)
                )

        want = abs(ev.target_kw) + self.correction_kw
        flex = flexibility(self.state, (ev.end - now) / 3600.0, now)
        site_p = self.state.site_power_kw(base)
        node_p = self.state.grid.node_flow_kw(site_p)
        head = limit_headroom(
            flex.headroom(self.up), self.state.node_groups, self.state.grid, site_p, node_p, self.up
        )
        mask = self.scope & ~self.excluded & self.state.online
        if busy is not None:
            mask &= ~busy
        alloc = allocate(
            head, sign * want, mask=mask, cost=self.state.cost_per_kwh if cfg.merit_order else None
        )
        self.last_allocation_kw = alloc.allocated_kw
        self.shortfall_kw = max(abs(ev.target_kw) - abs(alloc.allocated_kw), 0.0)
        return self._command(now, alloc.delta_kw, base)

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
    def _command(self, now: float, delta: FloatArray, base: FloatArray) -> CommandBatch | None:
        cfg = self.config
        active = np.abs(delta) > 1e-3
        # a device that balances its home on its own (a self-consumption battery) would undo
        # the rest of its home's dispatch: pin it to its baseline wherever another device of
        # the site is dispatched (declared per kind: ``follows_site``)
        st = self.state
        busy_sites = np.bincount(st.site_idx, weights=active, minlength=st.grid.n_sites) > 0
        follows = st.follows_site
        active |= follows & busy_sites[st.site_idx] & self.scope & ~self.excluded & st.online
        new = np.where(active, base + delta, np.nan)
        self.touched |= active
        first = active & ~self.dispatched
        self.frozen_base[first] = np.where(
            np.isfinite(self.state.p_baseline_kw[first]), np.nan, self.state.p_kw[first]
        )
        self.sent_at[first] = now
        changed = (np.abs(new - self.sent) > cfg.deadband_kw) | (
            np.isnan(new) != np.isnan(self.sent)
        )
        expiring = active & (self.valid_until - now < 2 * cfg.interval_s)
        idx = np.flatnonzero(changed | expiring)
        self.delta = np.where(active, delta, 0.0)
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
