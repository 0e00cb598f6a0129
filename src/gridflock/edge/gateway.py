"""The edge gateway's loop: poll local drivers, speak protocol v1 over MQTT, keep the site safe.

:class:`EdgeGateway` connects to the service's broker through its
:class:`~gridflock.edge.uplink.Uplink` (the gateway's own account, TLS, Last Will) and
runs four small loops:

- **poll**: every driver is asked for the readings that are due (each device has its own
  interval, down to 1 s); they go into the :class:`~gridflock.edge.buffer.ReadingBuffer`;
- **send**: while connected, the oldest buffered readings go out in batches (one
  telemetry message per poll, up to ``MAX_BATCH`` readings after an outage), at QoS 1;
  a batch leaves the buffer only once the broker acknowledged it on the same
  connection, so a reading is lost only when its device's ring overflows;
- **control**: every ``CONTROL_TICK_S`` the target of each device (a valid command, else
  its schedule's slot, else its safe mode; :class:`~gridflock.edge.control.ControlTable`)
  is compared with what the device was given and applied when it changed: a command
  lapses at its ``valid_until`` and a new schedule slot starts on time, connected or not;
- **watchdog**: when nothing came from the service for ``failsafe.silence_s`` (no
  message, or no broker), every command is dropped: the devices go back to their
  schedule or their safe mode. Schedules run on to their end, as protocol v1 asks.

Commands and schedules are screened by the protocol's reference rules (unknown device,
expired, replayed), handed to the owning driver (which clips to the device's ranges or
refuses), and acknowledged with one ``command_ack`` per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gridflock.edge.buffer import ReadingBuffer
from gridflock.edge.config import EdgeConfig, protocols
from gridflock.edge.control import ControlTable
from gridflock.edge.driver import (
    ApplyResult,
    DeviceReading,
    LocalDriver,
    SettingsDriver,
    SettingsResult,
)
from gridflock.edge.uplink import Uplink
from gridflock.gateways.mqtt.codec import (
    DecodedSettings,
    ProtocolError,
    SettingsSeen,
    decode_cmd,
    encode_command_ack,
    encode_settings_ack,
    encode_telemetry,
    screen_settings,
)
from gridflock.gateways.mqtt.protocol import (
    MAX_READINGS,
    CommandAck,
    CommandMessage,
    DeviceSettings,
    ScheduleMessage,
    SettingsAck,
    cmd_topic,
)

__all__ = ["EdgeGateway", "EdgeStats", "build_drivers"]

log = logging.getLogger(__name__)

#: Most readings in one telemetry message after an outage (well under the 10,000 limit and
#: the service's 2,000 readings/s per gateway).
MAX_BATCH = 1_000
#: Pause between two backlog messages [s]: 1,000 readings per 0.6 s stays under 2,000/s.
BACKLOG_PAUSE_S = 0.6
#: How often targets are checked against what the devices were given [s].
CONTROL_TICK_S = 0.25
#: How often the drivers are asked for due readings [s] (devices poll at 1 s at the fastest).
POLL_TICK_S = 0.25

assert MAX_BATCH <= MAX_READINGS


@dataclass
class EdgeStats:
    """What the gateway did (cumulative), for logs and tests."""

    readings_polled: int = 0
    readings_sent: int = 0
    telemetry_messages: int = 0
    unconfirmed_batches: int = 0
    commands: int = 0
    schedules: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    bad_messages: int = 0
    releases: int = 0
    silences: int = 0
    settings: int = 0
    settings_status: dict[str, int] = field(default_factory=dict)


def build_drivers(config: EdgeConfig) -> list[LocalDriver]:
    """One driver per protocol used in ``config``, from the registered factories."""
    out = []
    for name, spec in protocols().items():
        devices = config.devices_of(name)
        if devices:
            out.append(spec.factory(devices))
    return out


class EdgeGateway:
    """A site's devices (through their drivers) as one protocol v1 gateway."""

    def __init__(
        self,
        config: EdgeConfig,
        drivers: Sequence[LocalDriver] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.gateway_id = config.gateway.id
        self.drivers = list(drivers) if drivers is not None else build_drivers(config)
        self.clock = clock
        self.driver_of: dict[str, LocalDriver] = {}
        for drv in self.drivers:
            for dev in drv.device_ids:
                self.driver_of[dev] = drv
        self.kind = {d.id: d.kind for d in config.devices}
        self.table = ControlTable(self.driver_of)
        self.state_file = config.gateway.state_file
        if self.state_file is not None:
            try:
                kept = self.table.load(self.state_file, clock())
                log.info("state file %s: %d schedule(s) go on", self.state_file, kept)
            except ValueError as e:
                log.warning("%s", e)
        self.buffer = ReadingBuffer(config.buffer.max_readings_per_device)
        self.stats = EdgeStats()
        self.applied: dict[str, float | None] = dict.fromkeys(self.driver_of)
        """What each device was last given [kW]; None = its safe mode."""
        self.last_heard = clock()
        self.uplink = Uplink(config.gateway, self._on_message, clock)
        self._stop = asyncio.Event()
        self._new_readings = asyncio.Event()
        self.settings_seen: dict[str, SettingsSeen] = {}
        """The last settings taken per device, with the answer given (re-sends get it again)."""
        self.settings_due: dict[str, DeviceSettings] = {}
        """Settings accepted for later (``effective_from`` ahead), by device."""
        self.settings_in_force: dict[str, DeviceSettings] = {}
        """The settings each device runs on now (the droop it was pushed)."""
        self._cmd_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        """Whether the uplink is up now."""
        return self.uplink.connected

    def stop(self) -> None:
        """Ask :meth:`run` to release the devices, say offline and return."""
        self._stop.set()

    async def run(self) -> None:
        """Start the drivers, connect (retrying while the broker is down) and loop until stopped.

        Raises
        ------
        DriverError
            If a driver cannot start (a device missing or misconfigured).

        """
        for drv in self.drivers:
            await drv.start()
        for dev in self.driver_of:  # a restart begins from the safe mode, never a stale command
            await self._release(dev)
        loops = [
            asyncio.create_task(self._poll_loop()),
            asyncio.create_task(self._control_loop()),
            asyncio.create_task(self._uplink_loop()),
        ]
        try:
            await self._stop.wait()
        finally:
            for t in loops:
                t.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for drv in self.drivers:
            with contextlib.suppress(Exception):
                await drv.close()
        await self.uplink.close()

    # ------------------------------------------------------------------ uplink
    async def _uplink_loop(self) -> None:
        if not await self.uplink.connect(self._stop):
            return
        while not self._stop.is_set():
            if not self.connected or not len(self.buffer):
                self._new_readings.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_readings.wait(), 0.5)
                continue
            sent = await self._send_batch()
            if sent and len(self.buffer):  # a backlog: pace it for the service's limits
                await asyncio.sleep(BACKLOG_PAUSE_S)
            elif not sent:
                await asyncio.sleep(1.0)

    async def _send_batch(self) -> bool:
        """Publish the oldest readings; drop them from the buffer once the broker has them."""
        batch = self.buffer.peek(MAX_BATCH)
        payload = encode_telemetry(
            self.gateway_id,
            [r.device_id for r in batch],
            [r.ts for r in batch],
            [r.p_kw for r in batch],
            [r.soc for r in batch],
            [r.p_baseline_kw for r in batch],
            None,
        )
        confirmed = await self.uplink.send(payload)
        if not confirmed:
            self.stats.unconfirmed_batches += 1
            return False
        self.buffer.remove(batch)
        self.stats.readings_sent += len(batch)
        self.stats.telemetry_messages += 1
        return True

    # ------------------------------------------------------------------ messages
    def _on_message(self, topic: str, payload: bytes) -> None:
        self.last_heard = self.clock()  # any message from the service: it is not silent
        if topic == cmd_topic(self.gateway_id):
            self._spawn(self._handle_cmd(payload))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_cmd(self, payload: bytes) -> None:
        try:
            msg = decode_cmd(payload)
        except ProtocolError as e:
            self.stats.bad_messages += 1
            log.warning("cmd: %s", e)
            return
        if isinstance(msg, DecodedSettings):
            async with self._cmd_lock:
                answers = await self.handle_settings(msg)
            if answers:
                self.uplink.publish_ack(encode_settings_ack(answers))
            return
        async with self._cmd_lock:
            if isinstance(msg, ScheduleMessage):
                acks = await self.handle_schedules(msg)
            else:
                acks = await self.handle_commands(msg)
            self._save_state()
        for a in acks:
            if a.status == "rejected" and a.reason:
                self.stats.rejected[a.reason] = self.stats.rejected.get(a.reason, 0) + 1
        self.uplink.publish_ack(encode_command_ack(acks))

    async def handle_commands(self, msg: CommandMessage) -> list[CommandAck]:
        """Screen, apply and acknowledge the commands of one message."""
        now = self.clock()
        acks = self.table.screen_commands(msg.commands, now, msg.epoch)
        out = []
        for cmd, ack in zip(msg.commands, acks, strict=True):
            self.stats.commands += 1
            if ack.status != "accepted":
                out.append(ack)
                continue
            if cmd.p_setpoint_kw is None:
                self.table.release(cmd.device)
                await self._settle(cmd.device, now)
                out.append(ack)
                continue
            res = await self._apply(cmd.device, cmd.p_setpoint_kw, cmd.valid_until)
            if res.accepted:
                p = res.applied_kw if res.applied_kw is not None else cmd.p_setpoint_kw
                self.table.hold(cmd.device, cmd.id, p, cmd.valid_until)
                self.applied[cmd.device] = p
            out.append(_verdict(ack, res.accepted, res.reason))
        return out

    async def handle_schedules(self, msg: ScheduleMessage) -> list[CommandAck]:
        """Screen and keep the schedules of one message; slots start from the control loop."""
        now = self.clock()
        acks = self.table.screen_schedules(msg.schedules, now, msg.epoch)
        for s, ack in zip(msg.schedules, acks, strict=True):
            self.stats.schedules += 1
            if ack.status == "accepted":
                if self.kind.get(s.device) == "meter":
                    acks[acks.index(ack)] = _verdict(ack, False, "not_controllable")
                    continue
                self.table.set_schedule(s)
                await self._settle(s.device, now)
        return acks

    async def handle_settings(self, msg: DecodedSettings) -> list[SettingsAck]:
        """Screen each device's settings, apply the due ones through its driver, answer all.

        Refused (with the reason): items that failed validation, unknown devices, stale
        or expired items; the same id and seq again gets the earlier answer. Items whose
        ``effective_from`` is ahead are kept and applied by the control loop then (and
        answered then). A driver without a way to write them answers ``unsupported``.
        """
        now = self.clock()
        out = list(msg.refused)
        known = self.driver_of.__contains__
        for s, ack in screen_settings(msg.settings, self.settings_seen, now, known):
            self.stats.settings += 1
            if ack is not None:
                out.append(ack)
                continue
            if s.effective_from > now:
                self.settings_due[s.device] = s
                continue
            out.append(await self._apply_settings(s))
        for a in out:
            self.stats.settings_status[a.reason or a.status] = (
                self.stats.settings_status.get(a.reason or a.status, 0) + 1
            )
        return out

    async def _apply_settings(self, s: DeviceSettings) -> SettingsAck:
        drv = self.driver_of[s.device]
        if isinstance(drv, SettingsDriver):
            try:
                res = await drv.apply_settings(s.device, s)
            except Exception as e:  # one device's failure never stops the others
                log.warning("device %s: settings %s failed: %s", s.device, s.id, e)
                res = SettingsResult("rejected", "device_error", detail=str(e)[:500])
        else:
            res = SettingsResult(
                "unsupported",
                "local_protocol",
                detail=f"the {drv.name} driver cannot write grid-code settings",
            )
        ack = SettingsAck(
            id=s.id,
            device=s.device,
            seq=s.seq,
            status=res.status,
            reason=res.reason,
            adopted=dict(res.adopted),
            detail=res.detail or None,
        )
        self.settings_seen[s.device] = SettingsSeen(s.id, s.seq, ack)
        if res.status == "accepted":
            self.settings_in_force[s.device] = s
        log.info(
            "device %s: settings %s (%s, seq %d) %s%s",
            s.device,
            s.id,
            s.profile,
            s.seq,
            res.status,
            f" ({res.reason})" if res.reason else "",
        )
        return ack

    async def _apply_due_settings(self, now: float) -> None:
        """Apply the settings whose ``effective_from`` has come, and answer them."""
        due = [s for s in self.settings_due.values() if s.effective_from <= now]
        if not due:
            return
        answers = []
        for s in due:
            del self.settings_due[s.device]
            answers.append(await self._apply_settings(s))
        self.uplink.publish_ack(encode_settings_ack(answers))

    # ------------------------------------------------------------------ control
    async def _settle(self, device: str, now: float) -> None:
        """Give ``device`` its target now if it differs from what it has."""
        target, until = self.table.target(device, now, self.kind.get(device) == "pv")
        if target == self.applied.get(device):
            return
        if target is None:
            await self._release(device)
            return
        res = await self._apply(device, target, until)
        if res.accepted:
            self.applied[device] = res.applied_kw if res.applied_kw is not None else target
        else:
            log.warning("device %s: schedule slot %.3f kW refused: %s", device, target, res.reason)

    def _save_state(self) -> None:
        if self.state_file is None:
            return
        try:
            self.table.save(self.state_file)
        except OSError as e:
            log.warning("state file %s not written: %s", self.state_file, e)

    async def _apply(self, device: str, p_kw: float, until: float) -> ApplyResult:
        """The owning driver's verdict; a driver that fails is a ``device_error``, never a crash."""
        try:
            return await self.driver_of[device].apply(device, p_kw, until)
        except Exception as e:  # one device's failure never stops the others or the loop
            log.warning("device %s: setpoint %.3f kW failed: %s", device, p_kw, e)
            return ApplyResult(device, False, "device_error")

    async def _release(self, device: str) -> None:
        try:
            await self.driver_of[device].release(device)
            self.applied[device] = None
            self.stats.releases += 1
        except Exception as e:  # retried on the next control tick
            log.warning("device %s: release failed: %s", device, e)

    async def control_step(self) -> None:
        """One control tick: the silence watchdog, then every device to its target."""
        now = self.clock()
        if self.table.commands and now - self.last_heard > self.config.failsafe.silence_s:
            gone = self.table.drop_commands()
            self.stats.silences += 1
            log.warning(
                "service silent for %.0f s: %d device(s) back to schedule or safe mode",
                now - self.last_heard,
                len(gone),
            )
        async with self._cmd_lock:
            await self._apply_due_settings(now)
            for device in self.driver_of:
                await self._settle(device, now)

    async def _control_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.control_step()
            except Exception:  # the fail-safe must keep ticking whatever one tick hit
                log.exception("control step failed")
            await asyncio.sleep(CONTROL_TICK_S)

    # ------------------------------------------------------------------ telemetry
    async def _poll_loop(self) -> None:
        while not self._stop.is_set():
            got: list[DeviceReading] = []
            results = await asyncio.gather(
                *(drv.read() for drv in self.drivers), return_exceptions=True
            )
            for drv, res in zip(self.drivers, results, strict=True):
                if isinstance(res, BaseException):
                    log.warning("driver %s: read failed: %s", drv.name, res)
                else:
                    got.extend(r for r in res if math.isfinite(r.p_kw) and math.isfinite(r.ts))
            if got:
                got.sort(key=lambda r: r.ts)
                self.buffer.add(got)
                self.stats.readings_polled += len(got)
                self._new_readings.set()
            await asyncio.sleep(POLL_TICK_S)


def _verdict(ack: CommandAck, accepted: bool, reason: str | None) -> CommandAck:
    status: Literal["accepted", "rejected"] = "accepted" if accepted else "rejected"
    return CommandAck(id=ack.id, device=ack.device, seq=ack.seq, status=status, reason=reason)
