"""The running service: wires fleet, dispatch, devices, store and API together.

Only this package and the CLI import every part of Gridflock. :class:`Runtime` is the
facade the API drives; behind it a :class:`ControlLoop`, an :class:`EventService`, a
:class:`ReadModel` and a :class:`StoreWriter` each do one job.

The names below load on first use, so a process of one role (an ingest worker) imports
only the parts it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gridflock.service.control import ControlLoop
    from gridflock.service.events import EventService
    from gridflock.service.readmodel import ReadModel
    from gridflock.service.runtime import Runtime
    from gridflock.service.writer import StoreWriter

__all__ = ["ControlLoop", "EventService", "ReadModel", "Runtime", "StoreWriter"]

_WHERE = {
    "ControlLoop": "gridflock.service.control",
    "EventService": "gridflock.service.events",
    "ReadModel": "gridflock.service.readmodel",
    "Runtime": "gridflock.service.runtime",
    "StoreWriter": "gridflock.service.writer",
}


def __getattr__(name: str) -> Any:
    """Import the module of ``name`` when it is first asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
