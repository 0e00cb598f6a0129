"""Device links the service can run with besides the gateways: none, in-memory, composite.

All implement :class:`gridflock.domain.ports.DeviceLink`. :class:`MemoryLink` is the
fake the tests drive the service with: what the service sends is kept, and readings,
acknowledgements and statuses are handed in by the test as a gateway would.
:class:`CompositeLink` runs several links (MQTT gateways, OCPP chargers, the twin) as one,
routing each device to the link of its ``protocol``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gridflock.domain.kinds import PROTOCOL_CARRIER
from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import (
    CommandAck,
    DeviceLink,
    GatewayStatus,
    LinkReport,
    SettingsLink,
    SettingsVerdict,
)
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec

__all__ = ["CompositeLink", "MemoryLink", "NoDevices"]

log = logging.getLogger("gridflock.service")


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
        self.settings: list[tuple[str, list[Any]]] = []
        """Every settings push as (gateway, items), in order."""
        self._verdicts: list[SettingsVerdict] = []

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

    def answer_settings(self, verdict: SettingsVerdict) -> None:
        """Queue a gateway's verdict on grid-code settings."""
        self._verdicts.append(verdict)

    def send_settings(self, gateway: str, items: Sequence[Any]) -> bool:
        """Keep the settings pushed (only when connected, as a real link would drop them)."""
        if not self.connected:
            return False
        self.settings.append((gateway, list(items)))
        return True

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
            self._messages,
            dict(self._rejected),
            self._acks,
            self._statuses,
            self._expired,
            self._verdicts,
        )
        self._messages, self._rejected, self._acks, self._statuses = 0, Counter(), [], []
        self._expired, self._verdicts = [], []
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


def _take_commands(c: CommandBatch, rows: np.ndarray) -> CommandBatch:
    return CommandBatch(
        c.command_ids[rows],
        c.device_ids[rows],
        c.p_setpoint_kw[rows],
        c.valid_until[rows],
        c.seq[rows],
        c.issued_at,
        c.event_id,
    )


def _take_readings(b: TelemetryBatch, keep: np.ndarray) -> TelemetryBatch:
    return TelemetryBatch(
        b.device_ids[keep],
        b.ts[keep],
        b.p_kw[keep],
        b.soc[keep],
        b.p_baseline_kw[keep],
        {k: v[keep] for k, v in b.extras.items()},
        None if b.rows is None else b.rows[keep],
        b.layout,
    )


class CompositeLink:
    """Several links as one: each device is reached through the link of its ``protocol``.

    ``links`` maps a protocol (``mqtt``, ``edge``, ``ocpp``, ``twin``) to its link; a
    protocol without a link of its own goes to its carrier's (``edge`` devices to ``mqtt``:
    ``PROTOCOL_CARRIER``), and devices with neither go to ``default`` (the twin simulates
    every device, for example).
    Commands and schedules are split by owner; readings are merged, and a link's reading
    for a device another link owns is dropped (the twin simulates the OCPP chargers too,
    but their readings come from the chargers). A failing link leaves the others running.
    """

    def __init__(
        self, links: Mapping[str, DeviceLink], spec: FleetSpec, default: str | None = None
    ) -> None:
        if not links:
            raise ValueError("a composite link needs at least one link")
        if default is not None and default not in links:
            raise ValueError(f"default link {default!r} is not among {sorted(links)}")
        self.links = dict(links)
        self.default = default
        self.owner: dict[str, str] = {}
        self._set_owners(spec)

    def _set_owners(self, spec: FleetSpec) -> None:
        devices = spec.all_devices()
        owner: dict[str, str] = {}
        unreachable = 0
        for d, proto in zip(devices["id"].tolist(), devices["protocol"].tolist(), strict=True):
            carrier = PROTOCOL_CARRIER.get(proto, proto)
            name = next((n for n in (proto, carrier) if n in self.links), self.default)
            if name is None:
                unreachable += 1
            else:
                owner[d] = name
        if unreachable:
            log.warning(
                "%d device(s) speak a protocol no link is configured for (links: %s): "
                "they get no commands",
                unreachable,
                ", ".join(sorted(self.links)),
            )
        self.owner = owner

    @property
    def connected(self) -> bool:
        """Whether every link can reach its devices."""
        return all(link.connected for link in self.links.values())

    def _rows_by_link(self, device_ids: np.ndarray) -> dict[str, np.ndarray]:
        names = np.array([self.owner.get(d, "") for d in device_ids.tolist()], dtype=object)
        return {n: np.flatnonzero(names == n) for n in self.links}

    def send(self, commands: CommandBatch) -> None:
        """Each link gets the commands of its devices."""
        for name, rows in self._rows_by_link(commands.device_ids).items():
            if len(rows):
                try:
                    self.links[name].send(_take_commands(commands, rows))
                except Exception:
                    log.exception("link %s failed to send commands; the others go on", name)

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """Each link gets the schedules of its devices."""
        for name, rows in self._rows_by_link(schedules.device_ids).items():
            if len(rows):
                try:
                    self.links[name].send_schedules(schedules.take(rows))
                except Exception:
                    log.exception("link %s failed to send schedules; the others go on", name)

    def receive(self) -> list[TelemetryBatch]:
        """Every link's readings of the devices it owns (unknown devices pass, to be refused)."""
        out: list[TelemetryBatch] = []
        for name, link in self.links.items():
            try:
                batches = link.receive()
            except Exception:
                log.exception("link %s failed to deliver readings", name)
                continue
            for b in batches:
                keep = np.fromiter(
                    (self.owner.get(d, name) == name for d in b.device_ids.tolist()), bool, len(b)
                )
                out.append(b if keep.all() else _take_readings(b, keep))
        return out

    def take_report(self) -> LinkReport:
        """The links' reports added up."""
        rejected: Counter[str] = Counter()
        total = LinkReport()
        for name, link in self.links.items():
            try:
                r = link.take_report()
            except Exception:
                log.exception("link %s failed to report", name)
                continue
            rejected.update(r.rejected)
            total = LinkReport(
                total.messages + r.messages,
                {},
                total.acks + r.acks,
                total.statuses + r.statuses,
                total.expired + r.expired,
                total.settings + r.settings,
            )
        return LinkReport(
            total.messages,
            dict(rejected),
            total.acks,
            total.statuses,
            total.expired,
            total.settings,
        )

    def send_settings(self, gateway: str, items: Sequence[Any]) -> bool:
        """Each item through the link that owns its device, if that link carries settings.

        True when every item went out; items of a link without settings are not sent.
        """
        by_link: dict[str, list[Any]] = {}
        for it in items:
            name = self.owner.get(str(it.device), self.default or "")
            by_link.setdefault(name, []).append(it)
        ok = True
        for name, group in by_link.items():
            link = self.links.get(name)
            if not isinstance(link, SettingsLink):
                ok = False
                continue
            try:
                ok = link.send_settings(gateway, group) and ok
            except Exception:
                log.exception("link %s failed to send settings; the others go on", name)
                ok = False
        return ok

    def update_fleet(self, spec: FleetSpec) -> None:
        """New owners; every link takes up the fleet."""
        self._set_owners(spec)
        for link in self.links.values():
            link.update_fleet(spec)

    async def run(self) -> None:
        """Run every link; one that ends with an error is logged, the others keep running."""

        async def one(name: str, link: DeviceLink) -> None:
            try:
                await link.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("link %s stopped with an error", name)

        await asyncio.gather(*(one(n, lk) for n, lk in self.links.items()))

    def stop(self) -> None:
        """Stop every link."""
        for link in self.links.values():
            link.stop()
