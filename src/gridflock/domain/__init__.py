"""The domain model: device kinds, fleet specification, telemetry, commands, events.

Pure: imports nothing else of Gridflock.
"""

from gridflock.domain.attributes import Attr
from gridflock.domain.errors import (
    ConflictError,
    GridflockError,
    InfeasibleError,
    InvalidError,
    NotFoundError,
    Problem,
    UnavailableError,
    UnknownDeviceError,
    ValidationError,
)
from gridflock.domain.events import Event, EventSource, EventStatus, IllegalTransitionError, Scope
from gridflock.domain.kinds import (
    DEVICE_COMMON,
    GRID_NODE_ATTRS,
    KIND_ATTRS,
    SITE_ATTRS,
    DeviceKind,
    GridNodeKind,
    KindDecl,
    declare_kind,
    device_attrs,
    kind_decl,
)
from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import DeviceLink
from gridflock.domain.spec import FleetSpec, build_spec

__all__ = [
    "DEVICE_COMMON",
    "GRID_NODE_ATTRS",
    "KIND_ATTRS",
    "SITE_ATTRS",
    "Attr",
    "CommandBatch",
    "ConflictError",
    "DeviceKind",
    "DeviceLink",
    "Event",
    "EventSource",
    "EventStatus",
    "FleetSpec",
    "GridNodeKind",
    "GridflockError",
    "IllegalTransitionError",
    "InfeasibleError",
    "InvalidError",
    "KindDecl",
    "NotFoundError",
    "Problem",
    "Scope",
    "TelemetryBatch",
    "UnavailableError",
    "UnknownDeviceError",
    "ValidationError",
    "build_spec",
    "declare_kind",
    "device_attrs",
    "kind_decl",
]
