"""The interface between the dispatch core and devices, whatever carries the messages.

The digital twin implements it in process; the MQTT gateways implement it over their
protocol; the service's in-memory links (no devices, a fake for tests) implement it too.
The control loop only ever talks to a :class:`DeviceLink`, and what a link gathered
besides readings (acknowledgements, gateway statuses, counters) comes back as one typed
:class:`LinkReport` per control cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec

__all__ = [
    "CommandAck",
    "DeviceLink",
    "GatewayStatus",
    "LinkReport",
    "SettingsLink",
    "SettingsVerdict",
]


@dataclass(frozen=True)
class CommandAck:
    """A gateway's verdict on one command it received."""

    gateway: str
    """The gateway that answered (the topic it answered on, for MQTT)."""
    command_id: str
    device_id: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    """Why the command was rejected; None when accepted."""


@dataclass(frozen=True)
class GatewayStatus:
    """A gateway's announced state (``online``/``offline``) and when it was received [UTC s]."""

    gateway: str
    status: str
    ts: float


@dataclass(frozen=True)
class SettingsVerdict:
    """A gateway's verdict on one device's grid-code settings (protocol v1 ``settings_ack``)."""

    gateway: str
    settings_id: str
    device_id: str
    seq: int
    status: str
    """``accepted``, ``rejected`` or ``unsupported``."""
    reason: str | None = None
    adopted: Mapping[str, str] = field(default_factory=dict)
    """Per function (``volt_var``, ``volt_watt``, ``freq_watt``, ``ffr``): what became of it."""
    detail: str | None = None


@dataclass(frozen=True)
class LinkReport:
    """What a link gathered since the last report, besides readings.

    Counters are increments since the previous report, so the caller can add them to its
    metrics without remembering totals.
    """

    messages: int = 0
    """Telemetry messages received."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Readings (or whole messages, as ``protocol_error``) refused, by reason."""
    acks: list[CommandAck] = field(default_factory=list)
    statuses: list[GatewayStatus] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    """Ids of commands whose ``valid_until`` passed with no acknowledgement (silent gateway)."""
    # acknowledgements of schedules come in ``acks`` too, by schedule id
    settings: list[SettingsVerdict] = field(default_factory=list)
    """Verdicts on grid-code settings pushed to gateways."""


@runtime_checkable
class DeviceLink(Protocol):
    """Carries commands to devices and telemetry back; one per service process."""

    @property
    def connected(self) -> bool:
        """Whether the link can reach devices now (health reports it)."""
        ...

    def send(self, commands: CommandBatch) -> None:
        """Hand ``commands`` to the devices' gateways (delivery may lag)."""
        ...

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """Hand a plan's ``schedules`` to the devices' gateways (acked like commands)."""
        ...

    def receive(self) -> list[TelemetryBatch]:
        """Every batch of readings that arrived since the last call."""
        ...

    def take_report(self) -> LinkReport:
        """Acknowledgements, gateway statuses and counters gathered since the last call."""
        ...

    def update_fleet(self, spec: FleetSpec) -> None:
        """Take up a new fleet (after an import): which devices exist, behind which gateway."""
        ...

    async def run(self) -> None:
        """Keep the link's connection until :meth:`stop` (returns at once if it has none)."""
        ...

    def stop(self) -> None:
        """End :meth:`run`."""
        ...


@runtime_checkable
class SettingsLink(Protocol):
    """A link that can push grid-code settings to gateways (MQTT protocol v1 ``settings``)."""

    def send_settings(self, gateway: str, items: Sequence[Any]) -> bool:
        """Send ``items`` (protocol v1 settings items) to ``gateway``; False if not sent now."""
        ...
