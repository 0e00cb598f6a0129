"""The interface between the edge gateway and one local protocol (SunSpec Modbus, S2, ...).

The gateway's loop polls every driver, forwards the readings to the service as protocol v1
telemetry, and hands each command (or the current slot of a schedule) to the driver that
owns the device. A driver knows its protocol and nothing about MQTT, so a new local
protocol is one new driver and nothing else changes.

Units and signs follow protocol v1 (docs/protocol.md): kW, generator sign convention
(``p_kw > 0`` delivered to the grid), ``soc`` as a fraction 0..1, UTC epoch seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gridflock.gateways.mqtt.protocol import DeviceSettings

__all__ = [
    "ApplyResult",
    "DeviceReading",
    "DriverError",
    "LocalDriver",
    "SettingsDriver",
    "SettingsResult",
]


class DriverError(RuntimeError):
    """A local device cannot be reached or refused its configuration; the message says why."""


@dataclass(frozen=True)
class DeviceReading:
    """One reading of one local device, in protocol v1 units."""

    device_id: str
    ts: float
    """When the device was read [UTC epoch s]."""
    p_kw: float
    """Active power [kW], > 0 delivered to the grid."""
    soc: float = math.nan
    """State of charge [0..1]; NaN where the device has none."""
    p_baseline_kw: float = math.nan
    """What the device would do on its own [kW] (available PV power, its own schedule)."""
    extras: Mapping[str, float] = field(default_factory=dict)
    """Further measured quantities by protocol v1 name (``q_kvar``, ``v_v``, ``f_hz`` ...)."""


@dataclass(frozen=True)
class ApplyResult:
    """A driver's verdict on one setpoint: applied (possibly clipped) or refused."""

    device_id: str
    accepted: bool
    reason: str | None = None
    """Why the setpoint was refused, or how it was changed; None when applied as asked."""
    applied_kw: float | None = None
    """The setpoint the device was given [kW] (after clipping to its ranges)."""


@runtime_checkable
class LocalDriver(Protocol):
    """One local protocol's devices at a site."""

    name: str
    """Short protocol name shown in telemetry extras and logs (``sunspec``, ``s2``)."""

    @property
    def device_ids(self) -> Sequence[str]:
        """The Gridflock device ids this driver owns."""
        ...

    async def start(self) -> None:
        """Connect and discover; raise :class:`DriverError` saying what is wrong."""
        ...

    async def read(self) -> list[DeviceReading]:
        """Read every device whose poll interval is due (an unreachable one is left out)."""
        ...

    async def apply(self, device_id: str, p_setpoint_kw: float, valid_until: float) -> ApplyResult:
        """Ask ``device_id`` for ``p_setpoint_kw`` until ``valid_until`` [UTC epoch s]."""
        ...

    async def release(self, device_id: str) -> None:
        """Return ``device_id`` to its configured safe mode (its own control)."""
        ...

    async def close(self) -> None:
        """Release every device and close connections."""
        ...


@dataclass(frozen=True)
class SettingsResult:
    """A driver's verdict on one device's pushed grid-code settings."""

    status: Literal["accepted", "rejected", "unsupported"]
    reason: str | None = None
    """Why not accepted (a protocol v1 settings reason); None when accepted."""
    adopted: Mapping[str, str] = field(default_factory=dict)
    """Per function (``volt_var``, ``volt_watt``, ``freq_watt``, ``ffr``): what became of it."""
    detail: str = ""


@runtime_checkable
class SettingsDriver(Protocol):
    """A driver that can write pushed grid-code settings to its devices (SunSpec DER)."""

    async def apply_settings(self, device_id: str, settings: DeviceSettings) -> SettingsResult:
        """Write ``settings`` to ``device_id``, read them back and say what it adopted."""
        ...
