"""Events: requests for the fleet to move its power, and their lifecycle."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from gridflock.domain.errors import ConflictError, InvalidError, clip

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "MAX_TARGET_KW",
    "MIN_PRIORITY",
    "AdmissionError",
    "Event",
    "EventConflictError",
    "EventSource",
    "EventStatus",
    "IllegalTransitionError",
    "Scope",
]

#: Priority range: a higher number is served first (see :class:`Event`).
MIN_PRIORITY = 0
MAX_PRIORITY = 100
DEFAULT_PRIORITY = 50
#: Largest target an event may ask for [kW, either sign]: 10 GW, beyond any fleet.
MAX_TARGET_KW = 1e7


class EventStatus(StrEnum):
    """Lifecycle: scheduled -> active -> completed | cancelled | failed."""

    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """Whether no further transition is possible."""
        return self in (EventStatus.COMPLETED, EventStatus.CANCELLED, EventStatus.FAILED)


_ALLOWED: dict[EventStatus, set[EventStatus]] = {
    EventStatus.SCHEDULED: {EventStatus.ACTIVE, EventStatus.CANCELLED, EventStatus.FAILED},
    EventStatus.ACTIVE: {EventStatus.COMPLETED, EventStatus.CANCELLED, EventStatus.FAILED},
}


class IllegalTransitionError(ConflictError):
    """An event was asked to move to a status its lifecycle does not allow."""


class EventConflictError(InvalidError):
    """An event that clashes with another: opposite directions over the same devices and time."""

    def __init__(self, message: str, other: str) -> None:
        super().__init__(message)
        self.other = other


class AdmissionError(InvalidError):
    """A target above what the scope can still deliver over the window.

    ``available_kw`` is what it can deliver (with the target's sign), so the caller can
    ask for that much, or for the target with ``allow_partial``.
    """

    def __init__(self, message: str, available_kw: float) -> None:
        super().__init__(message)
        self.available_kw = available_kw


class EventSource(StrEnum):
    """Where an event came from."""

    OPERATOR = "operator"
    OPENADR = "openadr"
    PRICE = "price"
    FREQUENCY = "frequency"
    SCHEDULE = "schedule"
    SIMULATION = "simulation"
    AUTOPILOT = "autopilot"


@dataclass(frozen=True)
class Scope:
    """Which devices an event may use.

    ``kind`` is ``fleet`` (everything), ``grid_node`` (a node and all below it),
    ``program`` or ``region`` (a site tag); ``value`` names the node or tag.
    """

    kind: str = "fleet"
    value: str = ""

    KINDS = ("fleet", "grid_node", "program", "region")

    @staticmethod
    def parse(text: str) -> Scope:
        """Parse ``fleet``, ``grid_node:F1``, ``program:summer`` or ``region:north``."""
        text = text.strip()
        if not text or text == "fleet":
            return Scope()
        kind, sep, value = text.partition(":")
        if not sep or kind not in Scope.KINDS or not value:
            raise InvalidError(
                f"invalid scope {clip(text)!r}: use 'fleet', 'grid_node:ID', 'program:TAG' or "
                "'region:TAG'"
            )
        return Scope(kind, value)

    def __str__(self) -> str:
        return "fleet" if self.kind == "fleet" else f"{self.kind}:{self.value}"


@dataclass
class Event:
    """A request for ``target_kw`` relative to baseline over ``[start, end)`` (UTC epoch s).

    ``target_kw > 0`` asks for "up" (more export / less import), ``< 0`` for "down".
    ``priority`` (0..100, default 50) orders events that compete for devices: a higher
    number is served first and may take devices from a lower one; equal priorities are
    served by start time, then id, and the earlier keeps its devices.
    """

    id: str
    target_kw: float
    start: float
    end: float
    scope: Scope = field(default_factory=Scope)
    source: EventSource = EventSource.OPERATOR
    status: EventStatus = EventStatus.SCHEDULED
    created_by: str = "system"
    priority: int = DEFAULT_PRIORITY

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(f"event {self.id}: end must be after start")
        if not math.isfinite(self.target_kw) or self.target_kw == 0:
            raise ValueError(f"event {self.id}: target_kw must be non-zero (kW, + up, - down)")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(
                f"event {self.id}: priority must be within {MIN_PRIORITY}..{MAX_PRIORITY} "
                f"(higher is served first), got {self.priority}"
            )

    @property
    def up(self) -> bool:
        """Whether the event asks for up (more export / less import)."""
        return self.target_kw > 0

    def order_key(self) -> tuple[int, float, str]:
        """Serving order: higher priority first, then earlier start, then id."""
        return (-self.priority, self.start, self.id)

    def overlaps(self, start: float, end: float) -> bool:
        """Whether the window ``[start, end)`` meets this event's window."""
        return self.start < end and start < self.end

    @property
    def duration_s(self) -> float:
        """Length of the window in seconds."""
        return self.end - self.start

    def transition(self, to: EventStatus) -> None:
        """Move to ``to`` or raise :class:`IllegalTransitionError`."""
        if to not in _ALLOWED.get(self.status, set()):
            raise IllegalTransitionError(f"event {self.id}: cannot go from {self.status} to {to}")
        self.status = to
