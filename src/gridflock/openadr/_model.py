"""What a utility asks, in one shape for OpenADR 2.0b and 3: signals, decisions, VEN status.

Both VENs translate their protocol's event into a :class:`UtilityEvent` (intervals of one
of four kinds, UTC epoch seconds) and hand it to a :class:`UtilitySink`, which answers
opt-in or opt-out; the sink also tells them what to report (delivered and fleet power).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = [
    "Decision",
    "SignalInterval",
    "SignalKind",
    "UtilityEvent",
    "UtilitySink",
    "VenStatus",
    "random_offset_s",
]


class SignalKind(StrEnum):
    """What an interval's value means.

    - ``delta_kw``: change of the VEN's consumption against its baseline [kW]; negative
      asks to consume less (OpenADR 2.0b LOAD_DISPATCH ``delta``, OpenADR 3
      DISPATCH_SETPOINT_RELATIVE).
    - ``setpoint_kw``: the VEN's consumption to hold [kW, import positive] (LOAD_DISPATCH
      ``setpoint``, DISPATCH_SETPOINT).
    - ``level``: SIMPLE level 0 (normal) to 3 (the most the VEN can shed).
    - ``price``: energy price [currency/kWh] (ELECTRICITY_PRICE ``price``, PRICE).
    """

    DELTA_KW = "delta_kw"
    SETPOINT_KW = "setpoint_kw"
    LEVEL = "level"
    PRICE = "price"


@dataclass(frozen=True)
class SignalInterval:
    """One interval of one signal: ``[start, end)`` UTC epoch seconds and its value."""

    kind: SignalKind
    start: float
    end: float
    value: float


@dataclass(frozen=True)
class UtilityEvent:
    """A utility's event as the VEN received it (either protocol).

    ``event_id`` is the utility's id; ``modification`` changes whenever the utility edits
    the event (2.0b's modification number, OpenADR 3's modificationDateTime), so the same
    event received twice is recognised. ``randomize_s`` is the utility's allowed start
    randomisation (2.0b ``startafter``, OpenADR 3 ``randomizeStart``); ``unsupported``
    names signals the VEN could not map, for the decision's reason.
    """

    protocol: str
    event_id: str
    modification: str
    intervals: tuple[SignalInterval, ...]
    cancelled: bool = False
    randomize_s: float = 0.0
    program: str = ""
    priority: int | None = None
    unsupported: tuple[str, ...] = ()

    @property
    def dispatch(self) -> tuple[SignalInterval, ...]:
        """The intervals that ask the fleet to move (every kind but price)."""
        return tuple(i for i in self.intervals if i.kind is not SignalKind.PRICE)

    @property
    def prices(self) -> tuple[SignalInterval, ...]:
        """The price intervals."""
        return tuple(i for i in self.intervals if i.kind is SignalKind.PRICE)

    @property
    def end(self) -> float:
        """When the last interval ends [UTC epoch s] (-inf without intervals)."""
        return max((i.end for i in self.intervals), default=-math.inf)


@dataclass(frozen=True)
class Decision:
    """The VEN's answer to an event: opt in or out, and why (in words, for the operator)."""

    opt_in: bool
    reason: str
    event_ids: tuple[str, ...] = ()  #: the Gridflock events that serve it

    @property
    def opt_type(self) -> str:
        """As OpenADR 2.0b spells it."""
        return "optIn" if self.opt_in else "optOut"


class UtilitySink(Protocol):
    """The service side a VEN reports to and reads from."""

    def handle(self, event: UtilityEvent) -> Decision:
        """Take an event up (create, modify, cancel) and answer it; idempotent."""
        ...

    def delivered_kw(self, event_id: str | None = None) -> float:
        """Power delivered now against the utility's events (or one of them) [kW, + up]."""
        ...

    def delivered_mean_kw(self, event_id: str, start: float, end: float) -> float:
        """Mean power delivered against one event over ``[start, end)`` [kW, + up]."""
        ...

    def fleet_import_kw(self) -> float:
        """The fleet's net import now [kW, + import]: what a utility meter would read."""
        ...


@dataclass
class VenStatus:
    """What the API shows of a VEN."""

    protocol: str
    vtn_url: str
    ven_name: str
    registered: bool = False
    reachable: bool = False  #: the VTN answered the latest request
    ven_id: str | None = None
    last_poll: float | None = None
    last_error: str | None = None
    connect_attempts: int = 0
    events_received: int = 0
    opt_ins: int = 0
    opt_outs: int = 0
    reports_sent: int = 0
    programs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return dict(self.__dict__)


def random_offset_s(event_id: str, window_s: float) -> float:
    """A start offset in ``[0, window_s)`` that is the same each time an event is received.

    Utilities randomise starts so that a fleet does not step at once; deriving the offset
    from the event id keeps a re-received event where it was (idempotent).
    """
    if not (math.isfinite(window_s) and window_s > 0):
        return 0.0
    digest = hashlib.sha256(event_id.encode()).digest()
    return (int.from_bytes(digest[:8], "big") / 2.0**64) * window_s
