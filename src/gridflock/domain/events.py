"""Events: requests for the fleet to move its power, and their lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gridflock.domain.errors import ConflictError, InvalidError, clip

__all__ = ["Event", "EventSource", "EventStatus", "IllegalTransitionError", "Scope"]


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


class EventSource(StrEnum):
    """Where an event came from."""

    OPERATOR = "operator"
    OPENADR = "openadr"
    PRICE = "price"
    FREQUENCY = "frequency"
    SCHEDULE = "schedule"
    SIMULATION = "simulation"


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
    """

    id: str
    target_kw: float
    start: float
    end: float
    scope: Scope = field(default_factory=Scope)
    source: EventSource = EventSource.OPERATOR
    status: EventStatus = EventStatus.SCHEDULED
    created_by: str = "system"

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError(f"event {self.id}: end must be after start")
        if self.target_kw == 0:
            raise ValueError(f"event {self.id}: target_kw must be non-zero (kW, + up, - down)")

    @property
    def duration_s(self) -> float:
        """Length of the window in seconds."""
        return self.end - self.start

    def transition(self, to: EventStatus) -> None:
        """Move to ``to`` or raise :class:`IllegalTransitionError`."""
        if to not in _ALLOWED.get(self.status, set()):
            raise IllegalTransitionError(f"event {self.id}: cannot go from {self.status} to {to}")
        self.status = to
