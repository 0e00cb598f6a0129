"""Device links the service can run with besides the gateways."""

from __future__ import annotations

from gridflock.domain.messages import CommandBatch, TelemetryBatch

__all__ = ["NoDevices"]


class NoDevices:
    """No device connection configured (no broker URL): commands go nowhere."""

    connected = False

    def send(self, commands: CommandBatch) -> None:
        """Drop the commands (there is no way to deliver them)."""

    def receive(self) -> list[TelemetryBatch]:
        """Nothing ever arrives."""
        return []
