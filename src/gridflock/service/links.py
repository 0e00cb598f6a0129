"""Device links the service can run with besides the gateways: none, and an in-memory one.

Both implement :class:`gridflock.domain.ports.DeviceLink`. :class:`MemoryLink` is the
fake the tests drive the service with: what the service sends is kept, and readings,
acknowledgements and statuses are handed in by the test as a gateway would.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import CommandAck, GatewayStatus, LinkReport
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec

__all__ = ["MemoryLink", "NoDevices"]


class NoDevices:
    """No device connection configured (no broker URL): commands go nowhere."""

    connected = False

    def send(self, commands: CommandBatch) -> None:
        """Drop the commands (there is no way to deliver them)."""

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """Drop the schedules (there is no way to deliver them)."""

    def receive(self) -> list[TelemetryBatch]:
        """Nothing ever arrives."""
        return []

    def take_report(self) -> LinkReport:
        """Nothing to report."""
        return LinkReport()

    def update_fleet(self, spec: FleetSpec) -> None:
        """Nothing to screen against."""

    async def run(self) -> None:
        """No connection to keep."""

    def stop(self) -> None:
        """Nothing runs."""


class MemoryLink:
    """A link in memory: keeps what is sent; the caller plays the gateways.

    ``sent`` holds every command batch in order, ``schedules`` every schedule batch;
    :meth:`deliver`, :meth:`ack` and :meth:`announce` queue what the next :meth:`receive` /
    :meth:`take_report` returns.
    """

    def __init__(self, spec: FleetSpec | None = None, *, connected: bool = True) -> None:
        self.spec = spec
        self.connected = connected
        self.sent: list[CommandBatch] = []
        self.schedules: list[ScheduleBatch] = []
        self._inbox: list[TelemetryBatch] = []
        self._acks: list[CommandAck] = []
        self._statuses: list[GatewayStatus] = []
        self._expired: list[str] = []
        self._rejected: Counter[str] = Counter()
        self._messages = 0
        self._stop = asyncio.Event()

    # the gateways' side
    def deliver(self, batch: TelemetryBatch, *, messages: int = 1) -> None:
        """Queue readings as if ``messages`` telemetry messages carried them."""
        self._inbox.append(batch)
        self._messages += messages

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` readings refused for ``reason`` (as a gateway link would)."""
        self._rejected[reason] += n

    def ack(self, ack: CommandAck) -> None:
        """Queue a gateway's verdict on a command."""
        self._acks.append(ack)

    def announce(self, status: GatewayStatus) -> None:
        """Queue a gateway status announcement."""
        self._statuses.append(status)

    def expire(self, command_id: str) -> None:
        """Report a command nobody acknowledged before its ``valid_until``."""
        self._expired.append(command_id)

    # the service's side
    def send(self, commands: CommandBatch) -> None:
        """Keep the commands (only when connected, as a real link would drop them)."""
        if self.connected and len(commands):
            self.sent.append(commands)

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """Keep the schedules (only when connected, as a real link would drop them)."""
        if self.connected and len(schedules):
            self.schedules.append(schedules)

    def receive(self) -> list[TelemetryBatch]:
        """The readings queued since the last call."""
        out, self._inbox = self._inbox, []
        return out

    def take_report(self) -> LinkReport:
        """Acks, statuses and counters queued since the last call."""
        report = LinkReport(
            self._messages, dict(self._rejected), self._acks, self._statuses, self._expired
        )
        self._messages, self._rejected, self._acks, self._statuses = 0, Counter(), [], []
        self._expired = []
        return report

    def update_fleet(self, spec: FleetSpec) -> None:
        """Remember the fleet (tests may check the service passed it on)."""
        self.spec = spec

    async def run(self) -> None:
        """Wait until :meth:`stop`, like a link with a connection."""
        await self._stop.wait()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stop.set()
