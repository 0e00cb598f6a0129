"""Schedules: a plan's power setpoints handed to devices ahead of time, with a validity.

A schedule tells one device what to hold, slot by slot, on a regular grid of ``step_s``
seconds from ``start`` (UTC epoch s), until ``valid_until`` (the plan's end). The device
follows it on its own, so it keeps to the plan through a communication outage; after
``valid_until`` it falls back to its own control (its safe default). Power is in kW with
the generator sign convention (``p_kw > 0`` delivered to the grid, ``< 0`` taken from it);
a NaN slot leaves the device on its own control for that slot. A schedule may also carry
**limits** per slot (``p_min_kw``, ``p_max_kw``; NaN = none): in a slot without a setpoint
the device runs on its own control kept within them (an import cap is a negative
``p_min_kw``, an export cap a ``p_max_kw``).

Two layers decide what a device does at any moment:

1. a **command** (an event's setpoint, ``CommandBatch``) while it is valid: it wins;
2. else its **schedule**'s slot, while the schedule is valid;
3. else its own control.

So an event overrides the plan while it holds the device, and the device goes back to its
schedule when the event releases it (``p_setpoint_kw: null``) or its command lapses.
Schedules have their own ``seq`` per device (independent of commands): a gateway keeps
the newest schedule, refuses a replayed one and an expired one, each with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflock.domain.messages import FloatArray, IntArray, StrArray

__all__ = [
    "MAX_SCHEDULE_HORIZON_S",
    "MAX_SCHEDULE_STEPS",
    "MAX_STEP_S",
    "MIN_STEP_S",
    "PLAN_STEP_S",
    "SCHEDULE_REJECT_REASONS",
    "PlanSeries",
    "ScheduleBatch",
    "check_schedules",
    "slot_values",
]

#: The plans' resolution [s]: 15-minute slots.
PLAN_STEP_S = 900.0
#: Most slots one schedule may carry (96 h of 15-minute slots).
MAX_SCHEDULE_STEPS = 384
#: Shortest and longest slot a schedule may use [s].
MIN_STEP_S, MAX_STEP_S = 1.0, 3600.0
#: Longest a schedule may stay valid after it is issued [s] (a week).
MAX_SCHEDULE_HORIZON_S = 7 * 86400.0
#: Tolerance on the capability check [kW] (rounding in the planner).
_RANGE_TOL_KW = 1e-6

#: Why a schedule is refused (by the service before it is sent, or by a gateway).
SCHEDULE_REJECT_REASONS: dict[str, str] = {
    "expired": "valid_until had passed when the schedule arrived",
    "replayed": "seq not greater than the last schedule seq seen for the device",
    "unknown_device": "the gateway does not carry this device",
    "out_of_range": "a slot's setpoint is outside what the device can do",
    "not_controllable": "the device cannot be scheduled (for example a plain meter)",
    "bad_schedule": "the time grid is wrong: step, length, or valid_until outside the slots",
    "deposed_leader": "epoch lower than the highest the gateway has seen: a deposed leader sent it",
}


@dataclass(frozen=True)
class ScheduleBatch:
    """Schedules for many devices on one time grid, all from one plan.

    Row ``i`` is device ``device_ids[i]``: ``p_kw[i, k]`` is its setpoint over
    ``[start + k * step_s, start + (k + 1) * step_s)`` [kW, generator sign; NaN = own
    control]. Every schedule holds until ``valid_until`` (at most the end of the last
    slot), then the device returns to its own control.
    """

    schedule_ids: StrArray
    device_ids: StrArray
    seq: IntArray
    p_kw: FloatArray
    start: float
    step_s: float
    valid_until: float
    issued_at: float
    plan_id: str
    p_min_kw: FloatArray | None = None
    """Lower limit per slot [kW] (an import cap when negative); NaN = none."""
    p_max_kw: FloatArray | None = None
    """Upper limit per slot [kW] (an export cap); NaN = none."""
    epoch: int | None = None
    """Fencing token of the control leader that issued them (``None``: one process runs all)."""

    def __post_init__(self) -> None:
        n = len(self.device_ids)
        if self.p_kw.ndim != 2 or self.p_kw.shape[0] != n:
            raise ValueError(
                f"p_kw must have one row per device ({n}), got shape {self.p_kw.shape}"
            )
        for name in ("p_min_kw", "p_max_kw"):
            lim = getattr(self, name)
            if lim is not None and lim.shape != self.p_kw.shape:
                raise ValueError(f"{name} must have the shape of p_kw {self.p_kw.shape}")
        if len(self.schedule_ids) != n or len(self.seq) != n:
            raise ValueError("schedule_ids, device_ids and seq must have the same length")

    def __len__(self) -> int:
        return len(self.device_ids)

    @property
    def steps(self) -> int:
        """Slots per schedule."""
        return int(self.p_kw.shape[1])

    @property
    def end(self) -> float:
        """End of the last slot [UTC epoch s]."""
        return self.start + self.steps * self.step_s

    def take(self, rows: IntArray) -> ScheduleBatch:
        """The schedules of ``rows`` only."""
        return ScheduleBatch(
            self.schedule_ids[rows],
            self.device_ids[rows],
            self.seq[rows],
            self.p_kw[rows],
            self.start,
            self.step_s,
            self.valid_until,
            self.issued_at,
            self.plan_id,
            None if self.p_min_kw is None else self.p_min_kw[rows],
            None if self.p_max_kw is None else self.p_max_kw[rows],
            self.epoch,
        )


@dataclass(frozen=True)
class PlanSeries:
    """A plan as the executor takes it: each device's setpoint series on one 15-min grid.

    ``p_kw[i, k]`` is device ``device_ids[i]``'s planned power over slot ``k`` starting at
    ``start + k * step_s`` [kW, generator sign]; NaN leaves it to its own control. The plan
    ends at ``start + steps * step_s``: its schedules are valid until then.
    """

    plan_id: str
    device_ids: StrArray
    p_kw: FloatArray
    start: float
    step_s: float = PLAN_STEP_S
    p_min_kw: FloatArray | None = None
    """Lower limit per slot [kW] where no setpoint is given (NaN: none)."""
    p_max_kw: FloatArray | None = None
    """Upper limit per slot [kW] where no setpoint is given (NaN: none)."""

    def __post_init__(self) -> None:
        for name in ("p_min_kw", "p_max_kw"):
            lim = getattr(self, name)
            if lim is not None and np.shape(lim) != np.shape(self.p_kw):
                raise ValueError(
                    f"plan {self.plan_id!r}: {name} must have the shape of p_kw "
                    f"{np.shape(self.p_kw)}"
                )
        if self.p_kw.ndim != 2 or self.p_kw.shape[0] != len(self.device_ids):
            raise ValueError(
                f"plan {self.plan_id!r}: p_kw must have one row per device "
                f"({len(self.device_ids)}), got shape {self.p_kw.shape}"
            )
        if not (np.isfinite(self.start) and np.isfinite(self.step_s) and self.step_s > 0):
            raise ValueError(
                f"plan {self.plan_id!r}: start and step_s must be finite, step_s > 0 "
                f"(got start={self.start!r}, step_s={self.step_s!r})"
            )

    @property
    def steps(self) -> int:
        """Slots in the plan."""
        return int(self.p_kw.shape[1])

    @property
    def end(self) -> float:
        """End of the plan [UTC epoch s]."""
        return self.start + self.steps * self.step_s


def check_schedules(
    batch: ScheduleBatch,
    now: float,
    p_min_kw: FloatArray,
    p_max_kw: FloatArray,
    controllable: np.ndarray | None = None,
) -> np.ndarray:
    """Why each schedule must be refused (a reason code of ``SCHEDULE_REJECT_REASONS``).

    ``p_min_kw``/``p_max_kw`` are each row's device limits [kW, generator sign: the most
    it can take from the grid as a negative number, the most it can deliver]. Returns an
    object array with ``None`` for a schedule that may be sent. Checks, in order: the
    grid (step within ``[MIN_STEP_S, MAX_STEP_S]``, at most ``MAX_SCHEDULE_STEPS`` slots,
    ``start < valid_until <= end``, within ``MAX_SCHEDULE_HORIZON_S`` of ``now``), not in
    the past (``valid_until > now``), controllable, every finite slot within the limits,
    and each slot's own limits in order (``p_min_kw <= p_max_kw``, else ``bad_schedule``).
    """
    n = len(batch)
    out = np.full(n, None, dtype=object)
    if n == 0:
        return out
    grid_ok = (
        np.isfinite(batch.start)
        and np.isfinite(batch.step_s)
        and np.isfinite(batch.valid_until)
        and MIN_STEP_S <= batch.step_s <= MAX_STEP_S
        and 0 < batch.steps <= MAX_SCHEDULE_STEPS
        and batch.start < batch.valid_until <= batch.end + 1e-6
        and batch.valid_until - now <= MAX_SCHEDULE_HORIZON_S
    )
    if not grid_ok:
        out[:] = "bad_schedule"
        return out
    if batch.valid_until <= now:
        out[:] = "expired"
        return out
    p = batch.p_kw
    with np.errstate(invalid="ignore"):
        low = np.nanmin(np.where(np.isfinite(p), p, np.inf), axis=1)
        high = np.nanmax(np.where(np.isfinite(p), p, -np.inf), axis=1)
    bad_value = np.isinf(p).any(axis=1)
    out_range = bad_value | (low < p_min_kw - _RANGE_TOL_KW) | (high > p_max_kw + _RANGE_TOL_KW)
    out[out_range] = "out_of_range"
    lo, hi = batch.p_min_kw, batch.p_max_kw
    bad_limit = np.zeros(n, bool)
    for lim in (lo, hi):
        if lim is not None:
            bad_limit |= np.isinf(lim).any(axis=1)
    if lo is not None and hi is not None:
        with np.errstate(invalid="ignore"):
            bad_limit |= (lo > hi).any(axis=1)
    out[bad_limit] = "bad_schedule"
    if controllable is not None:
        out[~np.asarray(controllable, bool)] = "not_controllable"
    return out


def slot_values(
    start: FloatArray, step_s: FloatArray, until: FloatArray, p_kw: FloatArray, t: float
) -> FloatArray:
    """Each row's scheduled power at time ``t`` [kW]; NaN where no schedule holds then.

    Rows are devices with their own schedule grid: ``start``, ``step_s`` and ``until``
    (valid_until) per row, ``p_kw`` one row of slots each (NaN-padded to a common width).
    """
    n, width = p_kw.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.floor((t - start) / step_s)
    live = (t >= start) & (t < until) & (k >= 0) & (k < width)
    kk = np.where(live, k, 0).astype(np.int64)
    out: FloatArray = (
        np.where(live, p_kw[np.arange(n), kk], np.nan) if width else np.full(n, np.nan)
    )
    return out
