"""Dispatch: allocation of targets to devices, the tracking loop and event lifecycle."""

from gridflock.dispatch.allocate import Allocation, allocate, limit_headroom
from gridflock.dispatch.dispatcher import Dispatcher
from gridflock.dispatch.tracker import EventTracker, TrackerConfig

__all__ = [
    "Allocation",
    "Dispatcher",
    "EventTracker",
    "TrackerConfig",
    "allocate",
    "limit_headroom",
]
