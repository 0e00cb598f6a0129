"""Utility signals over OpenADR: the 2.0b VEN (openleadr) and an OpenADR 3 VEN.

Both translate the utility's events into :class:`UtilityEvent` and ask a
:class:`UtilitySink` (the service) what to answer; only here do OpenADR libraries appear.
"""

from typing import TYPE_CHECKING, Any

from gridflock.openadr._model import (
    Decision,
    SignalInterval,
    SignalKind,
    UtilityEvent,
    UtilitySink,
    VenStatus,
    random_offset_s,
)

if TYPE_CHECKING:
    from gridflock.openadr.oadr3 import Ven3, from_oadr3
    from gridflock.openadr.oadr20 import Ven20, from_oadr20

__all__ = [
    "Decision",
    "SignalInterval",
    "SignalKind",
    "UtilityEvent",
    "UtilitySink",
    "Ven3",
    "Ven20",
    "VenStatus",
    "from_oadr3",
    "from_oadr20",
    "random_offset_s",
]


def __getattr__(name: str) -> Any:
    """The VENs load their libraries (openleadr, aiohttp) only when one is asked for."""
    if name in ("Ven3", "from_oadr3"):
        from gridflock.openadr import oadr3

        return getattr(oadr3, name)
    if name in ("Ven20", "from_oadr20"):
        from gridflock.openadr import oadr20

        return getattr(oadr20, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
