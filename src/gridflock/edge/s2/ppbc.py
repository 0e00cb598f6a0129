"""PPBC (power-profile based control): a shiftable appliance's profile and where to run it.

A PPBC resource manager (a washing machine, a dishwasher) sends a
``PPBC.PowerProfileDefinition``: between ``start_time`` and ``end_time`` it runs a chain
of sequence containers in order; for each container the CEM picks one of its alternative
power sequences and a start time (``PPBC.ScheduleInstruction``). The RM's own plan, what
it does without a CEM, is every container at its earliest moment with its first sequence.

A Gridflock setpoint for such a device means "during ``[now, valid_until)`` take at most
``-p_setpoint_kw`` from the grid": :func:`shift_plan` moves the containers that have not
started out of that window as far as ``end_time`` allows, and picks the sequence that
leaves the least energy above the limit in it. Powers here are S2's sign (> 0 consumed,
[W]); the driver turns them into generator-sign kW.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from s2python.common import Duration, PowerForecastValue
from s2python.generated.gen_s2 import PPBCPowerSequenceStatus
from s2python.ppbc import (
    PPBCPowerProfileDefinition,
    PPBCPowerProfileStatus,
    PPBCPowerSequence,
    PPBCPowerSequenceContainer,
)

from gridflock.edge.s2.frbc import ELECTRIC

__all__ = [
    "PlannedSequence",
    "default_plan",
    "excess_wh",
    "power_at",
    "sequence_steps",
    "shift_plan",
]

_DONE = {PPBCPowerSequenceStatus.FINISHED, PPBCPowerSequenceStatus.ABORTED}
_RUNNING = {PPBCPowerSequenceStatus.EXECUTING, PPBCPowerSequenceStatus.INTERRUPTED}


@dataclass(frozen=True)
class PlannedSequence:
    """One container's chosen sequence and its start."""

    container_id: uuid.UUID
    sequence_id: uuid.UUID
    start: datetime
    steps: tuple[tuple[float, float], ...]
    """(duration [s], electric power [W], S2 sign) per element, in order."""
    fixed: bool = False
    """Already running (or interrupted): not the CEM's to move."""

    @property
    def duration_s(self) -> float:
        """Total duration [s]."""
        return sum(d for d, _ in self.steps)

    @property
    def end(self) -> datetime:
        """When the sequence ends."""
        return self.start + timedelta(seconds=self.duration_s)


def _electric(values: Sequence[PowerForecastValue]) -> float:
    return sum(float(v.value_expected) for v in values if v.commodity_quantity in ELECTRIC)


def sequence_steps(seq: PPBCPowerSequence) -> tuple[tuple[float, float], ...]:
    """A sequence's elements as (duration [s], expected electric power [W])."""
    return tuple((e.duration.root / 1000.0, _electric(e.power_values)) for e in seq.elements)


def _normal(container: PPBCPowerSequenceContainer) -> list[PPBCPowerSequence]:
    return [s for s in container.power_sequences if not s.abnormal_condition_only]


def _status_of(
    status: PPBCPowerProfileStatus | None, defn: PPBCPowerProfileDefinition
) -> dict[uuid.UUID, tuple[PPBCPowerSequenceStatus, uuid.UUID | None, float]]:
    out: dict[uuid.UUID, tuple[PPBCPowerSequenceStatus, uuid.UUID | None, float]] = {}
    if status is None:
        return out
    for s in status.sequence_container_status:
        if s.power_profile_id != defn.id:
            continue
        # s2-python 0.11 declares ``progress`` a UUID, so a status that carries one does not
        # validate; without it a running sequence is taken to have just started.
        raw: object = s.progress
        progress = raw.root / 1000.0 if isinstance(raw, Duration) else 0.0
        out[s.sequence_container_id] = (s.status, s.selected_sequence_id, progress)
    return out


def _running(
    container: PPBCPowerSequenceContainer,
    selected: uuid.UUID | None,
    progress_s: float,
    now: datetime,
) -> PlannedSequence | None:
    for seq in container.power_sequences:
        if seq.id == selected:
            start = now - timedelta(seconds=progress_s)
            return PlannedSequence(container.id, seq.id, start, sequence_steps(seq), fixed=True)
    return None


def default_plan(
    defn: PPBCPowerProfileDefinition, status: PPBCPowerProfileStatus | None, now: datetime
) -> list[PlannedSequence]:
    """The RM's own plan: every container as early as it can, with its first sequence."""
    return shift_plan(defn, status, now, window_end=now, limit_w=float("inf"))[0]


def shift_plan(
    defn: PPBCPowerProfileDefinition,
    status: PPBCPowerProfileStatus | None,
    now: datetime,
    window_end: datetime,
    limit_w: float,
) -> tuple[list[PlannedSequence], float]:
    """Plan the containers to leave as little power above ``limit_w`` in the window as can be.

    The window is ``[now, window_end)``; the plan keeps within ``[start_time, end_time]``
    and each sequence's ``max_pause_before``. Returns the plan and the energy above the limit
    left in the window [Wh]. Containers go
    in order; each takes the sequence and start (its earliest, or the window's end pushed
    back to what the later containers still need before ``end_time``) with the least
    excess, then the earliest start. Finished containers are skipped, running ones kept.
    """
    known = _status_of(status, defn)
    containers = list(defn.power_sequences_containers)
    open_ = [c for c in containers if c.id not in known or known[c.id][0] not in _DONE]
    min_dur = [
        min((sum(d for d, _ in sequence_steps(s)) for s in _normal(c)), default=0.0) for c in open_
    ]
    cursor = max(defn.start_time, now)
    prev_end: datetime | None = None
    plan: list[PlannedSequence] = []
    excess = 0.0
    for i, container in enumerate(open_):
        st, selected, progress = known.get(
            container.id, (PPBCPowerSequenceStatus.NOT_SCHEDULED, None, 0.0)
        )
        if st in _RUNNING:
            running = _running(container, selected, progress, now)
            if running is not None:
                plan.append(running)
                excess += excess_wh([running], now, window_end, limit_w)
                cursor = max(cursor, running.end)
                prev_end = running.end
                continue
        after_s = sum(min_dur[i + 1 :])
        best: tuple[float, datetime, PlannedSequence] | None = None
        for seq in _normal(container):
            steps = sequence_steps(seq)
            dur = sum(d for d, _ in steps)
            latest = defn.end_time - timedelta(seconds=dur + after_s)
            if prev_end is not None and seq.max_pause_before is not None:
                latest = min(latest, prev_end + timedelta(milliseconds=seq.max_pause_before.root))
            if latest < cursor:
                continue
            for start in (cursor, min(max(cursor, window_end), latest)):
                cand = PlannedSequence(container.id, seq.id, start, steps)
                cost = excess_wh([cand], now, window_end, limit_w)
                if best is None or (cost, start) < (best[0] - 1e-9, best[1]):
                    best = (cost, start, cand)
        if best is None:
            # Nothing fits before end_time any more: run the first sequence at once.
            seq0 = (_normal(container) or list(container.power_sequences))[0]
            late = PlannedSequence(container.id, seq0.id, cursor, sequence_steps(seq0))
            best = (excess_wh([late], now, window_end, limit_w), cursor, late)
        plan.append(best[2])
        excess += best[0]
        cursor = best[2].end
        prev_end = best[2].end
    return plan, excess


def power_at(plan: Sequence[PlannedSequence], t: datetime) -> float:
    """Planned electric power at ``t`` [W], S2 sign (0 outside every sequence)."""
    total = 0.0
    for p in plan:
        offset = (t - p.start).total_seconds()
        if offset < 0:
            continue
        for d, w in p.steps:
            if offset < d:
                total += w
                break
            offset -= d
    return total


def excess_wh(plan: Sequence[PlannedSequence], a: datetime, b: datetime, limit_w: float) -> float:
    """Energy of the plan above ``limit_w`` within ``[a, b)`` [Wh]."""
    if b <= a or limit_w == float("inf"):
        return 0.0
    total = 0.0
    for p in plan:
        t0 = p.start
        for d, w in p.steps:
            t1 = t0 + timedelta(seconds=d)
            lo, hi = max(t0, a), min(t1, b)
            if hi > lo and w > limit_w:
                total += (w - limit_w) * (hi - lo).total_seconds() / 3600.0
            t0 = t1
    return total
