"""The running service: wires fleet, dispatch, devices, store and API together.

Only this package and the CLI import every part of Gridflock. :class:`Runtime` is the
facade the API drives; behind it a :class:`ControlLoop`, an :class:`EventService`, a
:class:`ReadModel` and a :class:`StoreWriter` each do one job.
"""

from gridflock.service.control import ControlLoop
from gridflock.service.events import EventService
from gridflock.service.readmodel import ReadModel
from gridflock.service.runtime import Runtime
from gridflock.service.writer import StoreWriter

__all__ = ["ControlLoop", "EventService", "ReadModel", "Runtime", "StoreWriter"]
