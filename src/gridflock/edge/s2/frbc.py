"""FRBC (fill-rate based control): setpoints that never drive the storage out of range.

The CEM keeps the RM's storage model and turns a setpoint into operation modes and factors.

An FRBC resource manager (a battery, a heat pump with a buffer) describes its actuators as
operation modes; each mode has elements per fill-level range, and in each element the
power [W] and the fill rate [fill-level units/s] run linearly from factor 0 to factor 1.
The storage leaks (``FRBC.LeakageBehaviour``) and is used (``FRBC.UsageForecast``), both
lowering the fill level::

    d fill / dt = sum of the actuators' fill rates - leakage(fill) - usage(t)

S2 counts power as consumption (> 0 taken from the grid); Gridflock's generator sign is the
opposite, so ``p_kw = -power_w / 1000``.

The fill-level guard is conservative: for the upper limit it takes the highest fill rate of
every element between the present fill level and the top of the range (and the lowest
leakage and usage there), for the lower limit the reverse, so the fill level cannot leave
its range within the horizon whatever elements it crosses.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from s2python.common import CommodityQuantity, NumberRange, PowerRange
from s2python.frbc import (
    FRBCActuatorDescription,
    FRBCActuatorStatus,
    FRBCLeakageBehaviour,
    FRBCOperationMode,
    FRBCOperationModeElement,
    FRBCSystemDescription,
    FRBCTimerStatus,
    FRBCUsageForecast,
)

__all__ = [
    "ELECTRIC",
    "FrbcPlan",
    "FrbcState",
    "ModeChoice",
    "electric_w",
    "element_at",
    "plan_frbc",
]

ELECTRIC = frozenset(
    {
        CommodityQuantity.ELECTRIC_POWER_L1,
        CommodityQuantity.ELECTRIC_POWER_L2,
        CommodityQuantity.ELECTRIC_POWER_L3,
        CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC,
    }
)
"""The commodity quantities that are electric power [W]; their values add up to the total."""

_EPS = 1e-9


@dataclass(frozen=True)
class ModeChoice:
    """One actuator's instruction: an operation mode and the factor within it."""

    actuator_id: uuid.UUID
    mode_id: uuid.UUID
    factor: float
    power_w: float
    """Electric power at this factor [W], S2 sign (> 0 consumed)."""
    fill_rate: float
    """Fill rate at this factor in the present element [fill-level units/s]."""


@dataclass(frozen=True)
class FrbcPlan:
    """A setpoint turned into instructions, with how far it had to be changed."""

    choices: tuple[ModeChoice, ...]
    p_kw: float
    """The power the instructions give [kW], generator sign."""
    reason: str | None
    """How the setpoint was changed (clipped to the modes, held back by the fill level)."""


@dataclass
class FrbcState:
    """Everything an FRBC resource manager told the CEM about itself."""

    system: FRBCSystemDescription | None = None
    fill_level: float | None = None
    actuator_status: dict[uuid.UUID, FRBCActuatorStatus] = field(default_factory=dict)
    leakage: FRBCLeakageBehaviour | None = None
    usage: FRBCUsageForecast | None = None
    timers: dict[tuple[uuid.UUID, uuid.UUID], datetime] = field(default_factory=dict)
    """When each (actuator, timer) finishes [UTC]."""

    def set_timer(self, msg: FRBCTimerStatus) -> None:
        """Record a running timer (it blocks transitions until ``finished_at``)."""
        self.timers[(msg.actuator_id, msg.timer_id)] = msg.finished_at

    @property
    def fill_range(self) -> tuple[float, float] | None:
        """The storage's fill-level range, or None before a system description."""
        if self.system is None:
            return None
        r = self.system.storage.fill_level_range
        return float(r.start_of_range), float(r.end_of_range)

    def fraction(self) -> float:
        """The fill level as a fraction 0..1 of its range (NaN when unknown)."""
        rng = self.fill_range
        if rng is None or self.fill_level is None or rng[1] <= rng[0]:
            return math.nan
        return min(1.0, max(0.0, (self.fill_level - rng[0]) / (rng[1] - rng[0])))


def electric_w(ranges: Iterable[PowerRange]) -> tuple[float, float]:
    """Electric power at factor 0 and at factor 1 [W], summed over the phases."""
    a = b = 0.0
    for r in ranges:
        if r.commodity_quantity in ELECTRIC:
            a += float(r.start_of_range)
            b += float(r.end_of_range)
    return a, b


def _contains(r: NumberRange, value: float) -> bool:
    return float(r.start_of_range) <= value <= float(r.end_of_range)


def _overlaps(r: NumberRange, lo: float, hi: float) -> bool:
    return float(r.start_of_range) <= hi and float(r.end_of_range) >= lo


def element_at(mode: FRBCOperationMode, fill: float) -> FRBCOperationModeElement:
    """The mode's element for ``fill`` (the nearest one when no range holds it)."""
    for e in mode.elements:
        if _contains(e.fill_level_range, fill):
            return e

    def distance(e: FRBCOperationModeElement) -> float:
        r = e.fill_level_range
        return min(abs(fill - float(r.start_of_range)), abs(fill - float(r.end_of_range)))

    return min(mode.elements, key=distance)


def _elements_over(
    mode: FRBCOperationMode, lo: float, hi: float, fill: float
) -> list[FRBCOperationModeElement]:
    found = [e for e in mode.elements if _overlaps(e.fill_level_range, lo, hi)]
    return found or [element_at(mode, fill)]


def _leakage_over(leak: FRBCLeakageBehaviour | None, lo: float, hi: float) -> tuple[float, float]:
    """Lowest and highest leakage rate over fill levels ``[lo, hi]`` [units/s]."""
    if leak is None:
        return 0.0, 0.0
    rates = [float(e.leakage_rate) for e in leak.elements if _overlaps(e.fill_level_range, lo, hi)]
    return (min(rates), max(rates)) if rates else (0.0, 0.0)


def _usage_bounds(usage: FRBCUsageForecast | None, now: datetime) -> tuple[float, float]:
    """Lowest and highest usage rate expected now [units/s] (0 without a forecast)."""
    if usage is None:
        return 0.0, 0.0
    t = usage.start_time
    for e in usage.elements:
        end = t + timedelta(milliseconds=e.duration.root)
        if t <= now < end:
            expected = float(e.usage_rate_expected)
            lo = e.usage_rate_lower_limit
            hi = e.usage_rate_upper_limit
            return (
                min(expected, float(lo)) if lo is not None else expected,
                max(expected, float(hi)) if hi is not None else expected,
            )
        t = end
    return 0.0, 0.0


def reachable_modes(
    actuator: FRBCActuatorDescription, state: FrbcState, now: datetime
) -> list[FRBCOperationMode]:
    """The modes the actuator may be put in now.

    Those not for abnormal conditions only, and reachable from the active mode by a
    transition whose blocking timers have run out. An actuator that describes no
    transitions is taken to allow every mode (many simple RMs
    describe one mode, or none, and switch freely).
    """
    normal = [m for m in actuator.operation_modes if not m.abnormal_condition_only]
    status = state.actuator_status.get(actuator.id)
    if status is None or not actuator.transitions:
        return normal
    active = status.active_operation_mode_id
    allowed = {active}
    for tr in actuator.transitions:
        if tr.abnormal_condition_only or tr.from_ != active:
            continue
        blocked = any(
            state.timers.get((actuator.id, timer), now) > now for timer in tr.blocking_timers
        )
        if not blocked:
            allowed.add(tr.to)
    return [m for m in normal if m.id in allowed]


def _rate(e: FRBCOperationModeElement, x: float) -> float:
    a, b = float(e.fill_rate.start_of_range), float(e.fill_rate.end_of_range)
    return a + x * (b - a)


def _factor_interval(
    ups: Sequence[FRBCOperationModeElement],
    downs: Sequence[FRBCOperationModeElement],
    lo: float,
    hi: float,
) -> tuple[float, float] | None:
    """Factors x in [0, 1] with every ``ups`` rate <= hi and every ``downs`` rate >= lo.

    None when there is no such factor.
    """
    x_lo, x_hi = 0.0, 1.0
    for elems, bound, upper in ((ups, hi, True), (downs, lo, False)):
        for e in elems:
            a = float(e.fill_rate.start_of_range)
            slope = float(e.fill_rate.end_of_range) - a
            if abs(slope) < _EPS:
                ok = a <= bound + _EPS if upper else a >= bound - _EPS
                if not ok:
                    return None
                continue
            cut = (bound - a) / slope
            # upper: a + x*slope <= bound; lower: a + x*slope >= bound.
            if (slope > 0) == upper:
                x_hi = min(x_hi, cut)
            else:
                x_lo = max(x_lo, cut)
    if x_lo > x_hi + _EPS:
        return None
    x_lo = min(x_lo, 1.0)  # a cut just above 1, within the tolerance, stays a valid factor
    return x_lo, max(x_lo, x_hi)


def _violation(
    ups: Sequence[FRBCOperationModeElement],
    downs: Sequence[FRBCOperationModeElement],
    lo: float,
    hi: float,
    x: float,
) -> float:
    over = max((_rate(e, x) - hi for e in ups), default=0.0)
    under = max((lo - _rate(e, x) for e in downs), default=0.0)
    return max(0.0, over) + max(0.0, under)


def _span(
    ups: Sequence[FRBCOperationModeElement], downs: Sequence[FRBCOperationModeElement], x: float
) -> tuple[float, float]:
    """Lowest rate towards the bottom and highest towards the top of the range at ``x``."""
    return min(_rate(e, x) for e in downs), max(_rate(e, x) for e in ups)


def _rate_envelope(modes: Sequence[FRBCOperationMode]) -> tuple[float, float]:
    rates = [
        float(v)
        for m in modes
        for e in m.elements
        for v in (e.fill_rate.start_of_range, e.fill_rate.end_of_range)
    ]
    return (min(rates), max(rates)) if rates else (0.0, 0.0)


def _better(cost: float, current: int, best_cost: float, best_current: int) -> bool:
    """Closer to the setpoint wins; on a tie (1 mW) the active mode, to spare transitions."""
    if abs(cost - best_cost) <= 1e-3:
        return current < best_current
    return cost < best_cost


def plan_frbc(state: FrbcState, p_kw: float, horizon_s: float, now: datetime) -> FrbcPlan:
    """Turn a Gridflock setpoint into one operation mode and factor per actuator.

    Parameters
    ----------
    state
        What the RM told the CEM (system description and fill level are required).
    p_kw
        The setpoint [kW], generator sign (> 0 discharge / delivery to the grid).
    horizon_s
        How long the instructions stand [s]: the fill level must stay in its range for it.
    now
        The present time [UTC], for the usage forecast and the timers.

    Returns
    -------
    FrbcPlan
        The choices closest to the setpoint that keep the fill level in range, the power
        they give, and the reason when that is not the setpoint.

    """
    system, fill, rng = state.system, state.fill_level, state.fill_range
    if system is None or fill is None or rng is None:
        raise ValueError("the RM has not sent its FRBC.SystemDescription and StorageStatus yet")
    f_min, f_max = rng
    h = max(horizon_s, 1e-3)
    leak_up, _ = _leakage_over(state.leakage, fill, f_max)
    _, leak_down = _leakage_over(state.leakage, f_min, fill)
    use_lo, use_hi = _usage_bounds(state.usage, now)
    target_w = -p_kw * 1000.0
    actuators = list(system.actuators)
    modes_of = [reachable_modes(a, state, now) for a in actuators]
    # Earlier actuators' worst-case rates over the elements the level may cross: the
    # highest towards the top of the range, the lowest towards the bottom.
    acc_up = acc_down = acc_power = 0.0
    choices: list[ModeChoice] = []
    held_by_fill = False
    no_safe_mode = False
    for k, (actuator, modes) in enumerate(zip(actuators, modes_of, strict=True)):
        rest = [_rate_envelope(m) for m in modes_of[k + 1 :]]
        rest_min = sum(r[0] for r in rest)
        rest_max = sum(r[1] for r in rest)
        hi = (f_max - fill) / h + leak_up + use_lo - acc_up - rest_min
        lo = (f_min - fill) / h + leak_down + use_hi - acc_down - rest_max
        want = target_w - acc_power
        best: tuple[float, int, ModeChoice, bool, tuple[float, float]] | None = None
        fallback: tuple[float, float, ModeChoice, tuple[float, float]] | None = None
        status = state.actuator_status.get(actuator.id)
        for mode in modes:
            here = element_at(mode, fill)
            ups = _elements_over(mode, fill, f_max, fill)
            downs = _elements_over(mode, f_min, fill, fill)
            pa, pb = electric_w(here.power_ranges)
            x_free = (want - pa) / (pb - pa) if abs(pb - pa) > _EPS else 0.0
            x_free = min(1.0, max(0.0, x_free))
            interval = _factor_interval(ups, downs, lo, hi)
            current = 0 if status is not None and status.active_operation_mode_id == mode.id else 1
            if interval is not None:
                x = min(interval[1], max(interval[0], x_free))
                choice = ModeChoice(actuator.id, mode.id, x, pa + x * (pb - pa), _rate(here, x))
                cost = abs(choice.power_w - want)
                if best is None or _better(cost, current, best[0], best[1]):
                    span = _span(ups, downs, x)
                    best = (cost, current, choice, abs(x - x_free) > 1e-9, span)
            else:
                for x in (0.0, 1.0):
                    v = _violation(ups, downs, lo, hi, x)
                    choice = ModeChoice(actuator.id, mode.id, x, pa + x * (pb - pa), _rate(here, x))
                    cost = abs(choice.power_w - want)
                    if fallback is None or (v, cost) < (fallback[0], fallback[1]):
                        fallback = (v, cost, choice, _span(ups, downs, x))
        if best is not None:
            picked, span = best[2], best[4]
            held_by_fill = held_by_fill or best[3]
        elif fallback is not None:
            picked, span, no_safe_mode = fallback[2], fallback[3], True
        else:
            continue  # an actuator with no usable mode gets no instruction
        choices.append(picked)
        acc_down += span[0]
        acc_up += span[1]
        acc_power += picked.power_w
    got_kw = -acc_power / 1000.0
    reason: str | None = None
    if no_safe_mode:
        reason = (
            f"no operation mode keeps the fill level {fill:g} inside [{f_min:g}, {f_max:g}] "
            f"for {h:g} s; chose the one that moves it back the most ({got_kw:.3f} kW)"
        )
    elif abs(got_kw - p_kw) > 1e-6:
        why = (
            f"to keep the fill level {fill:g} inside [{f_min:g}, {f_max:g}] for {h:g} s"
            if held_by_fill
            else "by the power ranges of the RM's operation modes"
        )
        reason = f"asked {p_kw:.3f} kW, limited to {got_kw:.3f} kW {why}"
    return FrbcPlan(tuple(choices), got_kw, reason)
