"""The interface between the dispatch core and devices, whatever carries the messages.

The digital twin implements it in process; the MQTT, OCPP and Modbus gateways implement
it over their protocols. The dispatch loop only ever talks to a :class:`DeviceLink`.
"""

from __future__ import annotations

from typing import Protocol

from gridflock.domain.messages import CommandBatch, TelemetryBatch

__all__ = ["DeviceLink"]


class DeviceLink(Protocol):
    """Carries commands to devices and telemetry back."""

    def send(self, commands: CommandBatch) -> None:
        """Hand ``commands`` to the devices' gateways (delivery may lag)."""

    def receive(self) -> list[TelemetryBatch]:
        """Every batch of readings that arrived since the last call."""
