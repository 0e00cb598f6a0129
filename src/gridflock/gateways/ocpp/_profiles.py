"""Charging profiles as both OCPP versions carry them, and the limit they impose.

Pure functions: the CSMS builds profiles from commands and schedules with them, the
simulated chargers work out what a stack of profiles allows now with them (as OCPP 1.6
section 3.13 and OCPP 2.0.1 K01 describe: a TxProfile of the running transaction beats
TxDefaultProfiles, and within one purpose the highest stack level valid now wins).

Limits are in W or A, as the charger was told; conversions between them and kW use the
charger's phases and nominal phase voltage (``p = U * I * phases``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "NOMINAL_VOLTAGE_V",
    "Period",
    "Profile",
    "Purpose",
    "Unit",
    "active_limit",
    "composite_periods",
    "iso",
    "kw_to_limit",
    "limit_to_kw",
    "parse_iso",
    "profile_from_wire",
    "profile_to_wire",
]

Unit = Literal["W", "A"]
Purpose = Literal["TxProfile", "TxDefaultProfile"]
#: Phase-to-neutral voltage assumed when a charger's is not given [V].
NOMINAL_VOLTAGE_V = 230.0


def kw_to_limit(p_kw: float, unit: Unit, phases: int, voltage_v: float) -> float:
    """A charging power magnitude [kW] as a limit in ``unit`` (W, or A per phase)."""
    w = max(p_kw, 0.0) * 1000.0
    return w if unit == "W" else w / (voltage_v * max(phases, 1))


def limit_to_kw(limit: float, unit: Unit, phases: int, voltage_v: float) -> float:
    """A limit in ``unit`` as a charging power magnitude [kW]."""
    w = limit if unit == "W" else limit * voltage_v * max(phases, 1)
    return w / 1000.0


def iso(ts: float) -> str:
    """UTC epoch seconds as the RFC 3339 text OCPP uses (``...Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: object) -> float | None:
    """RFC 3339 text as UTC epoch seconds; ``None`` if it is not a time with a zone."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()


@dataclass(frozen=True)
class Period:
    """From ``start_s`` after the schedule's start, at most ``limit`` (in the profile's unit)."""

    start_s: int
    limit: float


@dataclass(frozen=True)
class Profile:
    """One charging profile, version-neutral.

    ``start`` is the absolute start of the schedule [UTC epoch s] (``None``: relative,
    from when it was received); ``valid_to`` when the charger must drop it.
    """

    id: int
    stack_level: int
    purpose: Purpose
    unit: Unit
    periods: tuple[Period, ...]
    start: float | None = None
    valid_to: float | None = None
    transaction_id: str | None = None
    duration_s: int | None = None
    received_at: float = field(default=0.0, compare=False)

    def limit_at(self, t: float) -> float | None:
        """The limit this profile sets at ``t``, ``None`` if it sets none then."""
        if self.valid_to is not None and t >= self.valid_to:
            return None
        origin = self.start if self.start is not None else self.received_at
        offset = t - origin
        if offset < 0 or (self.duration_s is not None and offset >= self.duration_s):
            return None
        out = None
        for p in self.periods:
            if p.start_s <= offset:
                out = p.limit
            else:
                break
        return out


def active_limit(
    profiles: Iterable[Profile], t: float, transaction_id: str | None
) -> tuple[float, Unit] | None:
    """The limit in force at ``t`` and its unit, ``None`` for none.

    A TxProfile counts only for the running transaction (``transaction_id``; a profile
    without one applies to whatever runs); it overrides every TxDefaultProfile. Within
    a purpose the highest stack level that sets a limit at ``t`` wins.
    """
    best: dict[str, tuple[int, float, Unit]] = {}
    for p in profiles:
        if p.purpose == "TxProfile" and (
            transaction_id is None
            or (p.transaction_id is not None and p.transaction_id != transaction_id)
        ):
            continue
        lim = p.limit_at(t)
        if lim is None:
            continue
        cur = best.get(p.purpose)
        if cur is None or p.stack_level > cur[0]:
            best[p.purpose] = (p.stack_level, lim, p.unit)
    for purpose in ("TxProfile", "TxDefaultProfile"):
        if purpose in best:
            _, lim, unit = best[purpose]
            return lim, unit
    return None


def composite_periods(
    profiles: Sequence[Profile],
    t0: float,
    duration_s: int,
    transaction_id: str | None,
    unit: Unit,
    phases: int,
    voltage_v: float,
    no_limit: float,
) -> list[Period]:
    """The composite schedule over ``[t0, t0 + duration_s)`` in ``unit``.

    Evaluated at every period boundary of every profile (where the limit can change);
    ``no_limit`` (the charger's rating, in ``unit``) where no profile sets one.
    """
    cuts = {0.0}
    for p in profiles:
        origin = p.start if p.start is not None else p.received_at
        edges = [origin + q.start_s for q in p.periods]
        if p.valid_to is not None:
            edges.append(p.valid_to)
        if p.duration_s is not None:
            edges.append(origin + p.duration_s)
        cuts.update(e - t0 for e in edges if 0 < e - t0 < duration_s)
    out: list[Period] = []
    for off in sorted(cuts):
        got = active_limit(profiles, t0 + off, transaction_id)
        lim = no_limit if got is None else _convert(got[0], got[1], unit, phases, voltage_v)
        lim = round(lim, 1)
        if not out or out[-1].limit != lim:
            out.append(Period(math.floor(off), lim))
    return out


def _convert(limit: float, src: Unit, dst: Unit, phases: int, voltage_v: float) -> float:
    if src == dst:
        return limit
    return kw_to_limit(limit_to_kw(limit, src, phases, voltage_v), dst, phases, voltage_v)


def profile_to_wire(p: Profile, version: str) -> dict[str, Any]:
    """``p`` as the snake_case payload of SetChargingProfile for OCPP ``version``."""
    schedule: dict[str, Any] = {
        "charging_rate_unit": p.unit,
        "charging_schedule_period": [
            {"start_period": q.start_s, "limit": round(q.limit, 1)} for q in p.periods
        ],
    }
    if p.start is not None:
        schedule["start_schedule"] = iso(p.start)
    if p.duration_s is not None:
        schedule["duration"] = p.duration_s
    out: dict[str, Any] = {
        "stack_level": p.stack_level,
        "charging_profile_purpose": p.purpose,
        "charging_profile_kind": "Absolute" if p.start is not None else "Relative",
    }
    if p.valid_to is not None:
        out["valid_to"] = iso(p.valid_to)
    if version == "ocpp1.6":
        out["charging_profile_id"] = p.id
        out["charging_schedule"] = schedule
        if p.transaction_id is not None:
            out["transaction_id"] = int(p.transaction_id)
    else:
        out["id"] = p.id
        out["charging_schedule"] = [{"id": p.id, **schedule}]
        if p.transaction_id is not None:
            out["transaction_id"] = p.transaction_id
    return out


def profile_from_wire(d: Mapping[str, Any], version: str, received_at: float) -> Profile:
    """A SetChargingProfile payload's profile (snake_case keys) as a :class:`Profile`.

    Raises ``ValueError`` naming what is wrong.
    """
    sched = d["charging_schedule"]
    if version != "ocpp1.6":
        if not sched:
            raise ValueError("the profile has no charging schedule")
        sched = sched[0]
    purpose = d["charging_profile_purpose"]
    if purpose not in ("TxProfile", "TxDefaultProfile"):
        raise ValueError(f"profile purpose {purpose!r} is not supported")
    periods = tuple(
        Period(int(q["start_period"]), float(q["limit"])) for q in sched["charging_schedule_period"]
    )
    if any(not math.isfinite(q.limit) or q.limit < 0 for q in periods):
        raise ValueError("a period's limit is negative or not finite")
    start = parse_iso(sched.get("start_schedule")) if sched.get("start_schedule") else None
    tx = d.get("transaction_id")
    return Profile(
        id=int(d["charging_profile_id"] if version == "ocpp1.6" else d["id"]),
        stack_level=int(d["stack_level"]),
        purpose=purpose,
        unit=sched["charging_rate_unit"],
        periods=periods,
        start=start,
        valid_to=parse_iso(d.get("valid_to")) if d.get("valid_to") else None,
        transaction_id=None if tx is None else str(tx),
        duration_s=sched.get("duration"),
        received_at=received_at,
    )
