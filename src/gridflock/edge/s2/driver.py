"""The S2 driver: the gateway acts as the CEM towards S2 resource managers.

RMs connect to the gateway's websocket endpoints (S2 over WebSocket). The driver reads
their power measurements and fill levels, turns Gridflock setpoints into FRBC instructions
or PPBC schedules, and hands control back to the RM on release. An RM that is not
connected is left out of :meth:`S2Driver.read` and refused by :meth:`S2Driver.apply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from s2python.common import (
    ControlType,
    InstructionStatus,
    ReceptionStatusValues,
    RevokableObjects,
    RevokeObject,
)
from s2python.frbc import FRBCInstruction, FRBCStorageStatus
from s2python.message import S2Message
from s2python.ppbc import PPBCScheduleInstruction
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from gridflock.edge.driver import ApplyResult, DeviceReading, DriverError
from gridflock.edge.s2.config import S2DeviceConfig, config_problems
from gridflock.edge.s2.frbc import ELECTRIC, FrbcPlan, plan_frbc
from gridflock.edge.s2.ppbc import PlannedSequence, default_plan, power_at, shift_plan
from gridflock.edge.s2.session import CemSession, SessionClosed

__all__ = ["S2Driver", "build_s2_driver"]

log = logging.getLogger(__name__)

_FRBC = ControlType.FILL_RATE_BASED_CONTROL
_PPBC = ControlType.POWER_PROFILE_BASED_CONTROL
_FACTOR_TOL = 1e-6
"""A re-plan that moves a factor less than this sends nothing (the same instruction)."""
_MAX_MESSAGE_BYTES = 1 << 20


@dataclass
class _Standing:
    """The setpoint a device is following, to re-check as its fill level moves."""

    p_kw: float
    valid_until: float
    frbc_sent: dict[uuid.UUID, tuple[uuid.UUID, float]]
    """actuator → (mode, factor) last instructed."""


class S2Driver:
    """S2 resource managers behind one or more CEM websocket endpoints."""

    name = "s2"

    def __init__(
        self, configs: Sequence[S2DeviceConfig], clock: Callable[[], float] = time.time
    ) -> None:
        problems = config_problems(configs)
        if problems:
            raise DriverError("S2 configuration: " + "; ".join(problems))
        self._configs = {c.device_id: c for c in configs}
        self._clock = clock
        self._sessions: dict[str, CemSession] = {}
        self._servers: list[Server] = []
        self._endpoints: dict[str, str] = {}
        self._standing: dict[str, _Standing] = {}
        self._last_read: dict[str, float] = {}
        self._schedules: dict[str, dict[uuid.UUID, PPBCScheduleInstruction]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        """One per device: setpoints, re-checks and releases go out one at a time."""
        self._recheck_due: set[str] = set()

    # -- LocalDriver ----------------------------------------------------------------------

    @property
    def device_ids(self) -> Sequence[str]:
        """The Gridflock device ids this driver owns."""
        return list(self._configs)

    @property
    def endpoints(self) -> dict[str, str]:
        """Device id → the ``ws://`` URL its RM connects to (after :meth:`start`)."""
        return dict(self._endpoints)

    def connected(self, device_id: str) -> bool:
        """Whether the device's RM is connected and identified."""
        s = self._sessions.get(device_id)
        return s is not None and not s.closed

    def session(self, device_id: str) -> CemSession | None:
        """The device's live session (for diagnostics)."""
        return self._sessions.get(device_id)

    async def start(self) -> None:
        """Listen on every configured endpoint; raise :class:`DriverError` if one cannot."""
        groups: dict[tuple[str, int, str], list[S2DeviceConfig]] = {}
        for c in self._configs.values():
            groups.setdefault(c.endpoint, []).append(c)
        for (host, port, path), members in groups.items():
            by_rm = {str(c.resource_id): c for c in members}
            try:
                server = await serve(
                    functools.partial(self._serve, by_rm=by_rm),
                    host,
                    port,
                    process_request=_path_check(path),
                    max_size=_MAX_MESSAGE_BYTES,
                )
            except OSError as e:
                await self.close()
                raise DriverError(
                    f"S2 endpoint ws://{host}:{port}{path} cannot listen: {e.strerror or e}; "
                    "free the port or change listen_port"
                ) from e
            self._servers.append(server)
            bound = port or int(next(iter(server.sockets)).getsockname()[1])
            for c in members:
                self._endpoints[c.device_id] = f"ws://{host}:{bound}{path}"

    async def read(self) -> list[DeviceReading]:
        """A reading per connected RM with a measurement newer than the last read."""
        now = self._clock()
        for device_id, standing in list(self._standing.items()):
            if standing.valid_until <= now:
                await self.release(device_id)
        out: list[DeviceReading] = []
        for device_id, s in self._sessions.items():
            if s.closed or s.measurement is None:
                continue
            ts, p_kw = s.measurement
            if self._last_read.get(device_id) == ts:
                continue
            self._last_read[device_id] = ts
            out.append(self._reading(device_id, s, ts, p_kw))
        return out

    async def apply(self, device_id: str, p_setpoint_kw: float, valid_until: float) -> ApplyResult:
        """Ask the device's RM for ``p_setpoint_kw`` [kW, generator sign] until ``valid_until``."""
        if device_id not in self._configs:
            return ApplyResult(device_id, False, f"{device_id} is not an S2 device of this gateway")
        if not math.isfinite(p_setpoint_kw) or not math.isfinite(valid_until):
            return ApplyResult(device_id, False, "setpoint and valid_until must be finite numbers")
        now = self._clock()
        if valid_until <= now:
            return ApplyResult(device_id, False, "valid_until has passed; nothing to apply")
        s = self._sessions.get(device_id)
        if s is None or s.closed:
            return ApplyResult(device_id, False, f"S2 RM of {device_id} is not connected")
        try:
            async with self._lock(device_id):
                await self._ensure_selected(s)
                if s.control_type is _FRBC:
                    return await self._apply_frbc(device_id, s, p_setpoint_kw, valid_until)
                if s.control_type is _PPBC:
                    return await self._apply_ppbc(device_id, s, p_setpoint_kw, valid_until)
        except (SessionClosed, TimeoutError) as e:
            return ApplyResult(device_id, False, f"S2 RM of {device_id} did not answer: {e}")
        return ApplyResult(
            device_id, False, f"S2 RM of {device_id} offers no controllable type (FRBC, PPBC)"
        )

    async def release(self, device_id: str) -> None:
        """Hand the device back to its RM (``rm_control``) or idle it (``idle``)."""
        self._standing.pop(device_id, None)
        s = self._sessions.get(device_id)
        config = self._configs.get(device_id)
        if s is None or s.closed or config is None:
            return
        async with self._lock(device_id):
            await self._release(device_id, s, config)

    async def _release(self, device_id: str, s: CemSession, config: S2DeviceConfig) -> None:
        try:
            if s.control_type is _PPBC:
                await self._revoke_schedules(device_id, s)
            if config.safe_mode == "rm_control":
                if s.control_type is not ControlType.NO_SELECTION:
                    await s.select(ControlType.NO_SELECTION)
            elif s.control_type is _FRBC and s.frbc.system is not None and s.ready.is_set():
                plan = plan_frbc(s.frbc, 0.0, config.min_horizon_s, self._now())
                await self._send_frbc(s, plan, {})
            elif s.control_type is _PPBC and s.ppbc_definition is not None:
                await self._schedule(
                    device_id, s, default_plan(s.ppbc_definition, s.ppbc_status, self._now())
                )
        except (SessionClosed, TimeoutError) as e:
            log.warning("S2 release of %s incomplete: %s", device_id, e)

    async def close(self) -> None:
        """Release every device and close the endpoints."""
        for device_id in list(self._sessions):
            await self.release(device_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()

    # -- sessions -------------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection, by_rm: dict[str, S2DeviceConfig]) -> None:
        timeout = min((c.reception_timeout_s for c in by_rm.values()), default=5.0)
        session = CemSession(
            ws, by_rm.get, self._attach, self._update, self._detach, reception_timeout_s=timeout
        )
        await session.run()

    def _attach(self, s: CemSession) -> None:
        assert s.config is not None
        old = self._sessions.get(s.config.device_id)
        self._sessions[s.config.device_id] = s
        if old is not None and not old.closed:
            self._spawn(old.close(1000, "replaced by a new connection of the same RM"))
        log.info("S2 RM %s connected as %s", s.resource_id, s.config.device_id)

    def _detach(self, s: CemSession) -> None:
        assert s.config is not None
        if self._sessions.get(s.config.device_id) is s:
            del self._sessions[s.config.device_id]
            log.warning("S2 RM %s of %s disconnected", s.resource_id, s.config.device_id)

    def _lock(self, device_id: str) -> asyncio.Lock:
        return self._locks.setdefault(device_id, asyncio.Lock())

    def _update(self, s: CemSession, msg: S2Message) -> None:
        # Re-check a standing setpoint on a new fill level; a burst of statuses while one
        # re-check waits coalesces into it.
        if isinstance(msg, FRBCStorageStatus) and s.config is not None:
            device_id = s.config.device_id
            if device_id in self._standing and device_id not in self._recheck_due:
                self._recheck_due.add(device_id)
                self._spawn(self._recheck(device_id, s))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recheck(self, device_id: str, s: CemSession) -> None:
        """Re-plan a standing FRBC setpoint as the fill level moves; send only changes."""
        standing = self._standing.get(device_id)
        if standing is not None and standing.valid_until <= self._clock():
            self._recheck_due.discard(device_id)
            await self.release(device_id)
            return
        async with self._lock(device_id):
            self._recheck_due.discard(device_id)
            standing = self._standing.get(device_id)
            if standing is None or s.control_type is not _FRBC or not s.ready.is_set():
                return
            plan = self._plan(s, standing.p_kw, standing.valid_until)
            with contextlib.suppress(SessionClosed, TimeoutError):
                await self._send_frbc(s, plan, standing.frbc_sent)

    async def _ensure_selected(self, s: CemSession) -> None:
        wanted = s.wanted_control_type()
        if s.control_type is not wanted:
            await s.select(wanted)
        if wanted in (_FRBC, _PPBC):
            await asyncio.wait_for(s.ready.wait(), s.reception_timeout_s)

    # -- FRBC -----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _plan(self, s: CemSession, p_kw: float, valid_until: float) -> FrbcPlan:
        assert s.config is not None
        # The RM may take its processing delay to act, and the instruction stands until the
        # next one arrives: a second of slack on top.
        delay_s = s.details.instruction_processing_delay.root / 1000.0 if s.details else 0.0
        horizon = max(valid_until - self._clock(), s.config.min_horizon_s) + delay_s + 1.0
        return plan_frbc(s.frbc, p_kw, horizon, self._now())

    async def _apply_frbc(
        self, device_id: str, s: CemSession, p_kw: float, valid_until: float
    ) -> ApplyResult:
        plan = self._plan(s, p_kw, valid_until)
        if not plan.choices:
            return ApplyResult(device_id, False, "the RM describes no operation mode to use")
        standing = _Standing(p_kw, valid_until, {})
        refused = await self._send_frbc(s, plan, standing.frbc_sent)
        if refused:
            return ApplyResult(device_id, False, refused)
        self._standing[device_id] = standing
        return ApplyResult(device_id, True, plan.reason, plan.p_kw)

    async def _send_frbc(
        self, s: CemSession, plan: FrbcPlan, sent: dict[uuid.UUID, tuple[uuid.UUID, float]]
    ) -> str | None:
        """Instruct every actuator whose mode or factor changed; the RM's refusal, if any."""
        for c in plan.choices:
            last = sent.get(c.actuator_id)
            if last is not None and last[0] == c.mode_id and abs(last[1] - c.factor) < _FACTOR_TOL:
                continue
            instr = FRBCInstruction(
                message_id=uuid.uuid4(),
                id=uuid.uuid4(),
                actuator_id=c.actuator_id,
                operation_mode=c.mode_id,
                operation_mode_factor=c.factor,
                execution_time=self._now(),
                abnormal_condition=False,
            )
            refused = await self._instruct(s, instr, instr.id)
            if refused:
                return refused
            sent[c.actuator_id] = (c.mode_id, c.factor)
        return None

    async def _instruct(
        self, s: CemSession, msg: FRBCInstruction | PPBCScheduleInstruction, instr_id: uuid.UUID
    ) -> str | None:
        rs = await s.request(msg)
        if rs.status is not ReceptionStatusValues.OK:
            return (
                f"the RM refused {msg.message_type}: {rs.status.value} {rs.diagnostic_label or ''}"
            )
        if s.instruction_status.get(instr_id) is InstructionStatus.REJECTED:
            return f"the RM rejected {msg.message_type} {instr_id}"
        return None

    # -- PPBC -----------------------------------------------------------------------------

    async def _apply_ppbc(
        self, device_id: str, s: CemSession, p_kw: float, valid_until: float
    ) -> ApplyResult:
        defn = s.ppbc_definition
        if defn is None:
            return ApplyResult(device_id, False, "the RM has no power profile to schedule")
        now = self._now()
        window_end = datetime.fromtimestamp(valid_until, UTC)
        limit_w = max(0.0, -p_kw * 1000.0)
        plan, excess_wh = shift_plan(defn, s.ppbc_status, now, window_end, limit_w)
        refused = await self._schedule(device_id, s, plan)
        if refused:
            return ApplyResult(device_id, False, refused)
        self._standing[device_id] = _Standing(p_kw, valid_until, {})
        got_kw = -power_at(plan, now) / 1000.0
        reason = None
        if excess_wh > 1e-6:
            reason = (
                f"{excess_wh / 1000.0:.3f} kWh of the appliance's profile stays above "
                f"{-p_kw:.3f} kW consumption in the window: it must end by "
                f"{defn.end_time.isoformat()}"
            )
        elif p_kw < 0 and got_kw > p_kw + 1e-6:
            reason = f"the appliance's profile takes only {-got_kw:.3f} kW now"
        elif p_kw > got_kw + 1e-6:
            reason = f"an appliance cannot deliver to the grid; it takes {-got_kw:.3f} kW now"
        return ApplyResult(device_id, True, reason, got_kw)

    async def _schedule(
        self, device_id: str, s: CemSession, plan: Sequence[PlannedSequence]
    ) -> str | None:
        """Schedule every container whose sequence or start changed, revoking the old one."""
        defn = s.ppbc_definition
        assert defn is not None
        mine = self._schedules.setdefault(device_id, {})
        for p in plan:
            if p.fixed:
                continue
            old = mine.get(p.container_id)
            if (
                old is not None
                and old.power_sequence_id == p.sequence_id
                and abs((old.execution_time - p.start).total_seconds()) < 1.0
            ):
                continue
            if old is not None and old.execution_time > self._now():
                await s.request(
                    RevokeObject(
                        message_id=uuid.uuid4(),
                        object_type=RevokableObjects.PPBC_ScheduleInstruction,
                        object_id=old.id,
                    )
                )
            instr = PPBCScheduleInstruction(
                message_id=uuid.uuid4(),
                id=uuid.uuid4(),
                power_profile_id=defn.id,
                sequence_container_id=p.container_id,
                power_sequence_id=p.sequence_id,
                execution_time=p.start,
                abnormal_condition=False,
            )
            refused = await self._instruct(s, instr, instr.id)
            if refused:
                return refused
            mine[p.container_id] = instr
        return None

    async def _revoke_schedules(self, device_id: str, s: CemSession) -> None:
        now = self._now()
        for instr in self._schedules.pop(device_id, {}).values():
            if instr.execution_time > now:
                await s.request(
                    RevokeObject(
                        message_id=uuid.uuid4(),
                        object_type=RevokableObjects.PPBC_ScheduleInstruction,
                        object_id=instr.id,
                    )
                )

    # -- readings -------------------------------------------------------------------------

    def _reading(self, device_id: str, s: CemSession, ts: float, p_kw: float) -> DeviceReading:
        config = self._configs[device_id]
        soc = math.nan
        extras: dict[str, float] = {}
        if s.control_type is _FRBC and s.frbc.fill_level is not None:
            if config.kind == "battery":
                soc = s.frbc.fraction()
            elif config.kind == "water_heater":
                label = s.frbc.system.storage.fill_level_label if s.frbc.system else None
                if label is not None and label.strip().lower() in {"°c", "c", "degc"}:
                    extras["t_tank_c"] = s.frbc.fill_level
        baseline = math.nan
        at = datetime.fromtimestamp(ts, UTC)
        if s.ppbc_definition is not None:
            baseline = -power_at(default_plan(s.ppbc_definition, s.ppbc_status, at), at) / 1000.0
        elif s.power_forecast is not None:
            baseline = _forecast_at(s, at)
        return DeviceReading(device_id, ts, p_kw, soc, baseline, extras)


def _forecast_at(s: CemSession, at: datetime) -> float:
    """The RM's own PowerForecast at ``at`` [kW, generator sign]; NaN outside it."""
    fc = s.power_forecast
    assert fc is not None
    t = fc.start_time
    for e in fc.elements:
        end = t + timedelta(milliseconds=e.duration.root)
        if t <= at < end:
            w = sum(
                float(v.value_expected) for v in e.power_values if v.commodity_quantity in ELECTRIC
            )
            return -w / 1000.0
        t = end
    return math.nan


def _path_check(path: str) -> Callable[[ServerConnection, Request], Response | None]:
    def check(conn: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != path:
            return conn.respond(404, f"S2 endpoint is at {path}\n")
        return None

    return check


def build_s2_driver(
    configs: Sequence[S2DeviceConfig], clock: Callable[[], float] = time.time
) -> S2Driver:
    """The S2 driver for a gateway's S2 devices (called by the gateway's driver registry).

    Raises :class:`DriverError` listing every problem across ``configs`` at once.
    """
    return S2Driver(configs, clock)
