"""All events over one fleet, served together: one allocation pass per control cycle.

The dispatcher owns everything that is per device, so that events cannot step on each
other:

* ``held_by``: which event holds each device (its code, -1 for none). A device serves at
  most one event. Each cycle the active events are served in order (higher ``priority``
  first, then earlier start, then id); each allocates over the devices in its scope that
  no event before it took in this cycle. So an event of higher priority may take devices
  from a lower one; among equal priorities the earlier event keeps its devices.
* ``delta_kw``: each held device's allocated change from its baseline [kW].
* Grid limits are shared: each event's site and node capacities are computed from the
  flows at baseline plus the changes already allocated to earlier events *in the same
  direction*. An opposite change is never credited, so any event may end without an
  other one crossing a limit.
* ``owner``: the event a device's response is counted for (the event that holds it, or
  released it while still running). Each event measures only its own devices against
  their baselines, so two events never report the same kW.
* Commands: one sequence number counter per device (unique and increasing across all
  events and restarts: never below the issue time in ms); a held device's command is
  renewed before it lapses, so a device never falls back, nor counts as a non-responder,
  because its own command timed out.

With the fair rule an event *claims* only the devices it needs: those it already holds
first, then others in fleet order, until their deliverable kW cover what it asks plus a
margin (``claim_margin``); every claimed device then gives the same fraction of its
headroom. The rest stays free for the next event. With the merit order the cheapest
devices are the claim.

Opposite-direction events over shared devices and time are refused at :meth:`add`
(:class:`~gridflock.domain.events.EventConflictError`): one device cannot export more and
absorb more at once, and netting two requests would hide from both operators that
neither is served.

Plans: while a device follows a schedule (``planned_kw``, set each cycle by the plan
executor), its scheduled power is its baseline: an event moves it from its plan and is
measured against it, and the device goes back to the plan when released. PV and wind
schedules are export caps (curtailment), so their baseline is the lower of the plan and
the power available.

Operating envelopes (``set_envelopes``): every site and node limit is ``min(static,
envelope)`` at the cycle's time, so an envelope that arrives mid-event tightens the
running events at the next :meth:`step`; :meth:`available_kw` uses the strictest limit
over the asked window.

Envelope hold (``dispatch.envelope_hold``): after the events, every site and node that
breaks an envelope in force (measured, at the devices' baselines plus the events'
changes) is brought back inside it by the devices no event holds, through the same
command path (sequence numbers, lifetimes, renewal; commands of event id
``envelope``), and released when no longer needed. Such a device keeps its frozen
baseline, so the hold is worked out each cycle from what the site would do without it.
An event may take a held device; the hold then works with the rest.

Finished events leave the dispatcher (the caller keeps their figures); memory does not
grow with the number of past events.
"""

from __future__ import annotations

import dataclasses
import zlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from gridflock.dispatch.allocate import Allocation, allocate, grid_caps, limit_headroom
from gridflock.dispatch.envelope_hold import HoldIndex, HoldResult, hold, hold_index, ranks
from gridflock.dispatch.tracker import EventTracker, TrackerConfig
from gridflock.domain.envelopes import PARA14A_FLOOR_KW, Envelope, EnvelopeArrays, EnvelopeKind
from gridflock.domain.events import Event, EventConflictError, EventStatus, Scope
from gridflock.domain.kinds import DeviceKind
from gridflock.domain.messages import BoolArray, CommandBatch, FloatArray, IntArray
from gridflock.fleet.envelopes import (
    PARA14A_KINDS,
    PreparedEnvelopes,
    controllable_per_site,
    effective_grid,
    prepare,
)
from gridflock.fleet.flexibility import Flexibility, flexibility
from gridflock.fleet.groups import MeritPlan
from gridflock.fleet.state import FleetState, GridTopology

__all__ = ["Dispatcher"]

_HELD_KW = 1e-3  # an allocation below this (1 W) holds no device
#: Event id of the commands that hold sites within their envelopes.
ENVELOPE_EVENT = "envelope"
_PARA14A_CODE = list(EnvelopeKind).index(EnvelopeKind.PARA14A)


class Dispatcher:
    """Serves every live event over one fleet state; call :meth:`step` every interval."""

    def __init__(self, state: FleetState, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.trackers: dict[str, EventTracker] = {}
        """The live (scheduled or active) events, by id."""
        self.finished: list[EventTracker] = []
        """The events that left in the last :meth:`step` (or :meth:`cancel` since)."""
        self._next_code = 0
        self._releasing: dict[int, EventTracker] = {}  # code -> events still releasing devices
        self._plan: MeritPlan | None = None
        self.envelopes: tuple[Envelope, ...] = ()
        """The grid operator's envelopes in force (``set_envelopes``)."""
        self._env_arrays = EnvelopeArrays.of(())
        self._env = PreparedEnvelopes(
            self._env_arrays, np.zeros(0, np.int64), np.zeros(0, np.int64)
        )
        self._env_of: FleetState | None = None
        self._bounds: FloatArray = np.zeros(0)
        self._max_dur = 0.0
        self._grid_cache: dict[float, tuple[float, float, GridTopology]] = {}
        self._bind(state)

    def _bind(self, state: FleetState) -> None:
        n = state.n
        self.state = state
        self._env_of = None
        self.held_by: IntArray = np.full(n, -1, np.int64)
        """Code of the event holding each device (``tracker.code``), -1 when free."""
        self.owner: IntArray = np.full(n, -1, np.int64)
        self.delta_kw: FloatArray = np.zeros(n)
        """Each held device's allocated change from its baseline [kW]; 0 when free."""
        self.sent: FloatArray = np.full(n, np.nan)
        self.valid_until: FloatArray = np.full(n, -np.inf)
        self.since: FloatArray = np.full(n, np.nan)
        self.frozen_base: FloatArray = np.full(n, np.nan)
        self.seq: IntArray = np.zeros(n, np.int64)
        self.release_at: FloatArray = np.full(n, np.nan)
        self.releaser: IntArray = np.full(n, -1, np.int64)
        self.planned_kw: FloatArray = np.full(n, np.nan)
        """Each device's scheduled power now [kW] (a plan's slot); NaN where none holds."""
        self.env_held: BoolArray = np.zeros(n, bool)
        """Devices the envelope hold commands (no event holds them)."""
        self.hold_result: HoldResult | None = None
        """The last cycle's envelope hold (None when no envelope was in force)."""
        self.hold_commands = 0
        """Commands sent by the envelope hold since start."""
        self._hold_index: HoldIndex | None = None  # per fleet
        self._in_force_cache: (
            tuple[PreparedEnvelopes, int, tuple[BoolArray, BoolArray, BoolArray]] | None
        ) = None
        self._capped = np.zeros(n, bool)  # PV and wind: a planned value caps the available
        for kind in (DeviceKind.PV, DeviceKind.WIND):
            sl = state.kind_slices.get(kind)
            if sl is not None:
                self._capped[sl] = True

    def set_envelopes(
        self,
        envelopes: tuple[Envelope, ...] | list[Envelope],
        arrays: EnvelopeArrays | None = None,
    ) -> None:
        """Take the operating envelopes to honour from the next :meth:`step` on.

        ``arrays``: their columns (``EnvelopeArrays.of(envelopes)``), when already built.
        """
        self.envelopes = tuple(envelopes)
        # columns once per batch
        self._env_arrays = EnvelopeArrays.of(self.envelopes) if arrays is None else arrays
        self._env_of = None  # prepared for the fleet at the next grid_at

    def grid_at(self, start: float, end: float | None = None) -> GridTopology:
        """The fleet's grid with the strictest envelope limits over ``[start, end)``."""
        if not self.envelopes:
            return self.state.grid
        if self._env_of is not self.state:  # once per batch and fleet: floors, targets
            arrays = self._env_arrays
            order = np.argsort(arrays.start, kind="stable")  # by start: a window is a slice
            self._env = prepare(
                self.state.grid, arrays.take(order), controllable_per_site(self.state)
            )
            self._env_of = self.state
            dur = self._env.arrays.end - self._env.arrays.start
            self._max_dur = float(dur.max()) if len(dur) else 0.0
            self._bounds = np.unique(np.r_[self._env.arrays.start, self._env.arrays.end])
            self._grid_cache = {}
        stop = end if end is not None and end > start else start + 1e-3
        # limits only change where an envelope begins or ends: a window that moved forward
        # past no boundary, at either end, has the limits computed for it before
        key = round(stop - start, 3)
        hit = self._grid_cache.get(key)
        if hit is not None and hit[0] <= start and self._no_bound(hit[0], start, hit[1], stop):
            return hit[2]
        # only the envelopes overlapping the window are resolved (array work)
        arr = self._env.arrays
        # sorted by start, the envelopes that can overlap begin in [start - longest, stop)
        lo = int(np.searchsorted(arr.start, start - self._max_dur, "left"))
        hi = int(np.searchsorted(arr.start, stop, "left"))
        near = lo + np.flatnonzero(arr.end[lo:hi] > start)
        grid = (
            effective_grid(self.state.grid, self._env.take(near), start, stop)
            if len(near)
            else self.state.grid
        )
        if len(self._grid_cache) > 16:  # a few window lengths are asked each cycle
            self._grid_cache.clear()
        self._grid_cache[key] = (start, stop, grid)
        return grid

    def _no_bound(self, s0: float, s1: float, e0: float, e1: float) -> bool:
        """Whether no envelope begins or ends in ``(s0, s1]`` nor in ``[e0, e1)``.

        Then the instants the window dropped, and those it gained, saw the same envelopes
        as the instants next to them it kept.
        """
        b = self._bounds
        return bool(
            np.searchsorted(b, s1, "right") == np.searchsorted(b, s0, "right")
            and np.searchsorted(b, e1, "left") == np.searchsorted(b, e0, "left")
        )

    def set_planned(self, planned_kw: FloatArray) -> None:
        """Take each device's scheduled power now [kW, generator sign; NaN = no schedule]."""
        planned = np.asarray(planned_kw, dtype=np.float64)
        if planned.shape != (self.state.n,):
            raise ValueError(
                f"planned_kw must have one value per device ({self.state.n}), "
                f"got shape {planned.shape}"
            )
        self.planned_kw = planned

    # ------------------------------------------------------------------ events
    def add(self, event: Event) -> EventTracker:
        """Start serving ``event``; refuses an opposite-direction clash (see module doc)."""
        if event.id in self.trackers:
            raise ValueError(f"event {event.id} is already tracked")
        tracker = EventTracker(event, self.state, self.config, self._next_code, self)
        self.check(event, tracker.scope)
        self._next_code += 1
        self.trackers[event.id] = tracker
        return tracker

    def check(self, event: Event, scope: BoolArray | None = None) -> None:
        """Raise :class:`EventConflictError` if ``event`` clashes with a live one."""
        other = self.conflicting(event, scope)
        if other is not None:
            raise EventConflictError(_conflict_message(event, other), other.id)

    def conflicting(self, event: Event, scope: BoolArray | None = None) -> Event | None:
        """A live event in the opposite direction sharing devices and time, if any."""
        mask = scope if scope is not None else self._scope(event.scope)
        for t in self._ordered():
            if (
                t.up != event.up
                and t.event.overlaps(event.start, event.end)
                and bool((t.scope & mask).any())
            ):
                return t.event
        return None

    def cancel(self, event_id: str, now: float) -> CommandBatch | None:
        """Cancel one event; returns the commands handing its devices back at once."""
        try:
            tracker = self.trackers[event_id]
        except KeyError:
            raise KeyError(f"no live event {event_id!r}") from None
        tracker.event.transition(EventStatus.CANCELLED)
        idx = np.flatnonzero(self.held_by == tracker.code)
        # NaN means "back to your own control"; it must stay valid long enough to arrive
        batch = self._emit(tracker, now, idx, np.full(len(idx), np.nan), now + self.config.ttl_s)
        self._leave(tracker)
        return batch

    def ordered(self) -> list[EventTracker]:
        """Live events in serving order (priority, then start, then id)."""
        return self._ordered()

    # ------------------------------------------------------------------ measurement
    def baseline(self) -> FloatArray:
        """Each device's baseline [kW]: its plan's slot, else reported, else frozen, else measured.

        Frozen: the power it had when first held. A PV or wind plan caps the reported
        available power.
        """
        st = self.state
        reported = st.p_baseline_kw
        out: FloatArray = np.where(
            np.isfinite(reported),
            reported,
            np.where(np.isfinite(self.frozen_base), self.frozen_base, st.p_kw),
        )
        planned = self.planned_kw
        has_plan = np.isfinite(planned)
        if has_plan.any():
            capped = np.where(
                self._capped & np.isfinite(reported), np.minimum(planned, reported), planned
            )
            out = np.where(has_plan, capped, out)
        return out

    def _flex_baseline(self) -> FloatArray | None:
        """Baselines flexibility is measured from: the plan's where a device has one."""
        has_plan = np.isfinite(self.planned_kw)
        if not has_plan.any():
            return None
        out: FloatArray = np.where(has_plan, self.baseline(), self.state.baseline_kw())
        return out

    def delivered_kw(self, tracker: EventTracker, now: float | None = None) -> float:
        """Response of the devices counted for ``tracker`` against their baselines [kW].

        With ``now``, silent devices whose command has lapsed count at their baseline.
        """
        mine = self.owner == tracker.code
        if not mine.any():
            return 0.0
        return float(self.response_kw(now)[mine].sum())

    def response_kw(self, now: float | None = None) -> FloatArray:
        """Every device's measured response ``p_kw - baseline`` [kW].

        A silent device's last reading goes stale: once its command has lapsed (at
        ``now``) it is back on its own control, so it counts at its baseline (0).
        """
        st = self.state
        response: FloatArray = st.p_kw - self.baseline()
        if now is not None:
            response[~st.online & (self.valid_until <= now)] = 0.0
        return response

    def available_kw(self, scope: Scope, start: float, end: float, up: bool, now: float) -> float:
        """What a new event could still get over ``[start, end)`` [kW, signed].

        The kW the devices of ``scope`` can hold for the window's length, from the fleet
        as it is now, within every site and node limit, after the live events of the
        same direction whose windows overlap have taken what they ask (in their serving
        order, with the same claims and caps as :meth:`step`). Devices held by any
        other live event are left out. Raises ``ValueError`` for an unknown scope.
        """
        st = self.state
        mask_new = self._scope(scope)
        if not end > start:
            raise ValueError("end must be after start")
        flex = flexibility(st, (end - start) / 3600.0, now, self._flex_baseline())
        h = flex.headroom(up)
        base = self.baseline()
        holder = np.full(st.n, -1, np.int64)
        changes = self._releasing_changes(base)[up]
        grid = self.grid_at(start, end)
        for t in self._ordered():
            if not t.event.overlaps(start, end):
                continue
            if t.up != up:
                holder[self.held_by == t.code] = t.code
                continue
            mask = t.scope & ~t.excluded & st.online & (holder < 0)
            alloc = self._allocate(
                up, abs(t.event.target_kw), h, base, changes, mask, self.held_by == t.code, grid
            )
            take = np.abs(alloc.delta_kw) > _HELD_KW
            holder[take] = t.code
            changes += np.where(take, alloc.delta_kw, 0.0)
        site_p = st.site_power_kw(base + changes)
        node_p = st.grid.node_flow_kw(site_p)
        a = limit_headroom(
            h, st.node_groups, grid, site_p, node_p, up, mask=mask_new & (holder < 0)
        )
        return float(a.sum()) * (1.0 if up else -1.0)

    # ------------------------------------------------------------------ the loop
    def step(self, now: float) -> list[CommandBatch]:
        """Advance every event to ``now``; the commands to send, one batch per event."""
        self.finished = []
        out = self._renew_releasing(now)
        ending: list[EventTracker] = []
        for t in self._ordered():
            ev = t.event
            if now >= ev.end:
                if ev.status is EventStatus.SCHEDULED:  # its whole window passed unserved
                    ev.transition(EventStatus.FAILED)
                else:
                    ev.transition(EventStatus.COMPLETED)
                    self._finish(t, now)
                    ending.append(t)
                self._leave(t)
            elif now >= ev.start and ev.status is EventStatus.SCHEDULED:
                if not t.scope.any():
                    ev.transition(EventStatus.FAILED)
                    self._leave(t)
                else:
                    ev.transition(EventStatus.ACTIVE)
        lead = self.config.lead_s
        active = [
            t
            for t in self._ordered()
            if t.event.status is EventStatus.ACTIVE
            or (
                lead > 0 and t.event.status is EventStatus.SCHEDULED and now >= t.event.start - lead
            )
        ]
        if active:
            out.extend(self._serve(active, now))
        for t in ending:  # what no running event took over is handed back
            _add(out, self._hand_back(t, now))
        if self.config.envelope_hold and (self.envelopes or self.env_held.any()):
            _add(out, self._hold(now))
        return out

    # ------------------------------------------------------------------ envelope hold
    def _in_force(self, now: float) -> tuple[BoolArray, BoolArray, BoolArray]:
        """Sites and nodes with an envelope in force at ``now``; sites under §14a dimming."""
        grid = self.state.grid
        sites = np.zeros(grid.n_sites, bool)
        nodes = np.zeros(grid.n_nodes, bool)
        para = np.zeros(grid.n_sites, bool)
        if not self.envelopes:
            return sites, nodes, para
        self.grid_at(now)  # prepares the envelopes for this fleet
        b = self._bounds
        at = int(np.searchsorted(b, now, "right"))
        hit = self._in_force_cache
        if hit is not None and hit[0] is self._env and hit[1] == at:
            return hit[2]  # no envelope began or ended since: the same ones are in force
        arr = self._env.arrays
        on = (arr.start <= now) & (arr.end > now)
        srow, nrow = self._env.site_row[arr.tgt], self._env.node_row[arr.tgt]
        sites[srow[on & (srow >= 0)]] = True
        nodes[nrow[on & (nrow >= 0)]] = True
        p14 = on & (arr.kind == _PARA14A_CODE) & np.isfinite(arr.imp)
        para[srow[p14 & (srow >= 0)]] = True
        dimmed_nodes = np.unique(nrow[p14 & (nrow >= 0)])
        if len(dimmed_nodes) and grid.n_nodes:
            chain = grid.ancestors[np.maximum(grid.site_node, 0)]
            under = np.isin(chain, dimmed_nodes).any(axis=1) & (grid.site_node >= 0)
            para |= under
        self._in_force_cache = (self._env, at, (sites, nodes, para))
        return sites, nodes, para

    def _hold(self, now: float) -> CommandBatch | None:
        """Commands that keep every site and node within the envelopes in force."""
        st, cfg = self.state, self.config
        self.env_held &= self.held_by < 0  # an event took these over
        sites, nodes, para = self._in_force(now)
        free = (self.held_by < 0) & ~np.isfinite(self.release_at) & st.controllable()
        if not sites.any() and not nodes.any():
            self.hold_result = None
            delta = np.zeros(st.n)
        else:
            g = self.grid_at(now)
            inf_s, inf_n = np.full(g.n_sites, np.inf), np.full(g.n_nodes, np.inf)
            grid = dataclasses.replace(
                g,
                site_import_limit_kw=np.where(sites, g.site_import_limit_kw, inf_s),
                site_export_limit_kw=np.where(sites, g.site_export_limit_kw, inf_s),
                limit_import_kw=np.where(nodes, g.limit_import_kw, inf_n),
                limit_export_kw=np.where(nodes, g.limit_export_kw, inf_n),
            )
            tree = st.grid.__dict__.get("_site_levels")
            if tree is None:
                tree = st.grid._site_levels
            grid.__dict__["_site_levels"] = tree  # same tree: keep its grouping
            if self._hold_index is None:
                self._hold_index = hold_index(st.site_idx, *ranks(st))
            base = self.baseline()
            rel = np.isfinite(self.release_at) & np.isfinite(self.sent)
            other = np.where(self.held_by >= 0, self.delta_kw, 0.0) + np.where(
                rel, self.sent - base, 0.0
            )
            fx = flexibility(st, cfg.ttl_s / 3600.0, now, base, grid_operator=True)
            up = fx.up_kw
            if para.any():  # §14a: a dimmed consumer keeps drawing 4.2 kW (or what it draws)
                dim = para[st.site_idx] & self._para14a_kind()
                up = np.where(dim, np.minimum(up, np.fmax(-PARA14A_FLOOR_KW - base, 0.0)), up)
            self.hold_result = hold(st, grid, base, up, fx.down_kw, free, other, self._hold_index)
            delta = self.hold_result.delta_kw
        keep = free & (np.abs(delta) > _HELD_KW)
        base = self.baseline()
        setpoint = base + delta
        newly = keep & ~self.env_held
        self.frozen_base[newly] = np.where(
            np.isfinite(st.p_baseline_kw[newly]), np.nan, st.p_kw[newly]
        )
        moved = keep & ~(np.abs(setpoint - self.sent) <= cfg.deadband_kw)
        renew = keep & (self.valid_until - now < cfg.renew_s)
        send = np.flatnonzero(newly | moved | renew)
        released = np.flatnonzero(self.env_held & ~keep & (self.held_by < 0))
        self.env_held = keep
        self.frozen_base[released] = np.nan
        idx = np.concatenate([send, released])
        if not len(idx):
            return None
        points = np.concatenate([setpoint[send], np.full(len(released), np.nan)])
        self.hold_commands += len(idx)
        return self._emit_for(ENVELOPE_EVENT, None, now, idx, points, now + cfg.ttl_s)

    def _para14a_kind(self) -> BoolArray:
        """Devices of the kinds §14a dimming acts on."""
        out = np.zeros(self.state.n, bool)
        for kind in PARA14A_KINDS:
            sl = self.state.kind_slices.get(DeviceKind(kind))
            if sl is not None:
                out[sl] = True
        return out

    def _serve(self, active: list[EventTracker], now: float) -> list[CommandBatch]:
        st, cfg = self.state, self.config
        base = self.baseline()
        response = self.response_kw(now)
        for t in active:  # measure each event on its own devices, judge, correct
            mine = self.owner == t.code
            if mine.any():
                delivered = float(response[mine].sum())
                if now >= t.event.start:  # a ramp ahead of the window is not a sample of it
                    t.samples_ts.append(now)
                    t.samples_delivered.append(delivered)
                t.judge(now, st.p_kw, st.online, self.held_by == t.code)
                keep = (self.held_by == t.code) & ~t.excluded & st.online
                other = mine & ~keep
                slip = t.measure_slip(self.delta_kw - response, keep, self.delta_kw)
                t.control(now, delivered, slip, float(response[other].sum()))

        holder = np.full(st.n, -1, np.int64)
        delta = np.zeros(st.n)
        changes = self._releasing_changes(base)
        grid = self.grid_at(now)
        flex: dict[float, Flexibility] = {}
        edges: dict[int, FloatArray] = {}
        for t in active:  # in serving order: each takes from what is left
            end = t.event.end
            if end not in flex:
                flex[end] = flexibility(st, (end - now) / 3600.0, now, self._flex_baseline())
            fx = flex[end]
            mask = t.scope & ~t.excluded & st.online & (holder < 0)
            # devices that balance their home are held at their baseline, which follows
            # their own energy limits; every other held device is kept within its band
            edges[t.code] = np.where(
                st.follows_site, np.nan, t.band_edge(fx.floor_kw, fx.ceiling_kw)
            )
            kept = (self.owner == t.code) & mask if cfg.hold else self.held_by == t.code
            want = t.want_kw(t.forced_kw(edges[t.code], base, kept))
            alloc = self._allocate(
                t.up,
                want,
                fx.headroom(t.up),
                base,
                changes[t.up],
                mask,
                self.held_by == t.code,
                grid,
            )
            take = np.abs(alloc.delta_kw) > _HELD_KW
            if cfg.hold:  # a device the event moved stays held until the end
                take |= kept
            holder[take] = t.code
            delta[take] = alloc.delta_kw[take]
            changes[t.up] += np.where(take, alloc.delta_kw, 0.0)
            t.last_allocation_kw = alloc.allocated_kw
            t.available_kw = alloc.available_kw
            t.saturated = abs(alloc.allocated_kw) < want - 1e-6
            t.shortfall_kw = max(abs(t.event.target_kw) - abs(alloc.available_kw), 0.0)
        self._pin_followers(active, holder)
        p_min = st.column("p_min_kw", 0.0)
        for t in active:  # hold only what each device can keep, at a power it can run at
            h = holder == t.code
            kept = t.within_band(base[h] + delta[h], edges[t.code][h])
            delta[h] = t.quantise(kept, p_min[h]) - base[h]
        return self._command(active, now, holder, delta, base)

    def _allocate(
        self,
        up: bool,
        want: float,
        headroom: FloatArray,
        base: FloatArray,
        changes: FloatArray,
        mask: BoolArray,
        mine: BoolArray,
        grid: GridTopology,
    ) -> Allocation:
        """One event's allocation over ``mask``, after the earlier events' ``changes``.

        ``grid`` carries the limits in force (the envelopes applied).
        """
        st, cfg = self.state, self.config
        site_p = st.site_power_kw(base + changes)
        node_p = st.grid.node_flow_kw(site_p)
        caps = grid_caps(grid, site_p, node_p, up)
        target = want if up else -want
        if cfg.merit_order:
            return allocate(
                headroom,
                target,
                mask=mask,
                cost=st.cost_per_kwh,
                groups=st.node_groups,
                caps=caps,
                plan=self.plan,
            )
        a = limit_headroom(headroom, st.node_groups, grid, site_p, node_p, up, mask=mask)
        claim = _claim(a, want * (1.0 + cfg.claim_margin), mine)
        alloc = allocate(headroom, target, mask=claim, groups=st.node_groups, caps=caps)
        available = float(a.sum()) if up else -float(a.sum())
        return Allocation(alloc.delta_kw, target, available, alloc.allocated_kw)

    def _releasing_changes(self, base: FloatArray) -> dict[bool, FloatArray]:
        """Changes still held by devices being handed back, up and down [kW].

        Until its release time such a device stays at its last setpoint, so the flows
        the caps start from include it (conservatively, also if an event takes it).
        """
        rel = np.isfinite(self.release_at) & np.isfinite(self.sent)
        dev = np.where(rel, self.sent - base, 0.0)
        return {True: np.maximum(dev, 0.0), False: np.minimum(dev, 0.0)}

    @property
    def plan(self) -> MeritPlan:
        """The fleet's cost order for the merit order (built once per fleet)."""
        if self._plan is None:
            self._plan = MeritPlan.build(self.state.node_groups, self.state.cost_per_kwh)
        return self._plan

    def _pin_followers(self, active: list[EventTracker], holder: IntArray) -> None:
        """Hold free self-balancing devices at their baseline where their site is dispatched.

        A device that balances its home on its own (a self-consumption battery; declared
        per kind: ``follows_site``) would undo the rest of its home's dispatch. The first
        event (in serving order) with a device at the site holds it.
        """
        st = self.state
        free = st.follows_site & (holder < 0) & st.online
        if not free.any():
            return
        for t in active:
            site_busy = (
                np.bincount(st.site_idx, weights=holder == t.code, minlength=st.grid.n_sites) > 0
            )
            pin = free & site_busy[st.site_idx] & t.scope & ~t.excluded
            holder[pin] = t.code
            free &= ~pin

    def _command(
        self,
        active: list[EventTracker],
        now: float,
        holder: IntArray,
        delta: FloatArray,
        base: FloatArray,
    ) -> list[CommandBatch]:
        st, cfg = self.state, self.config
        held = holder >= 0
        old = self.held_by
        setpoint = np.where(held, base + delta, np.nan)
        newly = held & (holder != old)
        moved = held & ~(np.abs(setpoint - self.sent) <= cfg.deadband_kw)  # NaN sent: moved
        renew = held & (self.valid_until - now < cfg.renew_s)
        send = newly | moved | renew
        released = (old >= 0) & ~held
        # a device taken from free keeps the power it had as its baseline (unless it
        # reports one); one passed between events, or still being released, keeps its own
        fresh = held & (old < 0) & ~np.isfinite(self.release_at) & ~self.env_held
        self.frozen_base[fresh] = np.where(
            np.isfinite(st.p_baseline_kw[fresh]), np.nan, st.p_kw[fresh]
        )
        # the grace period runs from the last move a lag could be mistaken for
        jump = held & (np.abs(setpoint - self.sent) > cfg.response_ratio * np.abs(delta))
        self.since[newly | jump] = now
        self.since[~held] = np.nan
        self.owner[held] = holder[held]
        self.release_at[held] = np.nan
        self.releaser[held] = -1
        self.delta_kw = np.where(held, delta, 0.0)
        self.held_by = holder
        out: list[CommandBatch] = []
        for t in active:
            hold = np.flatnonzero(send & (holder == t.code))
            free = np.flatnonzero(released & (old == t.code))
            until = min(t.event.end, now + cfg.ttl_s)
            idx = np.concatenate([hold, free])
            points = np.concatenate([setpoint[hold], np.full(len(free), np.nan)])
            validity = np.concatenate(
                [np.full(len(hold), until), np.full(len(free), now + cfg.ttl_s)]
            )
            _add(out, self._emit(t, now, idx, points, validity))
        return out

    # ------------------------------------------------------------------ endings
    def _finish(self, t: EventTracker, now: float) -> None:
        """Plan the hand-back: randomised times over ``release_spread_s`` after the end.

        Releasing every device at once would make deferred loads (EVs, heat pumps) all
        resume together: a rebound peak. Each device keeps its setpoint until its own
        release time; its command is renewed until then like a held one (so the
        fail-safe lifetime still applies), then it falls back to its own control. A
        running event may take a device over in the same cycle (its baseline is kept).
        """
        cfg = self.config
        idx = np.flatnonzero(self.held_by == t.code)
        if not len(idx):
            return
        if cfg.release_spread_s <= 0:
            at = np.full(len(idx), now)
        else:
            rng = np.random.default_rng(zlib.crc32(t.event.id.encode()))
            at = t.event.end + rng.uniform(0.0, cfg.release_spread_s, len(idx))
        self.release_at[idx] = at
        self.releaser[idx] = t.code
        self._releasing[t.code] = t  # its renewals still count as its commands

    def _hand_back(self, t: EventTracker, now: float) -> CommandBatch | None:
        """The first hand-back commands of an event that ended in this cycle."""
        cfg = self.config
        idx = np.flatnonzero(self.releaser == t.code)
        if cfg.release_spread_s <= 0:
            return self._emit(t, now, idx, np.full(len(idx), np.nan), now + cfg.ttl_s)
        until = np.minimum(self.release_at[idx], now + cfg.ttl_s)
        return self._emit(t, now, idx, self.sent[idx].copy(), until)

    def _renew_releasing(self, now: float) -> list[CommandBatch]:
        """Renew the setpoints of devices still being handed back; forget the released."""
        cfg = self.config
        done = np.isfinite(self.release_at) & (now >= self.release_at)
        if done.any():
            self.release_at[done] = np.nan
            self.releaser[done] = -1
            self.sent[done] = np.nan
        out: list[CommandBatch] = []
        for code, rel in list(self._releasing.items()):
            mine = self.releaser == code
            if not mine.any():
                del self._releasing[code]
                continue
            due = (
                mine & (self.valid_until - now < cfg.renew_s) & (self.valid_until < self.release_at)
            )
            idx = np.flatnonzero(due)
            if len(idx):
                until = np.minimum(self.release_at[idx], now + cfg.ttl_s)
                _add(out, self._emit(rel, now, idx, self.sent[idx].copy(), until))
        idle = (
            (self.held_by < 0) & (self.owner < 0) & ~np.isfinite(self.release_at) & ~self.env_held
        )
        self.frozen_base[idle] = np.nan
        return out

    def _leave(self, t: EventTracker) -> None:
        """The event is over: forget it (its figures stay with the tracker object)."""
        mine = self.held_by == t.code
        self.held_by[mine] = -1
        self.delta_kw[mine] = 0.0
        self.since[mine] = np.nan
        self.owner[self.owner == t.code] = -1
        self.trackers.pop(t.event.id, None)
        t.retire()
        self.finished.append(t)

    # ------------------------------------------------------------------ a new fleet
    def replace_fleet(self, state: FleetState) -> list[EventTracker]:
        """Carry on over a new fleet; devices are matched by id.

        Running events continue on the devices that still exist (their holds,
        setpoints, baselines and sequence numbers carried over); devices that left
        simply drop out. An event whose scope names a grid node or tag the new fleet no
        longer has fails. Returns the events that failed.
        """
        old_state = self.state
        pos = pd.Index(old_state.device_ids).get_indexer(state.device_ids)  # type: ignore[arg-type]
        has = pos >= 0
        src = pos[has]

        def carry(arr: np.ndarray, fill: float | int | bool) -> np.ndarray:
            new = np.full(state.n, fill, dtype=arr.dtype)
            new[has] = arr[src]
            return new

        carried = {
            "held_by": carry(self.held_by, -1),
            "owner": carry(self.owner, -1),
            "delta_kw": carry(self.delta_kw, 0.0),
            "sent": carry(self.sent, np.nan),
            "valid_until": carry(self.valid_until, -np.inf),
            "since": carry(self.since, np.nan),
            "frozen_base": carry(self.frozen_base, np.nan),
            "seq": carry(self.seq, 0),
            "release_at": carry(self.release_at, np.nan),
            "releaser": carry(self.releaser, -1),
            "planned_kw": carry(self.planned_kw, np.nan),
            "env_held": carry(self.env_held, False),
        }
        self._bind(state)
        for name, arr in carried.items():
            setattr(self, name, arr)
        self._plan = None
        self.finished = []
        failed = []
        for t in self._ordered():
            try:
                scope = self._scope(t.event.scope)
            except ValueError:
                t.event.transition(EventStatus.FAILED)
                self._leave(t)
                failed.append(t)
                continue
            t.scope = scope
            t.excluded = carry(t.excluded, False)
            t.slip_each_kw = carry(t.slip_each_kw, np.nan)
        return failed

    # ------------------------------------------------------------------ helpers
    def _ordered(self) -> list[EventTracker]:
        return sorted(self.trackers.values(), key=lambda t: t.event.order_key())

    def _scope(self, scope: Scope) -> BoolArray:
        out: BoolArray = self.state.scope_mask(scope) & self.state.controllable()
        return out

    def _emit(
        self,
        t: EventTracker,
        now: float,
        idx: IntArray,
        setpoints: FloatArray,
        until: float | FloatArray,
    ) -> CommandBatch | None:
        return self._emit_for(t.event.id, t, now, idx, setpoints, until)

    def _emit_for(
        self,
        event_id: str,
        t: EventTracker | None,
        now: float,
        idx: IntArray,
        setpoints: FloatArray,
        until: float | FloatArray,
    ) -> CommandBatch | None:
        """Commands for devices ``idx``; each device's sequence number moves on."""
        if not len(idx):
            return None
        until_arr = np.broadcast_to(np.asarray(until, float), len(idx)).copy()
        self.sent[idx] = setpoints
        self.valid_until[idx] = until_arr
        seq = np.maximum(self.seq[idx] + 1, int(now * 1000))
        self.seq[idx] = seq
        ids = self.state.device_ids[idx]
        cmd_ids = (
            f"{event_id}:" + pd.Series(seq).astype(str) + ":" + pd.Series(ids, dtype=object)
        ).to_numpy(dtype=object)
        if t is not None:
            t.commands_sent += len(idx)
        return CommandBatch(cmd_ids, ids, setpoints.copy(), until_arr, seq, now, event_id)


def _claim(a: FloatArray, need: float, mine: BoolArray) -> BoolArray:
    """The devices an event claims: its own first, then others in fleet order, to ``need``.

    ``a`` is the effective headroom over the devices the event may use (any subset of it
    can deliver at least its sum within every limit), so the claim covers ``need`` when
    the devices can. One cumulative sum, no sort.
    """
    pos = a > 0
    if float(a.sum()) <= need:
        out: BoolArray = pos
        return out
    own = pos & mine
    got = float(a[own].sum())
    if got >= need:
        run = np.cumsum(np.where(own, a, 0.0))
        kept: BoolArray = own & (run - a < need)
        return kept
    rest = pos & ~mine
    run = np.cumsum(np.where(rest, a, 0.0))
    claim: BoolArray = own | (rest & (run - a < need - got))
    return claim


def _add(out: list[CommandBatch], batch: CommandBatch | None) -> None:
    if batch is not None:
        out.append(batch)


def _conflict_message(event: Event, other: Event) -> str:
    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    way = "up (more export)" if other.up else "down (more import)"
    return (
        f"event {other.id} already asks {way} of devices in {event.scope} from "
        f"{when(other.start)} to {when(other.end)}; a device cannot move both ways at once. "
        f"Cancel {other.id}, choose a scope without its devices, or a window outside it"
    )
