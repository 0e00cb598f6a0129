"""Meter values of both OCPP versions as the power and state of charge they report.

A charger reports sampled values by measurand: ``Power.Active.Import`` (W or kW, per
phase or in total), ``Current.Import`` (A, per phase), ``SoC`` (percent). The CSMS turns
them into one reading with the generator sign convention: a charging car is negative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MeterError", "MeterReading", "read_sampled"]

_POWER_SCALE = {"W": 1e-3, "kW": 1.0}


class MeterError(ValueError):
    """A meter value that cannot be read; ``reason`` is a rejection code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class MeterReading:
    """What one meter value said: power [kW, generator sign] and soc [0..1] (NaN: none)."""

    p_kw: float
    soc: float


def _number(v: object) -> float:
    """A sampled value (text in 1.6, a number in 2.0.1) as a finite float."""
    if isinstance(v, bool):
        raise MeterError("bad_value", f"value {v!r} is not a number")
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MeterError("bad_value", f"value {v!r} is not a number") from None
    if not math.isfinite(x):
        raise MeterError("bad_value", f"value {v!r} is not finite")
    return x


def _unit(s: Mapping[str, Any]) -> tuple[str, int]:
    """Unit and power-of-ten multiplier of a sampled value (1.6 ``unit``, 2.0.1 ``uom``)."""
    uom = s.get("unit_of_measure")
    if isinstance(uom, Mapping):
        return str(uom.get("unit", "Wh")), int(uom.get("multiplier", 0) or 0)
    return str(s.get("unit", "Wh")), 0


def _total(values: list[tuple[str | None, float]], phases: int, per_phase: bool) -> float | None:
    """Sum per-phase samples, or take the total one; scale a lone per-phase one."""
    if not values:
        return None
    totals = [v for ph, v in values if not ph]
    if totals:
        return totals[-1]
    legs = [v for ph, v in values if ph and ph.startswith("L")]
    if not legs:
        return None
    if len(legs) == 1 and per_phase:
        return legs[0] * phases
    return sum(legs)


def read_sampled(
    sampled: Sequence[Mapping[str, Any]], phases: int, voltage_v: float
) -> MeterReading:
    """One meter value's sampled values as a reading; :class:`MeterError` if unusable.

    Power comes from ``Power.Active.Import`` minus ``Power.Active.Export``, else from
    ``Current.Import`` at ``voltage_v``; a meter value with neither gives NaN power.
    """
    imp: list[tuple[str | None, float]] = []
    exp: list[tuple[str | None, float]] = []
    cur: list[tuple[str | None, float]] = []
    soc = math.nan
    for s in sampled:
        if not isinstance(s, Mapping):
            raise MeterError("bad_value", "a sampled value is not an object")
        measurand = s.get("measurand", "Energy.Active.Import.Register")
        phase = s.get("phase")
        phase = str(phase) if phase else None
        if measurand in ("Power.Active.Import", "Power.Active.Export"):
            unit, mult = _unit(s)
            if unit not in _POWER_SCALE:
                raise MeterError("bad_unit", f"power in {unit!r}: use W or kW")
            kw = _number(s.get("value")) * _POWER_SCALE[unit] * 10.0**mult
            (imp if measurand.endswith("Import") else exp).append((phase, kw))
        elif measurand == "Current.Import":
            unit, mult = _unit(s)
            if unit != "A":
                raise MeterError("bad_unit", f"current in {unit!r}: use A")
            cur.append((phase, _number(s.get("value")) * 10.0**mult))
        elif measurand == "SoC":
            pct = _number(s.get("value"))
            if not 0.0 <= pct <= 100.0:
                raise MeterError("out_of_range", f"SoC {pct:g} % is outside 0..100 %")
            soc = pct / 100.0
    p_imp = _total(imp, phases, per_phase=True)
    if p_imp is not None:
        p_kw = -(p_imp - (_total(exp, phases, per_phase=True) or 0.0))
    else:
        amps = _total(cur, phases, per_phase=True)
        p_kw = math.nan if amps is None else -amps * voltage_v / 1000.0
    return MeterReading(p_kw, soc)
