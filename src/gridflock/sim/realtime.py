"""The twin in real time, as an in-process device link for ``gridflock demo``.

The twin lives on a summer day (its weather, PV and loads are those of ``sim_date``) at
the same local time of day as the wall clock; readings and commands are shifted between
the two clocks, so the service sees a fleet reporting *now*. When the twin reaches the
end of its window it starts the day again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridflock.domain.messages import CommandBatch, TelemetryBatch
from gridflock.domain.ports import CommandAck, LinkReport, SettingsVerdict
from gridflock.domain.schedules import ScheduleBatch
from gridflock.domain.spec import FleetSpec
from gridflock.sim.imperfections import Imperfections
from gridflock.sim.twin import (
    VERDICT_ACCEPTED,
    VERDICT_EXPIRED,
    VERDICT_REPLAYED,
    VERDICT_UNREACHABLE,
    Twin,
)
from gridflock.sim.weather import Weather

__all__ = ["RealtimeTwin"]

#: The reason a rejected command carries, by the twin's verdict (as the MQTT gateways say).
_REASONS = {VERDICT_EXPIRED: "expired", VERDICT_REPLAYED: "replayed"}


class RealtimeTwin:
    """A :class:`Twin` stepped by the wall clock; a :class:`~gridflock.domain.ports.DeviceLink`."""

    def __init__(
        self,
        spec: FleetSpec,
        *,
        seed: int = 7,
        step_s: float = 5.0,
        hours: float = 24.0,
        sim_date: dt.date = dt.date(2026, 7, 15),
        imperfections: Imperfections | None = None,
        clock: Callable[[], float] = time.time,
        weather: Callable[[pd.DatetimeIndex], Weather] | None = None,
    ) -> None:
        self.spec = spec
        self.weather_for = weather
        """Weather of the simulated times (default: the twin's own summer day)."""
        self.seed = seed
        self.step_s = step_s
        self.hours = hours
        self.sim_date = sim_date
        self.imperfections = imperfections or Imperfections()
        self.clock = clock
        self.tz = str(spec.sites["tz"].iloc[0]) if len(spec.sites) else "UTC"
        self._acks: list[CommandAck] = []
        self._verdicts: list[SettingsVerdict] = []
        self.pushed: dict[str, Any] = {}
        """Grid-code settings (protocol v1 items) each device runs on, as pushed."""
        self._gateway_of = _gateways(spec)
        self._start()

    def _start(self) -> None:
        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        local = now.tz_convert(self.tz)
        day = pd.Timestamp(self.sim_date).tz_localize(self.tz)
        seconds = (local - local.normalize()).total_seconds()
        start = day + pd.Timedelta(seconds=seconds // self.step_s * self.step_s)
        start = start.tz_convert("UTC")
        steps = int(self.hours * 3600 / self.step_s)
        old = getattr(self, "twin", None)
        old_offset = getattr(self, "offset_s", 0.0)
        weather = None
        if self.weather_for is not None:
            times = pd.date_range(start, periods=steps, freq=pd.Timedelta(seconds=self.step_s))
            weather = self.weather_for(times)
        old = getattr(self, "twin", None)
        old_offset = getattr(self, "offset_s", 0.0)
        self.twin = Twin(
            self.spec, start, steps, self.step_s, self.seed, self.imperfections, weather=weather
        )
        self.offset_s = float(now.timestamp() - start.timestamp())
        if old is not None and old.spec is self.spec:  # the day starts again: plans go on
            tw, shift = self.twin, old_offset - self.offset_s
            tw.sch_start, tw.sch_until = old.sch_start + shift, old.sch_until + shift
            tw.sch_step, tw.sch_seq = old.sch_step, old.sch_seq
            tw.sch_p, tw.sch_min, tw.sch_max = old.sch_p, old.sch_min, old.sch_max

    def update_fleet(self, spec: FleetSpec) -> None:
        """Simulate a new fleet (after an import): the day goes on with the new devices."""
        if spec is not self.spec:
            self.spec = spec
            self._gateway_of = _gateways(spec)
            self._start()

    @property
    def connected(self) -> bool:
        """Always: the devices live in this process."""
        return True

    def take_report(self) -> LinkReport:
        """The acks of the commands sent since the last call (the twin's gateways answer)."""
        acks, self._acks = self._acks, []
        verdicts, self._verdicts = self._verdicts, []
        return LinkReport(acks=acks, settings=verdicts)

    def send_settings(self, gateway: str, items: Sequence[Any]) -> bool:
        """The twin's devices adopt pushed grid-code settings; their gateways answer.

        The twin's inverters take the curves as given (no registers to refuse a value);
        a device the twin does not simulate is ``unknown_device``.
        """
        known = set(self.spec.all_devices()["id"].astype(str))
        for it in items:
            if it.device not in known:
                v = SettingsVerdict(gateway, it.id, it.device, it.seq, "rejected", "unknown_device")
            else:
                self.pushed[it.device] = it
                fns = ("volt_var", "volt_watt", "freq_watt", "ffr")
                adopted = {f: "verified" for f in fns if getattr(it, f, None) is not None}
                v = SettingsVerdict(gateway, it.id, it.device, it.seq, "accepted", None, adopted)
            self._verdicts.append(v)
        return True

    async def run(self) -> None:
        """No connection to keep: the twin steps in :meth:`receive`."""

    def stop(self) -> None:
        """Nothing runs."""

    def send(self, commands: CommandBatch) -> None:
        """Deliver commands to the twin, on its clock; queue the acks its gateways send.

        Accepted commands are acknowledged ``accepted``, expired and replayed ones
        ``rejected`` with that reason, as the MQTT gateways do; a command to a device that
        is offline gets no answer (its gateway is silent).
        """
        off = self.offset_s
        verdicts = self.twin.send(
            CommandBatch(
                commands.command_ids,
                commands.device_ids,
                commands.p_setpoint_kw,
                commands.valid_until - off,
                commands.seq,
                commands.issued_at - off,
                commands.event_id,
            )
        )
        self._queue_acks(commands.command_ids, commands.device_ids, verdicts)

    def send_schedules(self, schedules: ScheduleBatch) -> None:
        """Give the twin's devices their plan, on its clock; queue the acks, as for commands."""
        off = self.offset_s
        verdicts = self.twin.send_schedules(
            ScheduleBatch(
                schedules.schedule_ids,
                schedules.device_ids,
                schedules.seq,
                schedules.p_kw,
                schedules.start - off,
                schedules.step_s,
                schedules.valid_until - off,
                schedules.issued_at - off,
                schedules.plan_id,
                schedules.p_min_kw,
                schedules.p_max_kw,
            )
        )
        self._queue_acks(schedules.schedule_ids, schedules.device_ids, verdicts)

    def _queue_acks(self, ids: np.ndarray, devices: np.ndarray, verdicts: np.ndarray) -> None:
        """The acks the twin's gateways send for ``ids`` (none from offline devices)."""
        for i in np.flatnonzero(verdicts != VERDICT_UNREACHABLE).tolist():
            device = str(devices[i])
            self._acks.append(
                CommandAck(
                    gateway=self._gateway_of.get(device, ""),
                    command_id=str(ids[i]),
                    device_id=device,
                    status="accepted" if verdicts[i] == VERDICT_ACCEPTED else "rejected",
                    reason=_REASONS.get(int(verdicts[i])),
                )
            )

    def receive(self) -> list[TelemetryBatch]:
        """Step the twin up to the wall clock; its readings, stamped in wall-clock time."""
        out: list[TelemetryBatch] = []
        while self.twin.now + self.step_s + self.offset_s <= self.clock():
            if self.twin.done:
                self._start()
            self.twin.step()
            for b in self.twin.receive():
                extras = dict(b.extras)
                if "departure_ts" in extras:  # a time too: onto the wall clock with the rest
                    extras["departure_ts"] = extras["departure_ts"] + self.offset_s
                out.append(
                    TelemetryBatch(
                        b.device_ids,
                        b.ts + self.offset_s,
                        b.p_kw,
                        b.soc,
                        b.p_baseline_kw,
                        extras,
                        b.rows,
                        b.layout,
                    )
                )
            if len(out) > 200:  # far behind (a paused process): drop what is stale
                out = out[-50:]
        return out


def _gateways(spec: FleetSpec) -> dict[str, str]:
    """Device id → the id of the gateway that carries it."""
    devices = spec.all_devices()
    return dict(zip(devices["id"].astype(str), devices["gateway_id"].astype(str), strict=True))
