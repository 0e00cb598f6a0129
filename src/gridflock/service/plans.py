"""The plan executor: a plan's per-device setpoint series sent to devices as schedules.

:meth:`PlanExecutor.apply` takes a plan (``PlanSeries``: one row of 15-minute setpoints
per device), drops the slots already over, checks every device's schedule (capability,
validity, length; ``domain.schedules.check_schedules``) and sends, in one batch through
the device link, only the schedules that changed: a device whose remaining slots are the
same as what it already has (within ``deadband_kw``) gets nothing, unless its schedule
runs out within ``renew_before_s`` and the new plan reaches further. Refused schedules
are recorded with their reason and never sent.

Each cycle the control loop hands the executor the acknowledgements (a schedule's ack is
a command ack by schedule id), calls :meth:`tick` (re-sends, with a new ``seq``, what no
gateway acknowledged within ``resend_after_s``) and gives the dispatcher
:meth:`planned_kw`: what each device's accepted schedule asks now, its baseline while no
event holds it. After a restart :meth:`resume` reads the schedules devices still follow
from the store.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from gridflock.domain.messages import FloatArray, IntArray
from gridflock.domain.ports import CommandAck, DeviceLink
from gridflock.domain.schedules import PlanSeries, ScheduleBatch, check_schedules
from gridflock.fleet.state import FleetState
from gridflock.optimize import Plan
from gridflock.service.writer import StoreWriter
from gridflock.store import Store

__all__ = ["ApplyResult", "PlanExecutor", "series_of"]

log = logging.getLogger("gridflock.plans")

#: Longest plan id (schedule ids are ``{plan}:{seq}:{device}``, at most 128 characters).
MAX_PLAN_ID = 48
#: Devices listed per refusal reason in an :class:`ApplyResult`.
LISTED = 20


@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`PlanExecutor.apply` did with a plan."""

    plan_id: str
    sent: int
    """Schedules sent (changed, or renewed before they run out)."""
    unchanged: int
    """Devices whose schedule is already the plan's: nothing sent."""
    refused: dict[str, int] = field(default_factory=dict)
    """Schedules refused before sending, by reason (``SCHEDULE_REJECT_REASONS``)."""
    refused_devices: dict[str, list[str]] = field(default_factory=dict)
    """The first ``LISTED`` devices refused for each reason."""
    valid_until: float = math.nan
    """End of the plan: the devices keep to it until then [UTC epoch s]."""


class _Grid:
    """Schedules over the fleet's rows: a grid and a validity per row, slots as matrices.

    ``p`` holds the setpoints; ``lo`` and ``hi`` the limits, made only once a schedule
    with limits comes (float32, NaN = none).
    """

    LIMITS = ("lo", "hi")

    def __init__(self, n: int) -> None:
        self.start = np.full(n, np.inf)
        self.step = np.ones(n)
        self.until = np.full(n, -np.inf)
        self.seq = np.full(n, -1, np.int64)
        self.plan = np.full(n, "", dtype=object)
        self.p = np.full((n, 0), np.nan, np.float32)
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def _widen(self, width: int) -> None:
        if width > self.p.shape[1]:
            for name in ("p", *self.LIMITS):
                old = getattr(self, name)
                if old is not None:
                    grown = np.full((len(self.start), width), np.nan, np.float32)
                    grown[:, : old.shape[1]] = old
                    setattr(self, name, grown)

    def _set(self, name: str, rows: IntArray, values: np.ndarray | None) -> None:
        """Rows ``rows`` of matrix ``name`` to ``values`` (NaN-padded; None = all NaN)."""
        mat = getattr(self, name)
        if mat is None:
            if values is None:
                return
            mat = np.full(self.p.shape, np.nan, np.float32)
            setattr(self, name, mat)
        mat[rows] = np.nan
        if values is not None:
            mat[rows, : values.shape[1]] = values

    def put(
        self,
        rows: IntArray,
        start: float,
        step: float,
        until: float,
        p: FloatArray,
        seq: IntArray,
        plan: str = "",
        lo: FloatArray | None = None,
        hi: FloatArray | None = None,
    ) -> None:
        self._widen(p.shape[1])
        self._set("p", rows, p)
        self._set("lo", rows, lo)
        self._set("hi", rows, hi)
        self.start[rows], self.step[rows], self.until[rows] = start, step, until
        self.seq[rows] = seq
        self.plan[rows] = plan

    def copy_rows(self, other: _Grid, rows: IntArray) -> None:
        """Rows ``rows`` of ``other`` into the same rows here."""
        self._widen(other.p.shape[1])
        for name in ("p", *self.LIMITS):
            mat = getattr(other, name)
            self._set(name, rows, None if mat is None else mat[rows])
        for name in ("start", "step", "until", "seq", "plan"):
            getattr(self, name)[rows] = getattr(other, name)[rows]

    def at(self, t: float) -> FloatArray:
        """Each row's setpoint at ``t`` (as ``slot_values``, without copying the slots)."""
        width = self.p.shape[1]
        with np.errstate(invalid="ignore"):
            k = np.floor((t - self.start) / self.step)
        live = (t >= self.start) & (t < self.until) & (k >= 0) & (k < width)
        if not width or not live.any():
            return np.full(len(self.start), np.nan)
        rows = np.flatnonzero(live)
        out = np.full(len(self.start), np.nan)
        out[rows] = self.p[rows, k[rows].astype(np.int64)]
        return out

    def over(
        self, rows: IntArray, start: float, step: float, steps: int, name: str = "p"
    ) -> np.ndarray:
        """Slots of ``rows`` over a grid of ``steps`` slots from ``start`` (float32).

        ``name`` is ``p`` (setpoints), ``lo`` or ``hi`` (limits). NaN where a row has no
        slot then (before its start, from its ``until``). Rows on the same grid (the usual
        case: one plan after another) are read as column slices.
        """
        out = np.full((len(rows), steps), np.nan, np.float32)
        mat = getattr(self, name)
        width = self.p.shape[1]
        if mat is None or not width or not len(rows):
            return out
        s0, st = self.start[rows], self.step[rows]
        with np.errstate(invalid="ignore"):  # rows with no schedule: an infinite start
            off = (start - s0) / step
            aligned = np.isfinite(off) & (st == step) & (np.abs(off - np.round(off)) < 1e-9)
        idx = np.flatnonzero(aligned)
        shift = np.round(off[idx]).astype(np.int64)
        for k0 in np.unique(shift).tolist():
            sel = idx[shift == k0]
            a, b = max(0, -k0), min(steps, width - k0)
            if a < b:
                out[sel, a:b] = mat[rows[sel], k0 + a : k0 + b]
        other = np.flatnonzero(~aligned & np.isfinite(s0))
        mids = start + (np.arange(steps) + 0.5) * step
        if len(other):  # another grid: slot by slot at the new slots' midpoints
            r = rows[other]
            k = np.floor((mids[None, :] - s0[other, None]) / st[other, None])
            live = (k >= 0) & (k < width)
            kk = np.where(live, k, 0).astype(np.int64)
            out[other] = np.where(live, mat[r[:, None], kk], np.nan)
        out[mids[None, :] >= self.until[rows, None]] = np.nan
        return out

    def carry(self, pos: IntArray) -> _Grid:
        """A grid over new rows, row ``i`` taken from old row ``pos[i]`` (-1: none)."""
        new = _Grid(len(pos))
        has = pos >= 0
        src = pos[has]
        new.start[has], new.step[has] = self.start[src], self.step[src]
        new.until[has], new.seq[has] = self.until[src], self.seq[src]
        new.plan[has] = self.plan[src]
        for name in ("p", *self.LIMITS):
            mat = getattr(self, name)
            if mat is not None:
                carried = np.full((len(pos), mat.shape[1]), np.nan, np.float32)
                carried[has] = mat[src]
                setattr(new, name, carried)
        return new


class PlanExecutor:
    """Sends plans to devices as schedules and knows what each device follows.

    Parameters
    ----------
    state
        The fleet (capabilities: each device's power range, which are controllable).
    link
        Where schedules go.
    clock
        Service clock [UTC epoch s].
    store, writer
        Where schedules and their acks are recorded (off the event loop); ``None`` for
        no record.
    resend_after_s
        A schedule no gateway acknowledged within this is sent again (new ``seq``) [s].
    renew_before_s
        A device whose schedule runs out within this gets the new plan even if its
        slots are unchanged (rolling plans) [s].
    deadband_kw
        A slot that moved less than this is unchanged [kW].

    """

    def __init__(
        self,
        state: FleetState,
        link: DeviceLink,
        clock: Callable[[], float],
        *,
        store: Store | None = None,
        writer: StoreWriter | None = None,
        resend_after_s: float = 60.0,
        renew_before_s: float = 7200.0,
        deadband_kw: float = 0.01,
    ) -> None:
        self.state = state
        self.link = link
        self.clock = clock
        self.store = store
        self.writer = writer
        self.resend_after_s = resend_after_s
        self.renew_before_s = renew_before_s
        self.deadband_kw = deadband_kw
        self.epoch: Callable[[], int | None] = lambda: None
        """The leader's epoch (fencing token) stamped on every schedule sent."""
        self.following = _Grid(state.n)
        """The schedules the devices accepted (what they follow)."""
        self.intended = _Grid(state.n)
        """The newest schedule sent to each device (accepted or not yet)."""
        # sent, not yet acknowledged: the newest schedule of each device only (its slots
        # are the intended ones); id -> row, and per row its id and when it was sent
        self._pending: dict[str, int] = {}
        self._pending_id = np.full(state.n, None, dtype=object)
        self._sent_at = np.full(state.n, np.nan)
        self.counts: dict[str, int] = {"sent": 0, "resent": 0, "accepted": 0, "rejected": 0}
        self._applied = 0
        self.plans: dict[str, float] = {}
        """Plans applied, with their end [UTC epoch s] (the latest 100)."""

    # ------------------------------------------------------------------ the fleet
    def replace_fleet(self, state: FleetState) -> None:
        """Carry on over a new fleet (devices matched by id; those that left are dropped)."""
        pos = pd.Index(self.state.device_ids).get_indexer(state.device_ids)  # type: ignore[arg-type]
        pos = np.asarray(pos, dtype=np.int64)
        self.following = self.following.carry(pos)
        self.intended = self.intended.carry(pos)
        has = pos >= 0
        ids = np.full(state.n, None, dtype=object)
        ids[has] = self._pending_id[pos[has]]
        sent_at = np.full(state.n, np.nan)
        sent_at[has] = self._sent_at[pos[has]]
        self._pending_id, self._sent_at = ids, sent_at
        live = np.flatnonzero(ids != None)  # noqa: E711 (an object array)
        self._pending = dict(zip(ids[live].tolist(), live.tolist(), strict=True))
        self.state = state

    # ------------------------------------------------------------------ plans
    def apply(
        self, plan: PlanSeries | Plan, now: float | None = None, *, plan_id: str | None = None
    ) -> ApplyResult:
        """Send ``plan`` to its devices as schedules: only those that changed.

        ``plan`` is a :class:`PlanSeries`, or the optimiser's :class:`Plan` (taken through
        :func:`series_of`: its controllable devices with a setpoint; ``plan_id`` names
        it, by default ``plan-<start>-<n>``). Slots already over are dropped; each
        device's schedule is checked against what it can do, and refused ones are
        recorded with their reason and not sent.

        Raises
        ------
        ValueError
            If the plan id is empty or longer than ``MAX_PLAN_ID`` characters, or the
            plan has no slots.

        """
        now = self.clock() if now is None else float(now)
        if isinstance(plan, Plan):
            self._applied += 1
            plan = series_of(plan, self.state, plan_id or _default_id(plan, self._applied))
        pid = plan.plan_id
        if not (0 < len(pid) <= MAX_PLAN_ID) or not pid.isprintable():
            raise ValueError(f"plan id {pid[:60]!r} must be 1-{MAX_PLAN_ID} printable characters")
        if plan.steps == 0:
            raise ValueError(f"plan {pid!r} has no slots: give at least one column of p_kw")
        st = self.state
        refused: dict[str, list[str]] = {}
        pos = np.asarray(
            pd.Index(st.device_ids).get_indexer(np.asarray(plan.device_ids, dtype=object)),  # type: ignore[arg-type]
            dtype=np.int64,
        )
        unknown = pos < 0
        if unknown.any():
            refused["unknown_device"] = [str(d) for d in plan.device_ids[unknown]]
        keep = np.flatnonzero(~unknown)
        rows = pos[keep]
        k0 = max(0, math.floor((now - plan.start) / plan.step_s)) if now > plan.start else 0
        k0 = min(k0, plan.steps - 1)
        start = plan.start + k0 * plan.step_s
        p = np.asarray(plan.p_kw, dtype=np.float64)[keep, k0:]
        lo, hi = (
            None if lim is None else np.asarray(lim, dtype=np.float64)[keep, k0:]
            for lim in (plan.p_min_kw, plan.p_max_kw)
        )
        devices = st.device_ids[rows]
        batch = ScheduleBatch(
            np.full(len(rows), "", dtype=object),
            devices,
            np.zeros(len(rows), np.int64),
            p,
            start,
            plan.step_s,
            plan.end,
            now,
            pid,
            lo,
            hi,
        )
        reasons = check_schedules(
            batch, now, -st.p_load_max_kw[rows], st.p_gen_max_kw[rows], st.controllable()[rows]
        )
        bad = np.flatnonzero(reasons != None)  # noqa: E711 (an object array)
        for i in bad.tolist():
            refused.setdefault(str(reasons[i]), []).append(str(devices[i]))
        ok = np.flatnonzero(reasons == None)  # noqa: E711
        changed = self._changed(rows[ok], batch.take(ok), now)
        send = ok[changed]
        if len(bad):
            self._record_refused(batch.take(bad), [str(r) for r in reasons[bad]], now)
        sent = 0
        if len(send):
            sent = self._send(rows[send], batch.take(send), now)
        self.plans[pid] = plan.end
        while len(self.plans) > 100:
            self.plans.pop(next(iter(self.plans)))
        counts = {r: len(d) for r, d in refused.items()}
        if counts:
            log.warning("plan %s: schedules refused before sending: %s", pid, counts)
        return ApplyResult(
            pid,
            sent,
            int(len(ok) - len(send)),
            counts,
            {r: d[:LISTED] for r, d in refused.items()},
            plan.end,
        )

    def _changed(self, rows: IntArray, batch: ScheduleBatch, now: float) -> np.ndarray:
        """Which of ``rows`` need ``batch``'s schedule: slots moved, shortened, or renewal due."""
        if not len(rows):
            return np.zeros(0, bool)
        old = self.intended
        mids = batch.start + (np.arange(batch.steps) + 0.5) * batch.step_s
        moved = np.zeros((len(rows), batch.steps), bool)
        for name, values in (("p", batch.p_kw), ("lo", batch.p_min_kw), ("hi", batch.p_max_kw)):
            if values is None and getattr(old, name) is None:
                continue
            before = old.over(rows, batch.start, batch.step_s, batch.steps, name)
            new = (
                np.full(before.shape, np.nan, np.float32)
                if values is None
                else np.asarray(values, dtype=np.float32)
            )
            with np.errstate(invalid="ignore"):
                moved |= np.abs(new - before) > self.deadband_kw
            moved |= np.isnan(new) != np.isnan(before)
        within = mids[None, :] < old.until[rows, None]
        differs = (moved & within).any(axis=1)
        with np.errstate(invalid="ignore"):  # no schedule yet: an infinite start
            r = np.mod(batch.start - old.start[rows], batch.step_s)
        off_grid = np.minimum(r, batch.step_s - r) > 1e-6
        grid = (old.step[rows] != batch.step_s) | off_grid
        shorter = batch.valid_until < old.until[rows] - 1e-6
        longer = batch.valid_until > old.until[rows] + 1e-6
        due = longer & (old.until[rows] - now < self.renew_before_s)
        out: np.ndarray = differs | (grid & np.isfinite(old.until[rows])) | shorter | due
        return out

    def _send(self, rows: IntArray, batch: ScheduleBatch, now: float) -> int:
        """Number, send, remember and record schedules for ``rows``."""
        seq = np.maximum(self.intended.seq[rows] + 1, int(now * 1000))
        seq = np.maximum(seq, self.following.seq[rows] + 1)
        ids = (
            f"{batch.plan_id}:" + pd.Series(seq).astype(str) + ":" + pd.Series(batch.device_ids)
        ).to_numpy(dtype=object)
        out = ScheduleBatch(
            ids,
            batch.device_ids,
            seq,
            batch.p_kw,
            batch.start,
            batch.step_s,
            batch.valid_until,
            now,
            batch.plan_id,
            batch.p_min_kw,
            batch.p_max_kw,
            self.epoch(),
        )
        self.link.send_schedules(out)
        self.intended.put(
            rows,
            out.start,
            out.step_s,
            out.valid_until,
            out.p_kw,
            seq,
            out.plan_id,
            out.p_min_kw,
            out.p_max_kw,
        )
        for old in self._pending_id[rows].tolist():  # superseded: a late ack says nothing
            if old is not None:
                self._pending.pop(old, None)
        self._pending.update(zip(ids.tolist(), rows.tolist(), strict=True))
        self._pending_id[rows] = ids
        self._sent_at[rows] = now
        self.counts["sent"] += len(out)
        if self.writer is not None and self.store is not None:
            self.writer.op(
                "schedules",
                partial(self.store.save_schedules, out),
                {"plan": out.plan_id, "issued_at": now, "schedules": len(out)},
            )
        return len(out)

    def _record_refused(self, batch: ScheduleBatch, reasons: list[str], now: float) -> None:
        if self.writer is None or self.store is None:
            return
        ids = np.array(
            [f"{batch.plan_id}:refused:{int(now * 1000)}:{d}" for d in batch.device_ids.tolist()],
            dtype=object,
        )
        refused = ScheduleBatch(
            ids,
            batch.device_ids,
            np.full(len(batch), -1, np.int64),
            batch.p_kw,
            batch.start,
            batch.step_s,
            batch.valid_until,
            now,
            batch.plan_id,
            batch.p_min_kw,
            batch.p_max_kw,
        )
        self.writer.op(
            "refused schedules",
            partial(self.store.save_schedules, refused, "refused", reasons),
            {"plan": batch.plan_id, "refused": len(batch), "reasons": sorted(set(reasons))},
        )

    # ------------------------------------------------------------------ each cycle
    def take_acks(self, acks: Iterable[CommandAck], now: float) -> list[CommandAck]:
        """Take the acks of schedules; return the others (commands' acks) untouched.

        ``accepted``: the device follows that schedule from now on. ``rejected``: it keeps
        the one it had (the intended schedule goes back to it).
        """
        rest: list[CommandAck] = []
        verdicts: dict[tuple[str, str | None], list[str]] = {}
        accepted: list[int] = []
        rejected: list[int] = []
        for a in acks:
            row = self._take(a.command_id)
            if row is None:
                rest.append(a)
                continue
            verdicts.setdefault((a.status, a.reason), []).append(a.command_id)
            (accepted if a.status == "accepted" else rejected).append(row)
            if a.status != "accepted":
                log.warning(
                    "device %s rejected schedule %s: %s", a.device_id, a.command_id, a.reason
                )
        if accepted:
            self.following.copy_rows(self.intended, np.array(accepted, dtype=np.int64))
        if rejected:
            self.intended.copy_rows(self.following, np.array(rejected, dtype=np.int64))
        self.counts["accepted"] += len(accepted)
        self.counts["rejected"] += len(rejected)
        if self.writer is not None and self.store is not None:
            for (status, why), ids in verdicts.items():
                self.writer.op(
                    "schedule acks",
                    partial(self.store.set_schedule_status, ids, status, why, ts=now),
                    {"status": status, "reason": why, "schedules": ids[:100]},
                )
        return rest

    def take_expired(self, ids: Iterable[str]) -> list[str]:
        """Take the schedules the link reports unacknowledged at their end; return the rest."""
        mine: list[str] = []
        rest: list[str] = []
        for cid in ids:
            (mine if self._take(cid) is not None else rest).append(cid)
        if mine and self.writer is not None and self.store is not None:
            self.writer.op(
                "expired schedules",
                partial(self.store.set_schedule_status, mine, "expired", None),
                {"status": "expired", "schedules": mine[:100]},
            )
        return rest

    def tick(self, now: float) -> int:
        """Send again the newest schedules no gateway acknowledged in time; forget lapsed ones.

        Returns how many were sent again.
        """
        if not self._pending:
            return 0
        waiting = self._pending_id != None  # noqa: E711 (an object array)
        lapsed = np.flatnonzero(waiting & (self.intended.until <= now))
        for sid in self._pending_id[lapsed].tolist():
            self._take(sid)
        late = waiting & (self.intended.until > now) & (self._sent_at + self.resend_after_s <= now)
        if not late.any() or not self.link.connected:
            return 0
        g = self.intended
        rows = np.flatnonzero(late)
        keys = pd.DataFrame(
            {"plan": g.plan[rows], "start": g.start[rows], "step": g.step[rows],
             "until": g.until[rows]}
        )  # fmt: skip
        n = 0
        groups = keys.groupby(["plan", "start", "step", "until"], sort=False).indices
        for key, idx in groups.items():
            assert isinstance(key, tuple)
            pid, start, step, until = str(key[0]), float(key[1]), float(key[2]), float(key[3])
            r = rows[idx]
            steps = max(1, math.ceil((until - start) / step - 1e-9))
            batch = ScheduleBatch(
                np.full(len(r), "", dtype=object),
                self.state.device_ids[r],
                np.zeros(len(r), np.int64),
                g.p[r, :steps].astype(np.float64),
                start,
                step,
                until,
                now,
                pid,
                None if g.lo is None else g.lo[r, :steps].astype(np.float64),
                None if g.hi is None else g.hi[r, :steps].astype(np.float64),
            )
            n += self._send(r, batch, now)
        self.counts["resent"] += n
        log.info("re-sent %d unacknowledged schedule(s)", n)
        return n

    def _take(self, sid: str) -> int | None:
        """Forget a pending schedule; its row, or None if it is not pending."""
        row = self._pending.pop(sid, None)
        if row is not None and self._pending_id[row] == sid:
            self._pending_id[row] = None
        return row

    def planned_kw(self, now: float) -> FloatArray:
        """Each device's accepted schedule's power now [kW]; NaN where it follows none."""
        return self.following.at(now)

    def pending(self) -> int:
        """Schedules sent and not yet acknowledged."""
        return len(self._pending)

    # ------------------------------------------------------------------ restarts
    def resume(self, now: float) -> int:
        """Take up, from the store, the schedules devices accepted and still follow."""
        if self.store is None:
            return 0
        live = self.store.live_schedules(now)
        if live.empty:
            return 0
        pos = np.asarray(
            pd.Index(self.state.device_ids).get_indexer(live["device_id"].to_numpy(object)),  # type: ignore[arg-type]
            dtype=np.int64,
        )
        starts = _epoch(live["start"])
        untils = _epoch(live["valid_until"])
        steps = live["step_s"].to_numpy(np.float64)
        seqs = live["seq"].to_numpy(np.int64)
        slots = live["p_kw"].tolist()
        plan_ids = live["plan_id"].astype(str).tolist()
        lows, highs = live["p_min_kw"].tolist(), live["p_max_kw"].tolist()
        n = 0
        for i in np.flatnonzero(pos >= 0).tolist():
            p = _row(slots[i])
            lo = None if lows[i] is None else _row(lows[i])
            hi = None if highs[i] is None else _row(highs[i])
            for grid in (self.following, self.intended):
                grid.put(
                    pos[i : i + 1],
                    starts[i],
                    steps[i],
                    untils[i],
                    p,
                    seqs[i : i + 1],
                    plan_ids[i],
                    lo,
                    hi,
                )
            n += 1
        if n:
            log.warning("resumed the schedules of %d device(s) from the store", n)
        return n


def series_of(plan: Plan, state: FleetState, plan_id: str) -> PlanSeries:
    """The setpoints of an optimiser's plan that go to devices, as a :class:`PlanSeries`.

    Kept: the devices the fleet knows and may command, with at least one finite
    setpoint (the rows of sites the optimiser found infeasible are NaN: those devices
    keep what they have). Loads and other devices that take no command are forecasts in
    the plan, not setpoints, and are left out. PV and wind setpoints act as export caps.
    """
    pos = np.asarray(
        pd.Index(state.device_ids).get_indexer(np.asarray(plan.device_ids, dtype=object)),  # type: ignore[arg-type]
        dtype=np.int64,
    )
    p = np.asarray(plan.p_kw, dtype=np.float64)
    keep = (pos >= 0) & np.isfinite(p).any(axis=1)
    keep[keep] &= state.controllable()[pos[keep]]
    return PlanSeries(
        plan_id,
        np.asarray(plan.device_ids, dtype=object)[keep],
        p[keep],
        float(plan.start_ts),
        float(plan.step_h) * 3600.0,
    )


def _default_id(plan: Plan, n: int) -> str:
    """``plan-YYYYMMDDTHHMMZ-n``: the plan's start and how many plans came before."""
    start = pd.Timestamp(plan.start_ts, unit="s", tz="UTC").strftime("%Y%m%dT%H%MZ")
    return f"plan-{start}-{n}"


def _row(values: list[float | None]) -> FloatArray:
    """A stored row of slots (null = NaN) as a (1, slots) matrix."""
    return np.array([[np.nan if x is None else float(x) for x in values]], dtype=np.float64)


def _epoch(ts: pd.Series) -> FloatArray:
    """Aware datetimes as UTC epoch seconds."""
    secs = (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return np.asarray(secs, dtype=np.float64)
