"""What each local device should do now: an event's command, its schedule's slot, or its safe mode.

The gateway's rules of protocol v1 (docs/protocol.md, "Commands" and "Schedules"): a valid
command wins; else the schedule's slot while the schedule is valid and the slot has a
setpoint; else the device's safe mode (``None``). Commands lapse at their
``valid_until``, schedules at theirs (the plan's end), whatever happens to the uplink.
Pure bookkeeping: the gateway applies what :meth:`ControlTable.target` says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gridflock.gateways.mqtt.codec import screen_commands, screen_schedules
from gridflock.gateways.mqtt.protocol import Command, CommandAck, Schedule

__all__ = ["ControlTable", "HeldCommand"]


@dataclass(frozen=True)
class HeldCommand:
    """An accepted command's setpoint [kW, generator sign], held until ``valid_until``."""

    command_id: str
    p_kw: float
    valid_until: float


class ControlTable:
    """Commands and schedules of a gateway's devices, and the sequence numbers seen."""

    def __init__(self, device_ids: Iterable[str]) -> None:
        self.devices = frozenset(device_ids)
        self.commands: dict[str, HeldCommand] = {}
        self.schedules: dict[str, Schedule] = {}
        self.last_seq: dict[str, int] = {}
        self.last_schedule_seq: dict[str, int] = {}

    def screen_commands(self, commands: Sequence[Command], now: float) -> list[CommandAck]:
        """Protocol v1 verdicts (unknown device, expired, replayed); updates the seq seen."""
        return screen_commands(commands, self.last_seq, now, self.devices.__contains__)

    def screen_schedules(self, schedules: Sequence[Schedule], now: float) -> list[CommandAck]:
        """Verdicts on schedules (unknown device, expired, replayed; own seq)."""
        return screen_schedules(schedules, self.last_schedule_seq, now, self.devices.__contains__)

    def hold(self, device: str, command_id: str, p_kw: float, valid_until: float) -> None:
        """Keep an accepted setpoint until ``valid_until``."""
        self.commands[device] = HeldCommand(command_id, p_kw, valid_until)

    def release(self, device: str) -> None:
        """Drop the device's command (``p_setpoint_kw: null``): its schedule or safe mode next."""
        self.commands.pop(device, None)

    def drop_commands(self) -> list[str]:
        """Drop every command (the service fell silent); the devices that had one."""
        gone = list(self.commands)
        self.commands.clear()
        return gone

    def set_schedule(self, schedule: Schedule) -> None:
        """An accepted schedule replaces the device's previous one whole."""
        self.schedules[schedule.device] = schedule

    def target(self, device: str, now: float) -> tuple[float | None, float]:
        """``(setpoint [kW] or None for safe mode, until when [UTC epoch s])`` at ``now``."""
        cmd = self.commands.get(device)
        if cmd is not None:
            if now < cmd.valid_until:
                return cmd.p_kw, cmd.valid_until
            del self.commands[device]
        s = self.schedules.get(device)
        if s is not None:
            if now >= s.valid_until:
                del self.schedules[device]
            elif now >= s.start:
                k = int((now - s.start) // s.step_s)
                if k < len(s.p_kw):
                    slot_end = min(s.start + (k + 1) * s.step_s, s.valid_until)
                    p = s.p_kw[k]
                    if p is not None and math.isfinite(p):
                        return p, slot_end
        return None, math.inf
