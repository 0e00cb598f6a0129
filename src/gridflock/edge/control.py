"""What each local device should do now: an event's command, its schedule's slot, or its safe mode.

The gateway's rules of protocol v1 (docs/protocol.md, "Commands" and "Schedules"): a valid
command wins; else the schedule's slot while the schedule is valid and the slot has a
setpoint; else the device's safe mode (``None``). Commands lapse at their
``valid_until``, schedules at theirs (the plan's end), whatever happens to the uplink.
Pure bookkeeping: the gateway applies what :meth:`ControlTable.target` says.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gridflock.gateways.mqtt.codec import EpochFence, screen_commands, screen_schedules
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
        self.fence = EpochFence()
        """The highest control-leader epoch seen: a lower one is a deposed leader's."""

    def screen_commands(
        self, commands: Sequence[Command], now: float, epoch: int | None = None
    ) -> list[CommandAck]:
        """Protocol v1 verdicts (deposed leader, unknown device, expired, replayed)."""
        deposed = not self.fence.admit(epoch)
        return screen_commands(
            commands, self.last_seq, now, self.devices.__contains__, deposed=deposed
        )

    def screen_schedules(
        self, schedules: Sequence[Schedule], now: float, epoch: int | None = None
    ) -> list[CommandAck]:
        """Verdicts on schedules (deposed leader, unknown device, expired, replayed; own seq)."""
        deposed = not self.fence.admit(epoch)
        return screen_schedules(
            schedules, self.last_schedule_seq, now, self.devices.__contains__, deposed=deposed
        )

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

    def target(
        self, device: str, now: float, cap_is_setpoint: bool = False
    ) -> tuple[float | None, float]:
        """``(setpoint [kW] or None for safe mode, until when [UTC epoch s])`` at ``now``.

        ``cap_is_setpoint``: for devices whose setpoint is an export cap (PV), a slot
        without a setpoint but with ``p_max_kw`` is followed as that cap.
        """
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
                    if p is None and cap_is_setpoint and s.p_max_kw is not None:
                        p = s.p_max_kw[k]
                    if p is not None and math.isfinite(p):
                        return p, slot_end
        return None, math.inf

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Write sequence numbers, the leader epoch and schedules to ``path`` (atomically).

        Commands are not kept: a restarted gateway never re-applies one (protocol v1).
        """
        state = {
            "v": 1,
            "last_seq": self.last_seq,
            "last_schedule_seq": self.last_schedule_seq,
            "epoch": self.fence.highest,
            "schedules": [s.model_dump() for s in self.schedules.values()],
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, separators=(",", ":")))
        os.replace(tmp, path)

    def load(self, path: Path, now: float) -> int:
        """Take sequence numbers and still-valid schedules from ``path``; schedules taken.

        A missing file is a first start; an unreadable one is ignored (the devices start
        from their safe mode, which is safe) and ``ValueError`` says why.
        """
        if not path.exists():
            return 0
        try:
            state = json.loads(path.read_text())
            last = {str(k): int(v) for k, v in state["last_seq"].items()}
            last_s = {str(k): int(v) for k, v in state["last_schedule_seq"].items()}
            schedules = [Schedule.model_validate(x) for x in state["schedules"]]
            epoch = state.get("epoch")
            highest = None if epoch is None else int(epoch)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"state file {path} is unreadable ({e}); starting afresh") from e
        self.last_seq.update({k: v for k, v in last.items() if k in self.devices})
        self.last_schedule_seq.update({k: v for k, v in last_s.items() if k in self.devices})
        self.fence.admit(highest)
        kept = [s for s in schedules if s.device in self.devices and s.valid_until > now]
        for s in kept:
            self.schedules[s.device] = s
        return len(kept)
